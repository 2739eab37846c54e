"""The contract both simulators share: static shape, params, result, constants, event order.

Neither simulator owns this module. The vectorized simulator (:mod:`frontier_jax.sim`) and the
exact reference (:mod:`frontier_jax.reference`) both read a :class:`SimParams` and return a
:class:`SimResult`; they agree request by request because they implement the same policies on
the same params, process events in the same order (:data:`EVENT_ORDER`) and price iterations
with the same cost model (:mod:`frontier_jax.cost`).

Instances and pools. A configuration has up to R instance slots (``SimShape.max_instances``);
``engine.pool[r]`` says which *pool* slot r belongs to, or :data:`INACTIVE`. A pool is a group
of identical instances: one *role* (:data:`ROLES`: co-located serving, or prefill / decode
for PD disaggregation; attention / FFN to come), one engine configuration
(:class:`PoolParams`) and one cost configuration (model, TP/PP, hardware:
``SimParams.cost``), each leaf with a [K] axis over the K pools (its first axis in one
configuration's params; a stack of configurations puts [C] before it). Slots hold the pools
that receive arrivals (co-located, prefill) first, then the decode pools, each pool's
instances together, and the inactive slots last: the live instances, and the arrival
receivers, are prefixes of the slots. :func:`instance_params` is the one accessor that reads
an instance's engine and cost params.

Everything here is data and pure functions over it (numpy or jax.numpy alike); per-step cost
O(1) or O(R).
"""

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax

# ---- routers: the global arrival router, and the decode chooser at a PD hand-off
ROUND_ROBIN = 0
LEAST_OUTSTANDING = 1
MOST_FREE_KV = 2  # decode chooser only: the decode instance with the most free KV blocks
ROUTERS = {"round_robin": ROUND_ROBIN, "least_outstanding": LEAST_OUTSTANDING}
DECODE_ROUTERS = {**ROUTERS, "most_free_kv": MOST_FREE_KV}

# ---- request placement (SimResult.replica)
UNROUTED = -1  # not routed yet (only in an incomplete run)
REJECTED = -2  # can never fit its instance: rejected at arrival

# ---- instance slots and the roles of their pools
INACTIVE = -1  # engine.pool of an unused instance slot
COLOCATED = 0  # prefill and decode on the same instance (vLLM-style continuous batching)
PREFILL = 1  # PD: computes prompts, hands each finished prompt's KV to a decode instance
DECODE = 2  # PD: receives prompt KV over its link and decodes to the last token
ROLES = {"colocated": COLOCATED, "prefill": PREFILL, "decode": DECODE}  # AF adds its roles here
ARRIVAL_ROLES = (COLOCATED, PREFILL)  # roles the arrival router sends requests to

# ---- event kinds, numbered in their tie-break order (see EVENT_ORDER)
ARRIVAL = 0  # the next request arrives at the global router
DISPATCH = 1  # PD: a prefill instance hands a finished prompt to a decode instance
TRANSFER = 2  # PD: a KV transfer completes at its decode instance
STEP = 3  # an instance's clock: its in-flight iteration ends and it runs its next step
EVENT_KINDS = {"arrival": ARRIVAL, "dispatch": DISPATCH, "transfer": TRANSFER, "step": STEP}
EVENT_ORDER = "(time, kind, index)"
"""Both simulators process the earliest event first; on equal times the lower kind
(:data:`ARRIVAL` < :data:`DISPATCH` < :data:`TRANSFER` < :data:`STEP`: work that becomes
ready at t is seen by a step at t), then the lower index (the request for arrivals, the
prefill instance for dispatches, the decode instance for transfers, the instance for steps):
:func:`event_key`. The reference's heap is keyed by it; the vectorized simulator's
``sim.events.next_event`` computes the same minimum (a test holds the two together)."""


def event_key(time: float, kind: int, index: int) -> tuple[float, int, int]:
    """The order of events in both simulators: earliest time, then kind, then index."""
    return (time, kind, index)


@dataclass(frozen=True)
class SimShape:
    """Static sizes of one compiled simulator.

    num_requests: N, requests per configuration (arrival-sorted).
    max_instances: R, instance slots; ``engine.pool`` marks which are live (a prefix).
    max_batch: B, running-request slots per instance. Exact when >= max_num_seqs; a
      smaller B (faster) stays exact until the slots bind, which the run flags.
    queue_capacity: Q, per-instance ring buffer of routed, never-admitted requests.
    decode_window: longest run of identical decode-only iterations jumped in one
      event (1 = off; see :mod:`frontier_jax.sim.fast_forward`).
    disaggregated: compile the prefill/decode paths (hand-offs, KV transfers): True when any
      configuration has prefill or decode pools. A co-located run compiles without them.
    """

    num_requests: int
    max_instances: int
    max_batch: int
    queue_capacity: int
    decode_window: int = 32
    disaggregated: bool = False


class PoolParams(NamedTuple):
    """Engine knobs of each pool: every leaf i32/bool [K] (K pools; [C, K] when stacked).

    role: the pool's role (:data:`ROLES`); max_num_seqs: running-request cap per instance;
    max_batched_tokens: token budget per iteration; chunked_prefill: split prompts to fit
    the budget; block_size: tokens per KV block; kv_blocks: KV blocks per instance
    (capacity); reserve_full_isl: admit a waiting request only if its whole sequence fits
    the free blocks; max_chunk: with chunked prefill, the most tokens one sequence computes in
    an iteration (vLLM's long_prefill_token_threshold, and one DP rank's token budget; a value
    >= max_batched_tokens changes nothing).
    """

    role: Any
    max_num_seqs: Any
    max_batched_tokens: Any
    chunked_prefill: Any
    block_size: Any
    kv_blocks: Any
    reserve_full_isl: Any
    max_chunk: Any


class EngineParams(NamedTuple):
    """Layout and cluster knobs (a leading [C] axis on every leaf when vmapped).

    pool: i32 [R] the pool of each instance slot (index into the K pools), INACTIVE for an
    unused slot; router: ROUND_ROBIN or LEAST_OUTSTANDING (arrivals); max_steps: event
    budget, a run that exhausts it is flagged incomplete (traced, so it never recompiles);
    pools: :class:`PoolParams` ([K] leaves). PD only (ignored by co-located layouts):
    decode_router: the decode instance chosen at a hand-off (:data:`DECODE_ROUTERS`);
    link_bw: bytes/s per GPU of each decode instance's KV link; link_lat_s: its latency (s).
    """

    pool: Any
    router: Any
    max_steps: Any
    pools: PoolParams
    decode_router: Any
    link_bw: Any
    link_lat_s: Any


class WorkloadArrays(NamedTuple):
    """Requests sorted by arrival: arrival_s f64 [N] (s), prompt i32 [N], output i32 [N] (tokens)."""

    arrival_s: Any
    prompt: Any
    output: Any


class SimParams(NamedTuple):
    """Everything a configuration may vary.

    engine: :class:`EngineParams`; cost: the pools' cost params (a
    :class:`frontier_jax.cost.CostParams` whose leaves have a [K] axis first, tier tables
    included); workload: :class:`WorkloadArrays`; seed: u32 [] the configuration's seed, from
    which stochastic costs derive a key per (instance, iteration)
    (:class:`frontier_jax.cost.IterationContext`).
    """

    engine: EngineParams
    cost: Any
    workload: WorkloadArrays
    seed: Any


class PDTimes(NamedTuple):
    """The prefill/decode path of each request ([N]; inf or -1 where it did not happen): the
    decode instance it was handed to (decode_replica), when its prompt finished on the
    prefill instance (prefill_end_s), when its KV transfer started (transfer_start_s: it waited
    for the link and for room on the decode instance) and ended (transfer_end_s), and when the
    decode instance first scheduled it (decode_sched_s)."""

    decode_replica: Any
    prefill_end_s: Any
    transfer_start_s: Any
    transfer_end_s: Any
    decode_sched_s: Any


# The resources of an attention/FFN group whose busy time a run accounts (SimResult.af_busy_s).
AF_RESOURCES = ("attention", "link_a2f", "ffn", "link_f2a")


class SimResult(NamedTuple):
    """Outputs of one run (add a leading [C] axis when vmapped).

    Per request [N]: first_sched_s, first_token_s, finish_s (s, inf if never),
    generated (tokens), preemptions, replica (instance index, or REJECTED).
    Per instance slot [R]: pool (INACTIVE for an unused slot), kv_blocks (capacity, 0 when
    unused), busy_s, block_s (block-seconds), iterations.
    Scalars: steps, end_s (time of the last event), incomplete (step budget ran out),
    overflow (queue ring overflowed), slots_full (max_batch < max_num_seqs bound an
    admission: the run stopped early, rerun with more slots), kv_out_of_range (free KV
    blocks left [0, capacity]: a bug), backwards (clock went back: a bug).
    pd: :class:`PDTimes` of a disaggregated run, None for a co-located one.
    af_busy_s: [R, 4] seconds each resource of an AF group worked (``AF_RESOURCES``: the
    attention side, the A->F link, the FFN side, the F->A link), None for other runs.
    """

    first_sched_s: Any
    first_token_s: Any
    finish_s: Any
    generated: Any
    preemptions: Any
    replica: Any
    pool: Any
    kv_blocks: Any
    busy_s: Any
    block_s: Any
    iterations: Any
    steps: Any
    end_s: Any
    incomplete: Any
    overflow: Any
    slots_full: Any
    kv_out_of_range: Any
    backwards: Any
    pd: Any = None
    af_busy_s: Any = None


def num_pools(p: SimParams) -> int:
    """K, the number of pools (static: the length of the pool axis, last in ``PoolParams``)."""
    return int(p.engine.pools.role.shape[-1])


def pool_params(p: SimParams, k) -> tuple[PoolParams, Any]:
    """(engine knobs, cost params) of pool ``k`` (an int or a traced index) of one
    configuration's params (no batch axis): every leaf read at ``k`` on its leading [K] axis.
    With one pool the read is static (no gather in the step)."""
    k = 0 if num_pools(p) == 1 else k
    take = lambda x: x[k]  # noqa: E731  (the pool axis leads every leaf, tier tables included)
    return PoolParams(*[take(x) for x in p.engine.pools]), jax.tree.map(take, p.cost)


def instance_params(p: SimParams, r) -> tuple[PoolParams, Any]:
    """(engine knobs, cost params) of instance slot ``r``: its pool's (see :func:`pool_params`).
    The one accessor the simulators read an instance's params through; an inactive slot
    (pool -1) reads some pool's params, never used (it never runs)."""
    return pool_params(p, p.engine.pool[r] if num_pools(p) > 1 else 0)


def is_live(pool):
    """Which instance slots are in use, from their pool indices (``engine.pool`` or
    ``SimResult.pool``: any array, or one int): the one definition of a live slot."""
    return pool >= 0


def live_instances(p: SimParams, xp: Any):
    """bool [R]: the instance slots of params ``p`` in use (a prefix of the slots)."""
    return is_live(p.engine.pool)


def instance_roles(p: SimParams, xp: Any):
    """i32 [R]: the role of each instance slot (its pool's; INACTIVE for an unused slot)."""
    role = p.engine.pools.role
    r = xp.broadcast_to(role[0], p.engine.pool.shape) if num_pools(p) == 1 else role[
        xp.maximum(p.engine.pool, 0)]
    return xp.where(live_instances(p, xp), r, INACTIVE)


def is_disaggregated(p: SimParams) -> bool:
    """Whether params ``p`` (one configuration or a stack, numpy leaves) have prefill or
    decode pools: the static ``SimShape.disaggregated`` they need."""
    import numpy as np

    return bool(np.any(np.isin(np.asarray(p.engine.pools.role), (PREFILL, DECODE))))


def instance_kv_blocks(p: SimParams, xp: Any):
    """i32 [R]: KV blocks of each instance slot of one configuration (its pool's capacity;
    0 when unused)."""
    kv = p.engine.pools.kv_blocks
    cap = kv[0] if num_pools(p) == 1 else kv[xp.maximum(p.engine.pool, 0)]
    return xp.where(live_instances(p, xp), cap, 0).astype(kv.dtype)


def with_instances(p: SimParams, r: int, xp: Any) -> SimParams:
    """``p`` with ``engine.pool`` padded with INACTIVE slots to ``r`` instance slots (its
    trailing axis; raises ValueError if it has more)."""
    pool = p.engine.pool
    have = pool.shape[-1]
    if have > r:
        raise ValueError(f"params have {have} instance slots, more than the shape's {r}")
    if have == r:
        return p
    pad = [(0, 0)] * (pool.ndim - 1) + [(0, r - have)]
    return p._replace(engine=p.engine._replace(pool=xp.pad(pool, pad, constant_values=INACTIVE)))


__all__ = [
    "ARRIVAL", "ARRIVAL_ROLES", "COLOCATED", "DECODE", "DECODE_ROUTERS", "DISPATCH",
    "EVENT_KINDS", "EVENT_ORDER", "INACTIVE", "LEAST_OUTSTANDING", "MOST_FREE_KV", "PREFILL",
    "REJECTED", "ROLES", "ROUND_ROBIN", "ROUTERS", "STEP", "TRANSFER", "UNROUTED",
    "EngineParams", "PDTimes", "PoolParams", "SimParams", "SimResult", "SimShape",
    "WorkloadArrays", "event_key", "instance_roles", "is_disaggregated",
    "instance_kv_blocks", "instance_params", "is_live", "live_instances", "num_pools", "pool_params",
    "with_instances",
]
