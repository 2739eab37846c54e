"""Run scenarios end to end: spec -> workload -> params -> simulator -> metrics."""

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from frontier_jax.contract import SimParams, SimResult, SimShape
from frontier_jax.cost import ROOFLINE, CostModel
from frontier_jax.cost.tiers import cost_model
from frontier_jax.invariants import check
from frontier_jax.metrics import scenario_metrics
from frontier_jax.notices import warn
from frontier_jax.params import first_slots, sim_params, sim_shape, unstack
from frontier_jax.reference import simulate_reference
from frontier_jax.sim import sized
from frontier_jax.spec import Scenario, check_feasible
from frontier_jax.workload import make_workload


@dataclass(frozen=True)
class Prepared:
    """A scenario ready to simulate: params (numpy leaves), its static shape and the
    cost-model tier it selects (static too)."""

    scenario: Scenario
    params: SimParams
    shape: SimShape
    cost: CostModel = ROOFLINE


@dataclass
class RunOutput:
    """Result of one run: raw simulator output, per-request table, summary metrics."""

    result: SimResult
    table: dict[str, np.ndarray]
    metrics: dict[str, Any]
    wall_s: float


def prepare(s: Scenario) -> Prepared:
    """Check feasibility, draw the workload and build params and shape for scenario ``s``.

    The batch slots start at min(max_num_seqs, 32); :func:`simulate_sized` doubles
    them whenever a run reports that they bound (exactness never depends on the guess).
    """
    check_feasible(s)
    cost = cost_model(s)
    params = sim_params(s, make_workload(s.workload, s.seed), cost)
    shape = sim_shape(
        params,
        max_batch=first_slots([params]),
        queue_capacity=s.sim.queue_capacity,
    )
    return Prepared(s, params, shape, cost)


def simulate_sized(
    shape: SimShape, params: SimParams, cost: CostModel = ROOFLINE
) -> tuple[SimResult, SimShape]:
    """Simulate, doubling the batch slots (up to max_num_seqs) while they bind
    (:func:`frontier_jax.sim.sized.simulate_sized`).

    ``params`` is one configuration, or a stack of them (leading [C] axis: run together in
    one batch each round). Returns the result and the shape of its largest batch slots.
    """
    stacked = np.ndim(params.engine.max_steps) > 0
    configs = [unstack(params, i) for i in range(len(params.engine.max_steps))] if stacked else [params]
    results, slots = sized.simulate_sized(shape, configs, cost,
                                          chunk_size=len(configs) if stacked else None)
    res = sized.stack_results(results) if stacked else results[0]
    return res, replace(shape, max_batch=max(slots))


def summarize(prep: Prepared, result: SimResult, wall_s: float) -> RunOutput:
    """Per-request table and run metrics of ``result``; raises InvariantError if it is unsound."""
    s, wl = prep.scenario, prep.params.workload
    check(result, wl.arrival_s, wl.output, what=f"{s.name} ({s.source})")
    table, metrics = scenario_metrics(s, result, wl)
    metrics["wall_s"] = wall_s
    _warn_overload(s, np.asarray(wl.arrival_s), metrics)
    return RunOutput(result, table, metrics, wall_s)


def _warn_overload(s: Scenario, arrival_s: np.ndarray, m: dict[str, Any]) -> None:
    """Warns when the arrival rate is so far above what the layout completes that the run is
    mostly queueing: it completes under 80% of the offered rate and the median request waits
    longer for its first iteration than half its end-to-end time."""
    offered = len(arrival_s) / arrival_s[-1] if len(arrival_s) > 1 and arrival_s[-1] > 0 else 0
    done, queue, e2e = (m.get(k, np.nan) for k in ("throughput_rps", "queue_p50", "e2e_p50"))
    if offered and done < 0.8 * offered and queue > 0.5 * e2e:
        warn(s.source, "workload.arrival", f"requests arrive at {offered:.3g} req/s but the "
             f"layout completes {done:.3g} req/s: the queue grows all run (median wait "
             f"{queue:.3g} s), so latencies measure the backlog; lower the rate or find the "
             "capacity with a sweep's max-QPS search")


def run_vectorized(prep: Prepared) -> RunOutput:
    """Simulate with the compiled JAX simulator (wall time includes compilation)."""
    t0 = time.perf_counter()
    res, _ = simulate_sized(prep.shape, prep.params, prep.cost)
    return summarize(prep, res, time.perf_counter() - t0)


def run_reference(prep: Prepared) -> RunOutput:
    """Simulate with the exact heapq reference simulator."""
    t0 = time.perf_counter()
    res = simulate_reference(prep.params, prep.shape.max_instances, prep.cost)
    return summarize(prep, res, time.perf_counter() - t0)


def _max_rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    same = a == b  # covers matching infinities
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
    return float(np.max(np.where(same, 0.0, np.nan_to_num(diff, nan=np.inf)), initial=0.0))


def compare(vec: SimResult, ref: SimResult) -> dict[str, Any]:
    """Request-by-request agreement of two runs of the same configuration."""
    return {
        "n_requests": int(np.asarray(ref.finish_s).shape[0]),
        "max_rel_err_finish": _max_rel(vec.finish_s, ref.finish_s),
        "max_rel_err_ttft": _max_rel(vec.first_token_s, ref.first_token_s),
        "max_rel_err_first_sched": _max_rel(vec.first_sched_s, ref.first_sched_s),
        "preemptions_equal": bool(np.array_equal(vec.preemptions, ref.preemptions)),
        "replicas_equal": bool(np.array_equal(vec.replica, ref.replica)),
        "generated_equal": bool(np.array_equal(vec.generated, ref.generated)),
        "iterations_equal": bool(np.array_equal(vec.iterations, ref.iterations)),
        "preemptions_total": int(np.sum(ref.preemptions)),
        "finished": int(np.isfinite(np.asarray(ref.finish_s)).sum()),
        **_compare_pd(getattr(vec, "pd", None), getattr(ref, "pd", None)),
        **({} if getattr(vec, "af_busy_s", None) is None or ref.af_busy_s is None else
           {"max_rel_err_af_busy": _max_rel(vec.af_busy_s, ref.af_busy_s)}),
    }


def _compare_pd(vec: Any, ref: Any) -> dict[str, Any]:
    """Agreement of the prefill/decode paths (PD runs only): decode instance, the prompt's end
    on the prefill instance and the KV transfer's start and end."""
    if vec is None or ref is None:
        return {}
    return {
        "decode_replicas_equal": bool(np.array_equal(vec.decode_replica, ref.decode_replica)),
        "max_rel_err_prefill_end": _max_rel(vec.prefill_end_s, ref.prefill_end_s),
        "max_rel_err_transfer_start": _max_rel(vec.transfer_start_s, ref.transfer_start_s),
        "max_rel_err_transfer_end": _max_rel(vec.transfer_end_s, ref.transfer_end_s),
    }
