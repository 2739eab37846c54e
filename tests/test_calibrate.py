"""Calibration of the roofline to measured iteration times (frontier_jax.cost.calibrate):
the fitted rates are not capped by the starting hardware figures, so a microbenchmark that
measured the wrong kernel path (issue 18 item 6: 1.3 GFLOP/s measured, the engine ran ~9)
no longer leaves the calibrated roofline wrong by its error."""

import numpy as np
import pytest
from helpers import llama8b_h100_cost

from frontier_jax.cost import totals_time
from frontier_jax.cost.batch import BatchTotals
from frontier_jax.cost.calibrate import fit_roofline, relative_error, with_rates


def _batches(seed: int = 0, n: int = 300) -> BatchTotals:
    """n engine steps: prefill chunks (compute-bound), decode batches (memory-bound) and
    mixed steps, over short and long contexts (so attention is identifiable)."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, n)  # 0 prefill, 1 decode, 2 mixed
    pre_q = np.where(kind != 1, rng.integers(64, 2048, n), 0).astype(float)
    pre_c = np.where(kind != 1, rng.integers(0, 4096, n), 0).astype(float)
    dec = np.where(kind != 0, rng.integers(1, 64, n), 0).astype(float)
    dec_c = rng.integers(16, 4096, n).astype(float)
    seqs = (pre_q > 0) + dec
    return BatchTotals(
        num_seqs=seqs, num_tokens=pre_q + dec, prefill_tokens=pre_q, decode_seqs=dec,
        prefill_attn_pairs=pre_q * (pre_c + (pre_q + 1) / 2), prefill_kv_tokens=pre_c + pre_q,
        decode_kv_tokens=dec * (dec_c + 1), num_sampled=seqs)


def _measured(tot: BatchTotals, truth, noise: float, seed: int = 1) -> np.ndarray:
    t = np.asarray(totals_time(tot, truth, np), np.float64)
    return t * np.exp(np.random.default_rng(seed).normal(0.0, noise, t.shape))


def test_fit_outruns_a_microbenchmark_8x_too_slow():
    truth = llama8b_h100_cost()  # the engine: 989 TFLOP/s peak at 0.7 / 0.5, 3.35 TB/s at 0.8
    tot = _batches()
    meas = _measured(tot, truth, noise=0.02)
    start = truth._replace(peak_flops=truth.peak_flops / 8)  # what the microbenchmark said
    cal = fit_roofline(tot, meas, start)

    gemm, attn = 989e12 * 0.7, 989e12 * 0.5
    assert cal.rates["gemm_flops"] == pytest.approx(gemm, rel=0.05)
    assert cal.rates["attention_flops"] == pytest.approx(attn, rel=0.1)
    assert cal.vs_start["gemm_flops"] == pytest.approx(8 * 0.7, rel=0.05)
    # the calibrated hardware carries the rates as fractions of a raised peak
    assert cal.hardware["peak_flops"] == pytest.approx(max(cal.rates["gemm_flops"],
                                                           cal.rates["attention_flops"]))
    for k in ("gemm_efficiency", "attention_efficiency", "memory_efficiency"):
        assert 0.0 < cal.cost[k] <= 1.0
    assert cal.error["median_abs_rel_err"] < 0.03 and cal.error["rates_at_bound"] == []
    assert cal.summary() == {"fitted": cal.cost, "hardware": cal.hardware, "rates": cal.rates,
                             "rate_over_microbenchmark": cal.vs_start}

    # the calibrated scenario values price the rows as the fit did
    p = start._replace(peak_flops=cal.hardware["peak_flops"], hbm_bw=cal.hardware["hbm_bw"],
                       gemm_eff=cal.cost["gemm_efficiency"],
                       attn_eff=cal.cost["attention_efficiency"],
                       mem_eff=cal.cost["memory_efficiency"], cpu_s=cal.cost["cpu_overhead_s"],
                       cpu_per_seq_s=cal.cost["cpu_overhead_per_seq_s"])
    err = relative_error(np.asarray(totals_time(tot, p, np)), meas)
    assert err["median_abs_rel_err"] == pytest.approx(cal.error["median_abs_rel_err"], abs=1e-9)

    # capped at the microbenchmark's peak (every efficiency <= 1), no fit can reach the engine:
    # even at efficiency 1 the rows are priced > 2x too slow on average
    capped = relative_error(np.asarray(totals_time(tot, start._replace(gemm_eff=1.0, attn_eff=1.0), np)),
                            meas)
    assert capped["mean_rel_err"] > 1.0


def test_fit_keeps_a_right_microbenchmark_and_recovers_efficiencies():
    truth = llama8b_h100_cost()._replace(gemm_eff=0.55, attn_eff=0.35, mem_eff=0.6,
                                         cpu_s=2e-3, cpu_per_seq_s=2e-5)
    tot = _batches(seed=3)
    cal = fit_roofline(tot, _measured(tot, truth, noise=0.0), llama8b_h100_cost())
    assert cal.hardware == {"peak_flops": pytest.approx(989e12), "hbm_bw": pytest.approx(3.35e12)}
    assert cal.cost["gemm_efficiency"] == pytest.approx(0.55, rel=0.02)
    assert cal.cost["attention_efficiency"] == pytest.approx(0.35, rel=0.05)
    assert cal.cost["memory_efficiency"] == pytest.approx(0.6, rel=0.02)
    assert cal.cost["cpu_overhead_s"] == pytest.approx(2e-3, rel=0.05)
    assert cal.error["median_abs_rel_err"] < 1e-3
    assert max(cal.vs_start.values()) < 1.0


def test_with_rates_prices_at_the_given_rates():
    base = llama8b_h100_cost()
    p = with_rates(base, np.array([1e13, 5e12, 2e11]), 0.0, 0.0)
    assert float(p.peak_flops * p.gemm_eff) == pytest.approx(1e13)
    assert float(p.hbm_bw * p.mem_eff) == pytest.approx(2e11)


@pytest.mark.parametrize("times", [[1e-3] * 3, [1e-3, -1.0, 1e-3, 1e-3, 1e-3],
                                   [1e-3, np.nan, 1e-3, 1e-3, 1e-3]])
def test_fit_rejects_too_few_or_bad_times(times):
    tot = _batches(n=len(times))
    with pytest.raises(ValueError, match="fit_roofline"):
        fit_roofline(tot, np.array(times), llama8b_h100_cost())
