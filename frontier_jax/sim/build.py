"""Build static shapes and params pytrees from validated scenarios (host side)."""

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from frontier_jax.cost import ROOFLINE, CostModel, cost_params_from_scenario
from frontier_jax.sim.types import ROUTERS, EngineParams, SimParams, SimShape, WorkloadArrays

INT32_MAX = 2**31 - 1
# Batch slots a run starts with; callers double them while a run reports they bound.
INITIAL_SLOTS = 32


def engine_params(s: Any, max_steps: int, kv_blocks: int | None = None) -> EngineParams:
    """Engine knobs of scenario ``s`` as numpy scalars; KV capacity from the spec unless given."""
    from frontier_jax.spec import kv_capacity_blocks

    sc = s.scheduler
    return EngineParams(
        num_replicas=np.int32(s.cluster.replicas),
        router=np.int32(ROUTERS[s.cluster.router]),
        max_num_seqs=np.int32(sc.max_num_seqs),
        max_batched_tokens=np.int32(sc.max_num_batched_tokens),
        chunked_prefill=np.bool_(sc.chunked_prefill),
        block_size=np.int32(sc.block_size),
        kv_blocks=np.int32(kv_capacity_blocks(s) if kv_blocks is None else kv_blocks),
        reserve_full_isl=np.bool_(sc.reserve_full_isl),
        max_steps=np.int32(max_steps),
    )


def workload_arrays(wl: Any) -> WorkloadArrays:
    """Arrival-sorted request arrays (float64 seconds, int32 tokens)."""
    return WorkloadArrays(
        arrival_s=np.asarray(wl.arrival_s, np.float64),
        prompt=np.asarray(wl.prompt_tokens, np.int32),
        output=np.asarray(wl.output_tokens, np.int32),
    )


def sim_params(s: Any, wl: Any, kv_blocks: int | None = None) -> SimParams:
    """The params pytree of one configuration (numpy leaves, no batch axis).

    The event budget is ``[sim] max_steps`` or :func:`default_max_steps`.
    """
    arrays = workload_arrays(wl)
    steps = s.sim.max_steps or default_max_steps(arrays)
    cost = cost_params_from_scenario(s)
    if s.cost.kind != "roofline":  # the tier's host-side tables (CostModel.prepare)
        prep = cost_model(s).prepare
        if prep is not None:
            sc = s.scheduler
            cost = prep(cost, sc.max_num_batched_tokens, sc.max_num_seqs)
    return SimParams(engine_params(s, steps, kv_blocks), cost, arrays)


def cost_model(s: Any) -> CostModel:
    """The cost-model tier scenario ``s`` selects (``[cost] kind``, ``predictor``).

    ``surrogate`` loads the named predictor set (cached, so equal scenarios share one
    static cost model and one compiled simulator) and checks that it was profiled on the
    simulated hardware; ``forest`` is host-only and refused here.
    """
    from frontier_jax.spec import SpecError

    kind = s.cost.kind
    if kind == "roofline":
        return ROOFLINE
    if kind != "surrogate":
        raise SpecError(s.source, "cost.kind", kind,
                        "'roofline' or 'surrogate' (the forest's MLP twin, which runs inside "
                        "the compiled step; forests themselves run on the host only)")
    from frontier_jax.cost.surrogate import surrogate_cost
    from frontier_jax.predict.devices import canonical_device

    src = Path(s.source)
    try:
        d, devices = _predictor_devices(s.cost.predictor, str(src.parent) if src.suffix else None)
    except (OSError, ValueError) as e:
        raise SpecError(s.source, "cost.predictor", s.cost.predictor, str(e)) from None
    dev = canonical_device(s.hardware.name)
    if dev not in devices:
        raise SpecError(s.source, "hardware", s.hardware.name,
                        f"predictor set {d.name!r} was profiled on {', '.join(devices) or 'no device'}; "
                        "simulate that hardware or use [cost] kind = 'roofline'")
    try:
        return surrogate_cost(str(d), dev)
    except (OSError, ValueError, KeyError) as e:
        raise SpecError(s.source, "cost.predictor", s.cost.predictor, str(e)) from None


@functools.lru_cache(maxsize=64)
def _predictor_devices(name: str, base: str | None) -> tuple[Path, list[str]]:
    """(folder, devices on its card) of predictor set ``name`` (cached: a sweep builds
    every configuration's params and cost model from the same set)."""
    from frontier_jax.cost.surrogate import resolve_predictor_dir

    d = resolve_predictor_dir(name, base)
    card = json.loads((d / "card.json").read_text())
    return d, sorted(card.get("devices") or {})


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
    max_replicas: int | None = None,
    max_batch: int | None = None,
    queue_capacity: int | None = None,
) -> SimShape:
    """The smallest static shape that fits ``params`` (single or stacked configurations)."""
    e = params.engine
    n = int(np.asarray(params.workload.arrival_s).shape[-1])
    return SimShape(
        num_requests=n,
        max_replicas=int(max_replicas or np.max(e.num_replicas)),
        max_batch=int(max_batch or np.max(e.max_num_seqs)),
        queue_capacity=int(queue_capacity or n),
    )


def stack(configs: Sequence[SimParams]) -> SimParams:
    """Stack configurations along a new leading axis (for ``simulate_batch``).

    Cost-tier lookup tables (``cost.tables``) of different lengths (configurations with
    different token budgets) are padded with their last entry, never read past a
    configuration's own length."""
    configs = _pad_tables(list(configs))
    return jax.tree.map(lambda *xs: np.stack(xs), *configs)


def _pad_tables(configs: list) -> list:
    tabs = [getattr(getattr(c, "cost", None), "tables", None) for c in configs]
    if any(t is None for t in tabs):
        return configs
    longest = [max(np.shape(t[i])[-1] for t in tabs) for i in range(len(tabs[0]))]
    out = []
    for c, t in zip(configs, tabs, strict=True):
        t = type(t)(*[np.pad(x, (0, n - np.shape(x)[-1]), mode="edge") for x, n in zip(t, longest, strict=True)])
        out.append(c._replace(cost=c.cost._replace(tables=t)))
    return out


def unstack(tree: Any, i: int) -> Any:
    """Configuration ``i`` of a stacked pytree (numpy leaves)."""
    return jax.tree.map(lambda x: np.asarray(x)[i], tree)
