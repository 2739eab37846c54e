"""Max sustainable QPS under SLOs, for every configuration of a chunk at once.

Goodput as DistServe and Vidur-Search define it: the highest arrival rate at which
the share of requests meeting the TTFT and TPOT SLOs is at least ``target``. Each
configuration's arrivals are one unit-rate sequence scaled by 1/rate (common random
numbers: the same requests at every rate), and a geometric bisection runs for all
configurations in lockstep, one vmapped batch per round.

A run has a fixed number N of requests, so attainment over the whole run alone is not a
steady-state measure: raising the rate only squeezes the same N requests into a shorter
burst, and in the limit all of them arrive at once and request n waits about n / capacity,
at most N / capacity. Whenever that is under the TTFT SLO every rate "meets" it and the
bisection ends at its upper bound: max QPS then measures N, not the layout. So a rate
counts as sustained only when, in steady state (:func:`frontier_jax.metrics.steady_state`):

* the SLO attainment over a measurement window that leaves out the first ``WARMUP`` and
  the last ``DRAIN`` of the arrivals (empty-system start, draining end: both optimistic)
  is at least ``target``, and
* the system keeps up with the offered load: TTFT does not grow across the window by more
  than ``KEEP_UP_EPS`` seconds per second of arrivals (first and last thirds, medians),
  i.e. first tokens come out at no less than ``rate / (1 + KEEP_UP_EPS)``. An overloaded
  system builds a queue whose wait grows at ``rate / capacity - 1`` per second whatever N
  is, so this test does not fade as the burst gets shorter; a system that keeps up has a
  stationary TTFT and a trend near 0.

The second test is what removes the finite-N bias: it compares the service rate with the
arrival rate instead of asking whether a finite backlog happened to clear within the SLO.
It is cheap (two medians per run, on arrays the attainment already needs) and needs no
larger N. What it cannot see is a run shorter than the system's fill time: when the
requests a replica gets at the max rate fit in its running batch at once and the run lasts
about one end-to-end latency, the batch never reaches its steady-state size, TPOT stays
optimistic and nothing queues. Max QPS is then still an overestimate that grows with the
requests per replica falling; give runs enough requests per GPU (e.g. ``num_requests =
K * replicas * tp``) that the run at the max rate lasts several end-to-end latencies.
(Measured with benchmarks/optimizer_check.py, Llama-3-8B, one TP1 replica: 24 req/s/GPU
with 800 requests per run, 64 with 50.)
"""

from typing import Any

import numpy as np

from frontier_jax.contract import SimShape
from frontier_jax.metrics import scenario_metrics, scenario_table, steady_state
from frontier_jax.params import first_slots, sim_params
from frontier_jax.sim.sized import simulate_sized
from frontier_jax.spec import with_overrides
from frontier_jax.sweep.plan import Group, Planned, group_plans, metrics_row
from frontier_jax.sweep.spec import MaxQPS
from frontier_jax.workload import make_workload

# share of the arrivals left out of the measurement window at the start and at the end
WARMUP = 0.1
DRAIN = 0.1
# largest TTFT growth per second of arrivals that still counts as keeping up
KEEP_UP_EPS = 0.05


def attainment(p: Planned, res: Any, wl: Any) -> float:
    """Share of requests meeting the scenario's SLOs over the whole run (rejected ones miss)."""
    s = p.scenario
    return scenario_metrics(s, res, wl)[1]["slo_attainment"]


def steady(p: Planned, res: Any, wl: Any) -> dict[str, float]:
    """Window attainment and TTFT trend of one run (see the module docstring)."""
    s = p.scenario
    return steady_state(scenario_table(s, res, wl), s.slo.ttft_s, s.slo.tpot_s, WARMUP, DRAIN)


def sustained(cfg: MaxQPS, st: dict[str, float]) -> bool:
    """Whether a run's steady state meets ``cfg.target`` and keeps up with its arrivals
    (a run too short to show a trend, under 3 requests in the window, is judged on its
    attainment alone)."""
    return bool(st["window_attainment"] >= cfg.target and not st["ttft_trend"] > KEEP_UP_EPS)


def _at_rate(base: list, rates: np.ndarray) -> list:
    return [
        p._replace(workload=p.workload._replace(arrival_s=p.workload.arrival_s / r))
        for p, r in zip(base, rates, strict=True)
    ]


def chunk_shape(group: Group, configs: list) -> SimShape:
    """The static shape a chunk of ``group`` starts from (slots doubled as they bind)."""
    n = group.num_requests
    return SimShape(num_requests=n, max_instances=group.max_instances,
                    max_batch=first_slots(configs), queue_capacity=n,
                    disaggregated=group.disaggregated)


def bisect(cfg: MaxQPS, group: Group, members: list[Planned], size: int,
           sharding) -> tuple[np.ndarray, list]:
    """Max rate per configuration of ``members`` (a chunk of ``group``; 0 when even
    ``cfg.low`` misses the target; ``cfg.high`` when even that meets it), with unit-rate
    params for replaying a rate. Every member is priced with the group's cost model."""
    cost = group.cost
    unit = []
    for p in members:
        # a replayed trace is rescaled to 1 request/s (its time_scale reset), bursts kept
        s = with_overrides(p.scenario, {"workload.arrival.rate": 1.0, "workload.time_scale": 1.0})
        unit.append(sim_params(s, make_workload(s.workload, s.seed), cost))
    unit = group.pad(unit)
    shape = chunk_shape(group, unit)

    def meets(rates: np.ndarray) -> np.ndarray:
        params = _at_rate(unit, rates)
        res, _ = simulate_sized(shape, params, cost, chunk_size=size, sharding=sharding)
        return np.array(
            [
                sustained(cfg, steady(p, r, q.workload))
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
    return best, unit


def max_qps_rows(
    cfg: MaxQPS, group: Group, members: list[Planned], size: int, sharding
) -> tuple[list[dict], int]:
    """Rows with ``max_qps`` (req/s), ``max_qps_per_gpu`` and the metrics at that rate, for
    ``members`` (a chunk of ``group``, run ``size`` configurations per call)."""
    n = group.num_requests
    best, unit = bisect(cfg, group, members, size, sharding)
    replay = np.where(best > 0, best, cfg.low)
    params = _at_rate(unit, replay)
    res, slots = simulate_sized(chunk_shape(group, unit), params, group.cost,
                                chunk_size=size, sharding=sharding)
    rows = []
    for p, r, q, b, qps in zip(members, res, params, slots, best, strict=True):
        row = metrics_row(p, r, q.workload, b)
        st = steady(p, r, q.workload)
        row.update(
            window_attainment=st["window_attainment"],
            ttft_trend=st["ttft_trend"],
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
    (group,) = group_plans([member])
    best, _ = bisect(cfg, group, [member], 1, None)
    return float(best[0])


__all__ = [
    "DRAIN",
    "chunk_shape",
    "KEEP_UP_EPS",
    "WARMUP",
    "attainment",
    "bisect",
    "max_qps_rows",
    "scalar_max_qps",
    "steady",
    "sustained",
]
