"""Max sustainable QPS under SLOs, for every configuration of a chunk at once.

Goodput as DistServe and Vidur-Search define it: the highest arrival rate at which
the share of requests meeting the TTFT and TPOT SLOs is at least ``target``. Each
configuration's arrivals are one unit-rate sequence scaled by 1/rate (common random
numbers: the same requests at every rate), and a geometric bisection runs for all
configurations in lockstep, one vmapped batch per round.
"""

from typing import Any

import numpy as np

from frontier_jax.metrics import request_table, run_metrics
from frontier_jax.sim.build import sim_params
from frontier_jax.spec import with_overrides
from frontier_jax.sweep.execute import Planned, metrics_row, simulate_configs
from frontier_jax.sweep.spec import MaxQPS
from frontier_jax.workload import make_workload


def attainment(p: Planned, res: Any, wl: Any) -> float:
    """Share of requests meeting the scenario's SLOs (rejected ones miss)."""
    s = p.scenario
    table = request_table(res, wl.arrival_s, wl.prompt, wl.output)
    return run_metrics(
        table, res, s.cluster.replicas, s.gpus_per_replica, s.slo.ttft_s, s.slo.tpot_s
    )["slo_attainment"]


def _at_rate(base: list, rates: np.ndarray) -> list:
    return [
        p._replace(workload=p.workload._replace(arrival_s=p.workload.arrival_s / r))
        for p, r in zip(base, rates, strict=True)
    ]


def bisect(
    cfg: MaxQPS, members: list[Planned], size: int, n: int, r_slots: int, sharding
) -> tuple[np.ndarray, list, list]:
    """Max rate per configuration (0 when even ``cfg.low`` misses the target; ``cfg.high``
    when even that meets it), with unit-rate params for replaying a rate."""
    unit = []
    for p in members:
        s = with_overrides(p.scenario, {"workload.arrival.rate": 1.0})
        unit.append(sim_params(s, make_workload(s.workload, s.seed)))
    caps = [p.scenario.scheduler.max_num_seqs for p in members]

    def meets(rates: np.ndarray) -> np.ndarray:
        params = _at_rate(unit, rates)
        res, _ = simulate_configs(params, caps, size, n, r_slots, sharding)
        return np.array(
            [
                attainment(p, r, q.workload) >= cfg.target
                for p, r, q in zip(members, res, params, strict=True)
            ]
        )

    c = len(members)
    ok_low = meets(np.full(c, cfg.low))
    ok_high = meets(np.full(c, cfg.high))
    lo, hi = np.full(c, cfg.low), np.full(c, cfg.high)
    for _ in range(cfg.rounds):
        mid = np.sqrt(lo * hi)
        ok = meets(mid)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    best = np.where(ok_low, np.where(ok_high, cfg.high, lo), 0.0)
    return best, unit, caps


def max_qps_rows(
    cfg: MaxQPS, members: list[Planned], size: int, n: int, r_slots: int, sharding
) -> tuple[list[dict], int]:
    """Rows with ``max_qps`` (req/s), ``max_qps_per_gpu`` and the metrics at that rate."""
    best, unit, caps = bisect(cfg, members, size, n, r_slots, sharding)
    replay = np.where(best > 0, best, cfg.low)
    params = _at_rate(unit, replay)
    res, slots = simulate_configs(params, caps, size, n, r_slots, sharding)
    rows = []
    for p, r, q, b, qps in zip(members, res, params, slots, best, strict=True):
        row = metrics_row(p, r, q.workload, b)
        row.update(
            max_qps=float(qps),
            max_qps_per_gpu=float(qps) / p.scenario.num_gpus,
            rate=float(qps),
            max_qps_saturated=bool(qps >= cfg.high),
        )
        rows.append(row)
    rounds = 3 + cfg.rounds
    return rows, len(members) * n * rounds


def scalar_max_qps(cfg: MaxQPS, member: Planned) -> float:
    """The same bisection for one configuration alone (the test's yardstick)."""
    n = member.scenario.workload.num_requests
    best, _, _ = bisect(cfg, [member], 1, n, member.scenario.cluster.replicas, None)
    return float(best[0])


__all__ = ["attainment", "bisect", "max_qps_rows", "scalar_max_qps"]
