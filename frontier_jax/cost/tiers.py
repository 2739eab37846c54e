"""Which cost-model tier a scenario selects (``[cost] kind``, ``predictor``).

The one place a tier is chosen: the runner, the sweep, max-QPS and the optimiser ask here,
and the params builder attaches the chosen tier's tables (``CostModel.prepare``).
"""

import functools
import json
from pathlib import Path
from typing import Any

from frontier_jax.cost import ROOFLINE, ROOFLINE_AF, ROOFLINE_MOE, CostModel


def cost_model(s: Any) -> CostModel:
    """The cost-model tier scenario ``s`` selects.

    ``roofline`` needs nothing more (with sampled MoE routing, the variant that prices an
    iteration and its decode window in one pass, so the maps are drawn once). ``surrogate`` loads the named predictor set (cached, so
    equal scenarios share one static cost model and one compiled simulator) and checks that
    it was profiled on the simulated hardware of every pool (one device: a set prices the
    device it was profiled on); ``forest`` is host-only and refused. Raises SpecError.
    """
    from frontier_jax.spec import SpecError

    kind = s.cost.kind
    if kind == "roofline":
        if s.af.enabled:
            return ROOFLINE_AF
        return ROOFLINE_MOE if s.moe.sampled else ROOFLINE
    if kind != "surrogate":
        raise SpecError(s.source, "cost.kind", kind,
                        "'roofline' or 'surrogate' (the forest's MLP twin, which runs inside "
                        "the compiled step; forests themselves run on the host only)")
    wide = [p for p in s.pools if p.dp > 1]
    if wide:
        raise SpecError(s.source, "cost.kind", kind,
                        f"'roofline' for attention data parallelism (pool {wide[0].name!r} has "
                        f"dp = {wide[0].dp}): the surrogate tier prices one rank's batch")
    from frontier_jax.cost.surrogate import surrogate_cost
    from frontier_jax.predict.devices import canonical_device

    src = Path(s.source)
    try:
        d, devices = _predictor_devices(s.cost.predictor, str(src.parent) if src.suffix else None)
    except (OSError, ValueError) as e:
        raise SpecError(s.source, "cost.predictor", s.cost.predictor, str(e)) from None
    names = sorted({p.hardware.name for p in s.pools if p.count})
    if len(names) > 1:
        raise SpecError(s.source, "layout", ", ".join(names),
                        "one hardware for every pool under [cost] kind = 'surrogate' (a predictor "
                        "set prices the device it was profiled on); use kind = 'roofline'")
    dev = canonical_device(names[0])
    if dev not in devices:
        raise SpecError(s.source, "hardware", names[0],
                        f"predictor set {d.name!r} was profiled on {', '.join(devices) or 'no device'}; "
                        "simulate that hardware or use [cost] kind = 'roofline'")
    try:
        return surrogate_cost(str(d), dev)
    except (OSError, ValueError, KeyError) as e:
        raise SpecError(s.source, "cost.predictor", s.cost.predictor, str(e)) from None


def cost_key(s: Any) -> tuple:
    """What fixes scenario ``s``'s static cost model: configurations with equal keys share
    one :class:`CostModel` (and so may share a compiled simulator)."""
    c = s.cost
    # sampled MoE routing adds params leaves (MoEParams) that the other configurations lack
    moe = ("moe-sampled",) if s.moe.sampled else ()
    if s.moe.drift:  # and the drift leaves (its draws are static: no drift, no extra work)
        moe = (*moe, "moe-drift")
    if s.moe.replay == "iterations":  # a replayed trace's [I, G, S] shares: one I per group
        from frontier_jax.spec.scenario import load_routing_iterations

        moe = (*moe, "moe-replay", load_routing_iterations(s.moe.trace).shape[0])
    if s.af.enabled:  # AF params leaves and the graph's pricing
        moe = (*moe, "af")
    if c.kind == "roofline":
        return ("roofline", *moe)
    src = Path(s.source)
    return (c.kind, c.predictor or "", str(src.parent) if src.suffix else "",
            tuple(sorted({p.hardware.name for p in s.pools if p.count})), *moe)


@functools.lru_cache(maxsize=64)
def _predictor_devices(name: str, base: str | None) -> tuple[Path, list[str]]:
    """(folder, devices on its card) of predictor set ``name`` (cached: a sweep builds
    every configuration's params and cost model from the same set)."""
    from frontier_jax.cost.surrogate import resolve_predictor_dir

    d = resolve_predictor_dir(name, base)
    card = json.loads((d / "card.json").read_text())
    return d, sorted(card.get("devices") or {})


__all__ = ["cost_key", "cost_model"]
