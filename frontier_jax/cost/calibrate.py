"""Calibrate the roofline to measured iteration times: fitted rates, not capped efficiencies.

The roofline prices GEMM FLOPs at ``peak_flops * gemm_eff``, attention FLOPs at
``peak_flops * attn_eff`` and memory traffic at ``hbm_bw * mem_eff``, plus the host overhead
``cpu_s + cpu_per_seq_s * seqs`` (:mod:`frontier_jax.cost.roofline`). :func:`fit_roofline`
fits those three products, the rates the engine really reached, and the two overheads to
measured iteration times (least squares on log time).

The rates are not bounded by the hardware figures the fit starts from. Those come from a
microbenchmark, which can measure another kernel or dtype path than the engine runs (on a CPU
without native bf16, torch's bf16 GEMM falls back to a slow path while the engine's own kernels
run several times faster): a fit that kept every efficiency <= 1 would then pin them at 1 and
stay wrong by the microbenchmark's error. Where a fitted rate is above its starting figure, the
calibrated hardware raises ``peak_flops`` (or ``hbm_bw``) to it, so every efficiency stays a
fraction of peak as the scenario format requires, and :attr:`Calibration.vs_start` says how far
the engine outran the microbenchmark.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from frontier_jax.cost.batch import BatchTotals
from frontier_jax.cost.params import CostParams
from frontier_jax.cost.roofline import totals_time

# fitted log-rates may go this far either side of their start (wide: a guard against a
# degenerate fit running to infinity, not a prior)
RATE_RANGE = 1e4
RATES = ("gemm_flops", "attention_flops", "memory_bytes_per_s")


class Calibration(NamedTuple):
    """What :func:`fit_roofline` found.

    cost: the scenario's ``[cost]`` values (gemm_efficiency, attention_efficiency,
    memory_efficiency, cpu_overhead_s, cpu_overhead_per_seq_s); hardware: the ``[hardware]``
    values they are fractions of (peak_flops, hbm_bw: the starting figures, raised to a fitted
    rate above them); rates: the fitted rates (FLOP/s, FLOP/s, bytes/s); vs_start: each rate
    over its starting figure (peak_flops or hbm_bw; > 1 where the engine outran it);
    error: :func:`relative_error` of the calibrated roofline on the fitted rows, and
    ``rates_at_bound``: rates the fit left at the edge of their range (``RATE_RANGE`` either side
    of the start: the rows do not determine them, e.g. attention with no long contexts).
    """

    cost: dict[str, float]
    hardware: dict[str, float]
    rates: dict[str, float]
    vs_start: dict[str, float]
    error: dict[str, float]

    def summary(self) -> dict[str, dict[str, float]]:
        """What a report records of the fit (the fit's error apart): the ``[cost]`` values as
        ``fitted``, the calibrated ``hardware``, the ``rates`` and ``rate_over_microbenchmark``."""
        return {"fitted": self.cost, "hardware": self.hardware, "rates": self.rates,
                "rate_over_microbenchmark": self.vs_start}


def relative_error(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    """Per-row relative error of ``pred`` against ``meas`` (rows with a positive finite
    measurement): n, median |err|, mean signed err, p90 |err| and total pred / total meas."""
    pred, meas = np.asarray(pred, np.float64), np.asarray(meas, np.float64)
    ok = np.isfinite(pred) & np.isfinite(meas) & (meas > 0)
    rel = (pred[ok] - meas[ok]) / meas[ok]
    if not rel.size:
        return {"n": 0}
    return {"n": int(rel.size), "median_abs_rel_err": float(np.median(np.abs(rel))),
            "mean_rel_err": float(np.mean(rel)),
            "p90_abs_rel_err": float(np.percentile(np.abs(rel), 90)),
            "busy_ratio_pred_over_meas": float(pred[ok].sum() / meas[ok].sum())}


def with_rates(base: CostParams, rates: np.ndarray, cpu_s: float,
               cpu_per_seq_s: float) -> CostParams:
    """``base`` pricing GEMMs, attention and memory traffic at ``rates`` (FLOP/s, FLOP/s,
    bytes/s) with the given host overheads; efficiencies may exceed 1 here (fitting only)."""
    peak, bw = float(base.peak_flops), float(base.hbm_bw)
    return base._replace(gemm_eff=rates[0] / peak, attn_eff=rates[1] / peak,
                         mem_eff=rates[2] / bw, cpu_s=cpu_s, cpu_per_seq_s=cpu_per_seq_s)


def fit_roofline(totals: BatchTotals, measured_s: np.ndarray, base: CostParams) -> Calibration:
    """Fit the roofline's rates and host overheads to ``measured_s`` (seconds, [N]) of the
    iterations whose batch totals are ``totals`` ([N] leaves), starting from ``base`` (the
    scenario's params: model, parallelism, hardware figures and efficiencies)."""
    from scipy.optimize import least_squares

    meas = np.asarray(measured_s, np.float64)
    if meas.ndim != 1 or meas.size < 5 or not np.all(np.isfinite(meas) & (meas > 0)):
        raise ValueError(f"fit_roofline: need >= 5 positive finite times, got {meas.size} "
                         "(or some <= 0 / not finite)")
    peak, bw = float(base.peak_flops), float(base.hbm_bw)
    start = np.array([peak * float(base.gemm_eff), peak * float(base.attn_eff),
                      bw * float(base.mem_eff)])
    log0 = np.log(start)

    def pred(x: np.ndarray) -> np.ndarray:
        p = with_rates(base, np.exp(x[:3]), x[3], x[4])
        return np.asarray(totals_time(totals, p, np), np.float64)

    x0 = np.concatenate([log0, np.clip([float(base.cpu_s), float(base.cpu_per_seq_s)], 0.0, [1.0, 0.1])])
    lo = np.concatenate([log0 - np.log(RATE_RANGE), [0.0, 0.0]])
    hi = np.concatenate([log0 + np.log(RATE_RANGE), [1.0, 0.1]])
    res = least_squares(lambda x: np.log(pred(x)) - np.log(meas), x0, bounds=(lo, hi))
    rates = np.exp(res.x[:3])
    at_bound = np.isclose(res.x[:3], lo[:3]) | np.isclose(res.x[:3], hi[:3])
    new_peak = max(peak, float(rates[0]), float(rates[1]))
    new_bw = max(bw, float(rates[2]))
    cost = {"gemm_efficiency": float(rates[0] / new_peak),
            "attention_efficiency": float(rates[1] / new_peak),
            "memory_efficiency": float(rates[2] / new_bw),
            "cpu_overhead_s": float(res.x[3]), "cpu_overhead_per_seq_s": float(res.x[4])}
    return Calibration(
        cost=cost, hardware={"peak_flops": new_peak, "hbm_bw": new_bw},
        rates=dict(zip(RATES, (float(r) for r in rates), strict=True)),
        vs_start={"gemm_flops": float(rates[0] / peak), "attention_flops": float(rates[1] / peak),
                  "memory_bytes_per_s": float(rates[2] / bw)},
        error={**relative_error(pred(res.x), meas),
               "rates_at_bound": [r for r, b in zip(RATES, at_bound, strict=True) if b]})
