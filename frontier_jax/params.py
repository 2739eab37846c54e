"""Params pytrees and static shapes from validated scenarios (host side, numpy leaves).

Both simulators run on what this module builds: :func:`sim_params` turns a scenario and its
drawn workload into a :class:`~frontier_jax.contract.SimParams` (one entry per pool on the
[K] axis of the engine and cost params, one pool index per instance slot), :func:`sim_shape`
picks the smallest static shape that holds it, :func:`stack` batches configurations for
``simulate_batch``.
"""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from frontier_jax.contract import (
    DECODE_ROUTERS,
    INACTIVE,
    ROLES,
    ROUTERS,
    EngineParams,
    PoolParams,
    SimParams,
    SimShape,
    WorkloadArrays,
    is_disaggregated,
)
from frontier_jax.cost import CostModel, cost_params_from_scenario

INT32_MAX = 2**31 - 1
# Batch slots a run starts with; callers double them while a run reports they bound.
INITIAL_SLOTS = 32


def engine_pools(s: Any, kv_blocks: int | None = None) -> PoolParams:
    """Engine knobs of scenario ``s``'s pools as [K] numpy arrays; KV capacity per instance
    from the spec unless ``kv_blocks`` is given (then every pool gets it)."""
    from frontier_jax.spec import kv_capacity_blocks
    from frontier_jax.spec.scenario import attention_ranks

    rows = []
    for pool in s.pools:
        sc = pool.scheduler
        blocks = kv_capacity_blocks(s, pool) if kv_blocks is None else kv_blocks
        # attention DP / an AF group's attention instances: one scheduler for the instance's
        # ranks, each with the caps given (one sequence's chunk within one rank's budget)
        chunk = min(sc.long_prefill_token_threshold or INT32_MAX, sc.max_num_batched_tokens)
        ranks = attention_ranks(s, pool)
        rows.append((ROLES[pool.role], ranks * sc.max_num_seqs, ranks * sc.max_num_batched_tokens,
                     sc.chunked_prefill, sc.block_size, blocks if pool.count else 0,
                     sc.reserve_full_isl, chunk))
    cols = list(zip(*rows, strict=True))
    types = (np.int32, np.int32, np.int32, np.bool_, np.int32, np.int32, np.bool_, np.int32)
    return PoolParams(*[np.asarray(c, t) for c, t in zip(cols, types, strict=True)])


def instance_pools(s: Any) -> np.ndarray:
    """i32 [instances]: the pool of each instance slot. Pools that receive arrivals
    (co-located, prefill) come first, then decode pools, each in layout order, each pool's
    instances in contiguous slots (so arrival receivers are a prefix of the slots)."""
    order = sorted(range(len(s.pools)), key=lambda k: (s.pools[k].role == "decode", k))
    return np.repeat(np.asarray(order, np.int32), [s.pools[k].count for k in order]).astype(np.int32)


def engine_params(s: Any, max_steps: int, kv_blocks: int | None = None) -> EngineParams:
    """Layout and engine knobs of scenario ``s`` (numpy leaves)."""
    from frontier_jax.spec import kv_link

    bw, lat = kv_link(s)
    return EngineParams(
        pool=instance_pools(s),
        router=np.int32(ROUTERS[s.cluster.router]),
        max_steps=np.int32(max_steps),
        pools=engine_pools(s, kv_blocks),
        decode_router=np.int32(DECODE_ROUTERS[s.kv_transfer.decode_router]),
        link_bw=np.float64(bw),
        link_lat_s=np.float64(lat),
    )


def workload_arrays(wl: Any) -> WorkloadArrays:
    """Arrival-sorted request arrays (float64 seconds, int32 tokens)."""
    return WorkloadArrays(
        arrival_s=np.asarray(wl.arrival_s, np.float64),
        prompt=np.asarray(wl.prompt_tokens, np.int32),
        output=np.asarray(wl.output_tokens, np.int32),
    )


def sim_params(s: Any, wl: Any, cost: CostModel | None = None,
               kv_blocks: int | None = None) -> SimParams:
    """The params pytree of one configuration (numpy leaves, no batch axis).

    ``cost``: the tier that will price it (default: the one the scenario selects,
    :func:`frontier_jax.cost.tiers.cost_model`); its ``prepare`` attaches each pool's tables.
    The event budget is ``[sim] max_steps`` or :func:`default_max_steps`.
    """
    if cost is None:
        from frontier_jax.cost.tiers import cost_model

        cost = cost_model(s)
    arrays = workload_arrays(wl)
    steps = s.sim.max_steps or default_max_steps(arrays)
    per_pool = []
    for pool in s.pools:
        c = cost_params_from_scenario(s, pool)
        if cost.prepare is not None:  # the tier's host-side tables
            c = cost.prepare(c, pool.scheduler.max_num_batched_tokens, pool.scheduler.max_num_seqs)
        per_pool.append(c)
    return SimParams(engine_params(s, steps, kv_blocks), _stack_pools(per_pool), arrays,
                     np.uint32(s.seed % 2**32))


def _stack_pools(per_pool: list) -> Any:
    """Per-pool cost params stacked on a leading [K] axis (tier tables padded to one length)."""
    moes = [c.moe for c in per_pool]
    if all(m is not None for m in moes):  # pools of different DP degrees
        per_pool = [c._replace(moe=m) for c, m in zip(per_pool, _pad_moe_params(moes), strict=True)]
    return jax.tree.map(lambda *xs: np.stack(xs), *_pad_tables(per_pool))


def default_max_steps(wl: WorkloadArrays) -> int:
    """An event budget no valid run reaches: arrivals plus 4x every token processed.

    Each iteration processes at least one token, so iterations <= prompt + output
    tokens plus recomputation; 4x leaves room for heavy preemption.
    """
    n = int(np.asarray(wl.arrival_s).shape[-1])
    p, o = np.asarray(wl.prompt, np.int64), np.asarray(wl.output, np.int64)
    per_config = int(np.max(p.sum(axis=-1) + o.sum(axis=-1)))
    return int(min(INT32_MAX - 1, 2 * n + 4 * per_config + 16))


def sim_shape(
    params: SimParams,
    max_instances: int | None = None,
    max_batch: int | None = None,
    queue_capacity: int | None = None,
) -> SimShape:
    """The smallest static shape that fits ``params`` (single or stacked configurations):
    its instance slots, the largest sequence cap of its pools, a queue that holds every
    request, and the prefill/decode paths when it has prefill or decode pools."""
    e = params.engine
    n = int(np.asarray(params.workload.arrival_s).shape[-1])
    return SimShape(
        num_requests=n,
        max_instances=int(max_instances or np.shape(e.pool)[-1]),
        max_batch=int(max_batch or np.max(e.pools.max_num_seqs)),
        queue_capacity=int(queue_capacity or n),
        disaggregated=is_disaggregated(params),
    )


def slot_cap(params: SimParams) -> int:
    """The most batch slots a configuration can use: its pools' largest sequence cap."""
    return int(np.max(params.engine.pools.max_num_seqs))


def first_slots(configs: Sequence[SimParams]) -> int:
    """The batch slots a run of ``configs`` starts with: :data:`INITIAL_SLOTS`, or fewer when
    no configuration can use that many (``frontier_jax.sim.sized`` doubles them as they bind)."""
    return min(INITIAL_SLOTS, max(slot_cap(c) for c in configs))


def stack(configs: Sequence[SimParams], instances: int | None = None) -> SimParams:
    """Stack configurations (or any pytrees of one structure) along a new leading axis (for
    ``simulate_batch``).

    Instance slots are padded with INACTIVE slots to ``instances`` (default: the longest
    layout; give the shape's ``max_instances`` so that every chunk of a sweep has one input
    shape and reuses one executable), pools with copies
    of the last pool (never used), and cost-tier lookup tables (``cost.tables``) of
    different lengths (configurations with different token budgets) with their last entry,
    never read past a configuration's own length."""
    configs = list(configs)
    if all(isinstance(c, SimParams) for c in configs):
        r = max([np.shape(c.engine.pool)[-1] for c in configs] + [instances or 0])
        k = max(np.shape(c.engine.pools.role)[-1] for c in configs)
        configs = _pad_config_tables([_pad_pools(_pad_slots(c, r), k) for c in configs])
        configs = pad_af(_pad_moe(configs))
    return jax.tree.map(lambda *xs: np.stack(xs), *configs)


def pad_af(configs: list, dims: tuple[int, int, int] | None = None) -> list:
    """Configurations whose AF params are padded to at least ``dims`` = (attention instance
    slots M, micro-batch slots MB, layer groups G) and to each other's: dead ranks and
    micro-batches (0: no requests, no time), and a group of 0 layers in front (the dense-first
    group a model without one lacks; with sampled MoE routing at the end instead, like the
    sampled layers :func:`pad_moe` adds). A sweep pads every chunk of a group to the group's
    most. Unchanged without AF params."""
    configs = list(configs)
    afs = [getattr(getattr(c, "cost", None), "af", None) for c in configs]
    if not afs or any(a is None for a in afs):
        return configs
    m0, mb0, g0 = dims or (0, 0, 0)
    most = [max(lo, *(np.shape(getattr(a, f))[-1] for a in afs))
            for lo, f in ((m0, "ranks"), (mb0, "micro"), (g0, "groups"))]
    out = []
    for c, a in zip(configs, afs, strict=True):
        new = {}
        sampled = c.cost.moe is not None
        for n, f, front in zip(most, ("ranks", "micro", "groups"), (False, False, not sampled),
                               strict=True):
            x = np.asarray(getattr(a, f))
            pad = (n - x.shape[-1], 0) if front else (0, n - x.shape[-1])
            new[f] = np.pad(x, [(0, 0)] * (x.ndim - 1) + [pad])
        out.append(c._replace(cost=c.cost._replace(af=a._replace(**new))))
    return out


def af_dims(scenarios) -> tuple[int, int, int] | None:
    """(M, MB, G) of scenarios with [af]: the most attention instances, micro-batches and
    layer groups; None when none disaggregates."""
    ss = [s for s in scenarios if s.af.enabled]
    if not ss:
        return None
    return (max(s.af.attention for s in ss), max(s.af.micro_batches for s in ss),
            max(1 + s.moe.sampled_layers if s.moe.sampled else 2 if s.model.dense_layers else 1
                for s in ss))


def _pad_slots(c: SimParams, r: int) -> SimParams:
    pool = np.asarray(c.engine.pool)
    if pool.shape[-1] == r:
        return c
    pool = np.concatenate([pool, np.full(r - pool.shape[-1], INACTIVE, pool.dtype)])
    return c._replace(engine=c.engine._replace(pool=pool))


def _pad_pools(c: SimParams, k: int) -> SimParams:
    have = np.shape(c.engine.pools.role)[-1]
    if have == k:
        return c
    edge = lambda x: np.pad(np.asarray(x), [(0, k - have)] + [(0, 0)] * (np.ndim(x) - 1),  # noqa: E731
                            mode="edge")
    return c._replace(engine=c.engine._replace(pools=jax.tree.map(edge, c.engine.pools)),
                      cost=jax.tree.map(edge, c.cost))


def _pad_config_tables(configs: list) -> list:
    tabs = [getattr(getattr(c, "cost", None), "tables", None) for c in configs]
    if any(t is None for t in tabs):
        return configs
    return [c._replace(cost=c.cost._replace(tables=t)) for c, t in
            zip(configs, _pad_to_longest(tabs), strict=True)]


def _pad_moe(configs: list) -> list:
    """Sampled-MoE rank shares ([K, L, S]) of different EP degrees (S) or MoE layer counts (L)
    padded with zero shares: a rank or layer past a configuration's own gets no rows; DP ranks
    ([K, D]) padded with dead ranks."""
    moes = [getattr(getattr(c, "cost", None), "moe", None) for c in configs]
    if any(m is None for m in moes):
        return configs
    return [c._replace(cost=c.cost._replace(moe=m))
            for c, m in zip(configs, _pad_moe_params(moes), strict=True)]


def pad_moe(configs: list, dims: tuple[int, int, int] | None = None) -> list:
    """Configurations whose sampled-MoE params are padded to at least ``dims`` = (sampled
    layers G, EP rank slots S, DP rank slots D) and to each other's: a sweep pads every
    chunk of a group to the group's dims, so chunks and reruns share one compiled shape and
    price a configuration alike whatever it is stacked with. Unchanged without MoE params."""
    moes = [getattr(getattr(c, "cost", None), "moe", None) for c in configs]
    if not configs or any(m is None for m in moes):
        return list(configs)
    return [c._replace(cost=c.cost._replace(moe=m))
            for c, m in zip(configs, _pad_moe_params(moes, dims), strict=True)]


def moe_dims(scenarios) -> tuple[int, int, int] | None:
    """(G, S, D) of scenarios with sampled MoE routing: the most sampled layers, the widest EP
    degree and the most DP ranks of any pool; None when none samples routing."""
    from frontier_jax.spec.scenario import pool_ep

    ss = [s for s in scenarios if s.moe.sampled]
    if not ss:
        return None
    return (max(s.moe.sampled_layers for s in ss), max(pool_ep(s, p) for s in ss for p in s.pools),
            max(p.dp for s in ss for p in s.pools))


def _pad_moe_params(moes: list, dims: tuple[int, int, int] | None = None) -> list:
    """:class:`MoEParams` (with any leading axes) padded to one G, S and D (at least ``dims``)."""
    g0, s0, d0 = dims or (0, 0, 0)
    lmax = max(g0, *(np.shape(m.shares)[-2] for m in moes))
    smax = max(s0, *(np.shape(m.shares)[-1] for m in moes))
    dmax = max(d0, *(np.shape(m.dp_ranks)[-1] for m in moes))
    out = []
    for m in moes:
        sh, dr = np.asarray(m.shares), np.asarray(m.dp_ranks)
        pad = [(0, 0)] * (sh.ndim - 2) + [(0, lmax - sh.shape[-2]), (0, smax - sh.shape[-1])]
        dpad = [(0, 0)] * (dr.ndim - 1) + [(0, dmax - dr.shape[-1])]
        m = m._replace(shares=np.pad(sh, pad), dp_ranks=np.pad(dr, dpad))
        if m.iter_shares is not None:
            it = np.asarray(m.iter_shares)
            m = m._replace(iter_shares=np.pad(it, [(0, 0)] * (it.ndim - 2) + pad[-2:]))
        out.append(m)
    return out


def _pad_tables(per_pool: list) -> list:
    tabs = [getattr(c, "tables", None) for c in per_pool]
    if any(t is None for t in tabs):
        return per_pool
    return [c._replace(tables=t) for c, t in zip(per_pool, _pad_to_longest(tabs), strict=True)]


def _pad_to_longest(tabs: list) -> list:
    """Tables (NamedTuples of arrays) padded along their last axis with their last entry,
    each field to the longest of that field."""
    longest = [max(np.shape(t[i])[-1] for t in tabs) for i in range(len(tabs[0]))]
    pad = lambda x, n: np.pad(x, [(0, 0)] * (np.ndim(x) - 1) + [(0, n - np.shape(x)[-1])],  # noqa: E731
                              mode="edge")
    return [type(t)(*[pad(x, n) for x, n in zip(t, longest, strict=True)]) for t in tabs]


def unstack(tree: Any, i: int) -> Any:
    """Configuration ``i`` of a stacked pytree (numpy leaves)."""
    return jax.tree.map(lambda x: np.asarray(x)[i], tree)


__all__ = ["INITIAL_SLOTS", "pad_af", "default_max_steps", "engine_params", "engine_pools", "instance_pools",
           "first_slots", "sim_params", "sim_shape", "slot_cap", "stack", "unstack", "workload_arrays"]
