"""Roofline cost model: hand-checked numbers, numpy == jax, sensible monotonicity."""

import jax
import jax.numpy as jnp
import numpy as np
from helpers import llama8b_h100_cost

from frontier_jax.cost import BatchSlots, batch_totals, iteration_time, op_times


def _batch(q, c, dec):
    q, c, dec = np.asarray(q), np.asarray(c), np.asarray(dec, bool)
    return BatchSlots(q, c, dec, dec | (q > 0), np.ones(len(q), bool))


def test_batch_totals_by_hand():
    b = _batch([100, 1, 1], [50, 10, 20], [False, True, True])
    t = batch_totals(b, np)
    assert t.num_seqs == 3 and t.num_tokens == 102 and t.prefill_tokens == 100
    assert t.decode_seqs == 2
    assert t.prefill_attn_pairs == 100 * (50 + 101 / 2)
    assert t.prefill_kv_tokens == 150 and t.decode_kv_tokens == 11 + 21


def test_big_gemm_is_compute_bound_at_peak_times_efficiency():
    p = llama8b_h100_cost()
    t = batch_totals(_batch([8192], [0], [False]), np)
    ops = op_times(t, p, np)
    flops = 2 * 8192 * 4096 * (2 * 14336)
    np.testing.assert_allclose(ops["mlp_up"], flops / (989e12 * 0.7), rtol=1e-12)


def test_single_decode_is_memory_bound_on_weights():
    p = llama8b_h100_cost()
    t = batch_totals(_batch([1], [100], [True]), np)
    ops = op_times(t, p, np)
    weight_bytes = 4096 * 2 * 14336 * 2
    assert ops["mlp_up"] >= weight_bytes / (3.35e12 * 0.8)
    assert ops["tp_allreduce"] == 0.0


def test_numpy_and_jax_agree_and_vmap():
    p = llama8b_h100_cost()
    rng = np.random.default_rng(0)
    q = rng.integers(1, 500, 32)
    c = rng.integers(0, 4000, 32)
    dec = rng.random(32) < 0.5
    q = np.where(dec, 1, q)
    b = _batch(q, c, dec)
    t_np = float(iteration_time(b, p, np))
    t_jx = float(jax.jit(lambda b, p: iteration_time(b, p, jnp))(b, p))
    np.testing.assert_allclose(t_jx, t_np, rtol=1e-12)
    tps = jnp.array([1.0, 2.0, 4.0, 8.0])
    pv = p._replace(tp=tps)
    times = jax.vmap(lambda tp: iteration_time(b, p._replace(tp=tp), jnp))(pv.tp)
    assert np.all(np.diff(np.asarray(times)) < 0), "more TP, faster iteration here"


def test_more_tokens_and_context_cost_more():
    p = llama8b_h100_cost()
    base = float(iteration_time(_batch([512], [0], [False]), p, np))
    assert float(iteration_time(_batch([2048], [0], [False]), p, np)) > base
    assert float(iteration_time(_batch([512], [4096], [False]), p, np)) > base
    assert float(iteration_time(_batch([], [], []), p, np)) == 0.0
