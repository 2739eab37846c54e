"""From a sweep's configurations to runnable groups: validate, name, group by compiled shape.

Shared by the sweep (:mod:`.execute`), max-QPS (:mod:`.maxqps`) and the optimiser
(:mod:`.search`):

* :func:`plan_config` validates one configuration (its scenario, or why it cannot run);
* :func:`family`, :func:`layout_label` and :func:`identity` name it from its layout's pools
  (GPU count from ``Scenario.num_gpus``, the one place it is computed);
* :func:`group_plans` is the one grouping: configurations that share a static shape and a
  cost model (request count, cost tier and everything that fixes it) run together, so a
  chunk never prices one configuration with another's cost model;
* :func:`metrics_row` reduces one run to its results row.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from frontier_jax.cost import CostModel
from frontier_jax.cost.tiers import cost_key, cost_model
from frontier_jax.invariants import violations
from frontier_jax.metrics import scenario_metrics
from frontier_jax.params import af_dims, moe_dims, pad_af, pad_moe
from frontier_jax.spec import Scenario, SpecError, check_feasible, with_overrides
from frontier_jax.sweep.expand import Config, expand
from frontier_jax.workload import workload_size


@dataclass(frozen=True)
class Planned:
    """A configuration ready to chunk: its scenario, or why it cannot run."""

    config: Config
    scenario: Scenario | None
    status: str  # "ok" or the reason it is skipped


def plan_config(spec, cfg: Config) -> Planned:
    """Validate one configuration: its scenario, or the reason it cannot run."""
    try:
        s = with_overrides(spec.base, cfg.overrides) if cfg.overrides else spec.base
        check_feasible(s)  # every pool: weights fit, at least one KV block
        cost_model(s)  # a missing or mismatched predictor set is this config's error
        return Planned(cfg, s, "ok")
    except SpecError as e:
        return Planned(cfg, None, f"infeasible: {e}")


def plan(spec) -> tuple[list[Planned], int]:
    """Expand ``spec`` and validate every configuration; returns (plans, dropped by constraints)."""
    configs, dropped = expand(spec)
    return [plan_config(spec, cfg) for cfg in configs], dropped


_ROLE_LETTER = {"prefill": "P", "decode": "D"}


def _parallel(pool) -> str:
    dp = f"DP{pool.dp}" if pool.dp > 1 else ""
    return f"{dp}TP{pool.tp}" + (f"PP{pool.pp}" if pool.pp > 1 else "")


def _pool_family(pool, s: Scenario) -> str:
    fam = _parallel(pool)
    if pool.role != "colocated":
        fam = f"{_ROLE_LETTER.get(pool.role, pool.role)}:{fam}"
    return fam + (f"@{pool.hardware.name}" if pool.hardware != s.hardware else "")


def family(s: Scenario) -> str:
    """Layout family used for colours: TP degree (and PP when > 1) of each pool with
    instances, joined by ``+`` (a pool's role and hardware named when they are not the
    scenario's defaults); PD layouts are their own families (``PD P:TP2+D:TP1``)."""
    fam = "+".join(_pool_family(p, s) for p in s.pools if p.count)
    if s.af.enabled:  # AF groups: the A:F ratio and each side's TP
        af = s.af
        hw = f"@{af.ffn_hardware}" if af.ffn_hardware not in (None, s.hardware.name) else ""
        return f"AF {af.attention}A:TP{s.parallel.tp}+{af.ffn}F:TP{af.ffn_tp}{hw}"
    return f"PD {fam}" if s.disaggregated else fam


def _rate(s: Scenario) -> str:
    """``rate=8``, or ``trace`` for a trace replayed at its own times (``trace x2`` when
    stretched by its time_scale)."""
    wl = s.workload
    if wl.arrival.rate is not None:
        return f"rate={wl.arrival.rate:g}"
    return "trace" + (f" x{wl.time_scale:g}" if wl.time_scale != 1.0 else "")


def layout_label(s: Scenario) -> str:
    """Short human label of a configuration's layout (``2P(TP2)+6D(TP1) rate=8`` for PD)."""
    used = [p for p in s.pools if p.count]
    if s.disaggregated:
        parts = [f"{p.count}{_ROLE_LETTER[p.role]}({_parallel(p)}"
                 + (f"@{p.hardware.name}" if p.hardware != s.hardware else "") + ")" for p in used]
        return "+".join(parts) + f" {_rate(s)}"
    if s.af.enabled:
        sc = s.scheduler
        return (f"{s.cluster.replicas}x[{family(s)}] m={s.af.micro_batches} mbt={sc.max_num_batched_tokens} "
                f"seqs={sc.max_num_seqs} {_rate(s)}")
    if len(used) == 1:
        pool = used[0]
        sc = pool.scheduler
        return (f"{pool.count}x{family(s)} mbt={sc.max_num_batched_tokens} "
                f"seqs={sc.max_num_seqs} {_rate(s)}")
    parts = [f"{p.count}x{_pool_family(p, s)} mbt={p.scheduler.max_num_batched_tokens} "
             f"seqs={p.scheduler.max_num_seqs}" for p in used]
    return " + ".join(parts) + f" {_rate(s)}"


def identity(p: Planned) -> dict[str, Any]:
    """Columns that name a configuration: id, axis values, layout, GPUs (for a layout of one
    pool also its replicas, tp and pp; with several pools replicas counts every instance and
    tp / pp are left empty; a PD layout adds prefill_instances and decode_instances)."""
    row = {"config_id": p.config.config_id, **p.config.values}
    s = p.scenario
    if s is not None:
        used = [q for q in s.pools if q.count]
        one = used[0] if len(used) == 1 else None
        row.update(
            gpus=s.num_gpus,
            family=family(s),
            layout=layout_label(s),
            replicas=s.num_instances,
            tp=one.tp if one else None,
            pp=one.pp if one else None,
            rate=s.workload.arrival.rate,
        )
        if s.disaggregated:
            for role in _ROLE_LETTER:
                row[f"{role}_instances"] = sum(q.count for q in used if q.role == role)
    return row


def metrics_row(p: Planned, res: Any, wl: Any, max_batch: int) -> dict[str, Any]:
    """One results row: the configuration's identity, its run metrics and status."""
    s = p.scenario
    _, m = scenario_metrics(s, res, wl)
    for k in ("replica_busy_frac", "replica_kv_occupancy", "replica_iterations"):
        v = m.pop(k)
        m[k.replace("replica_", "mean_")] = float(np.mean(v))
    m["tok_s_per_user"] = 1.0 / m["tpot_mean"] if m["tpot_mean"] > 0 else float("nan")
    m["goodput_rps_per_gpu"] = m.get("goodput_rps", float("nan")) / m["gpus"]
    bad = violations(res, wl.arrival_s, wl.output)
    status = "invalid: " + "; ".join(bad) if bad else "ok"
    return {**identity(p), **m, "max_batch": max_batch, "status": status}


@dataclass(frozen=True)
class Group:
    """Configurations that run in one compiled simulator: same request count and cost model.

    num_requests: N; max_instances: instance slots (the group's largest layout: a few
    masked slots cost O(R) per step, far less than another compilation); cost: the static
    cost model every member is priced with; disaggregated: the PD paths are compiled."""

    key: tuple
    members: list
    num_requests: int
    max_instances: int
    cost: CostModel
    disaggregated: bool = False
    moe_dims: tuple | None = None  # (G, S, D) every chunk's MoE params are padded to
    af_dims: tuple | None = None  # (M, MB, G) every chunk's AF params are padded to

    def pad(self, params: list) -> list:
        """``params`` (a chunk's) with their MoE and AF params padded to the group's dims:
        one compiled shape for every chunk and rerun of the group."""
        return pad_af(pad_moe(params, self.moe_dims), self.af_dims)


def group_key(s: Scenario) -> tuple:
    """What a configuration's compiled simulator depends on beyond its params: its request
    count, whether it has the PD paths, and what fixes its cost model
    (:func:`frontier_jax.cost.tiers.cost_key`)."""
    return (workload_size(s.workload), s.disaggregated, cost_key(s))


def group_plans(plans: list[Planned]) -> list[Group]:
    """The runnable (``ok``) plans grouped by :func:`group_key`, groups in key order, members
    in plan order."""
    by_key: dict[tuple, list[Planned]] = {}
    for p in plans:
        if p.status == "ok":
            by_key.setdefault(group_key(p.scenario), []).append(p)
    return [Group(key, members, key[0], max(m.scenario.num_instances for m in members),
                  cost_model(members[0].scenario), key[1],
                  moe_dims([m.scenario for m in members]),
                  af_dims([m.scenario for m in members]))
            for key, members in sorted(by_key.items(), key=lambda kv: repr(kv[0]))]


__all__ = ["Group", "Planned", "family", "group_key", "group_plans", "identity", "layout_label",
           "metrics_row", "plan", "plan_config"]
