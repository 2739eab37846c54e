"""The iteration context: stateless keys, equal draws in numpy and jax, and a stochastic cost
that both simulators (and decode fast-forward windows) price identically."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from helpers import make_params

from frontier_jax.cost import ROOFLINE, CostModel, IterationContext, uniforms
from frontier_jax.cost.roofline import decode_window_times, iteration_time
from frontier_jax.reference import simulate_reference
from frontier_jax.runner import compare
from frontier_jax.sim import sim_shape, simulate


def test_keys_and_draws_are_the_same_bits_in_numpy_and_jax():
    its = np.arange(40, dtype=np.int32)
    for seed, inst in ((0, 0), (7, 3), (2**32 - 1, 15)):
        ctx = IterationContext(np.uint32(seed), np.int32(inst), np.int32(5))
        k_np = ctx.key(np, its)
        k_jx = jax.jit(lambda s, i, o: IterationContext(s, i, jnp.int32(5)).key(jnp, o))(
            jnp.uint32(seed), jnp.int32(inst), jnp.asarray(its))
        np.testing.assert_array_equal(k_np, np.asarray(k_jx))
        u_np = uniforms(k_np, 8, np)
        u_jx = jax.jit(lambda k: uniforms(k, 8, jnp))(jnp.asarray(k_np))
        np.testing.assert_array_equal(u_np, np.asarray(u_jx))
        assert u_np.shape == (40, 8) and (u_np >= 0).all() and (u_np < 1).all()
    # every input moves the key; an offset is the same as a later iteration
    base = IterationContext(np.uint32(1), np.int32(2), np.int32(3))
    keys = {tuple(base.key(np).tolist()),
            tuple(base._replace(seed=np.uint32(2)).key(np).tolist()),
            tuple(base._replace(instance=np.int32(3)).key(np).tolist()),
            tuple(base._replace(iteration=np.int32(4)).key(np).tolist())}
    assert len(keys) == 4
    np.testing.assert_array_equal(base.key(np, 1), base._replace(iteration=np.int32(4)).key(np))
    u = uniforms(base.key(np), 20000, np)
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.std() - 12 ** -0.5) < 0.01


def _noise(ctx, xp, k=None):
    """1 + 0.5 u, one draw per iteration (the window's: iterations ctx.iteration + j)."""
    key = ctx.key(xp) if k is None else ctx.key(xp, xp.arange(k))
    return 1.0 + 0.5 * uniforms(key, 1, xp)[..., 0]


def _noisy_iteration(batch, p, xp, ctx=None):
    return iteration_time(batch, p, xp) * _noise(ctx, xp)


def _noisy_window(batch, p, xp, k, ctx=None):
    return decode_window_times(batch, p, xp, k) * _noise(ctx, xp, k)


NOISY = CostModel(_noisy_iteration, _noisy_window)


def test_a_stochastic_cost_is_priced_alike_by_both_simulators_and_in_windows():
    p = make_params(n=120, rate=4.0, replicas=2, output=(20, 90), seed=3)
    shape = sim_shape(p)
    ref = simulate_reference(p, shape.max_instances, NOISY)
    vec = jax.device_get(simulate(shape, p, NOISY))
    plain = jax.device_get(simulate(dataclasses.replace(shape, decode_window=1), p, NOISY))
    for res in (vec, plain):
        c = compare(res, ref)
        assert c["max_rel_err_finish"] <= 1e-12 and c["max_rel_err_ttft"] <= 1e-12
        assert c["iterations_equal"] and c["preemptions_equal"] and c["replicas_equal"]
    assert int(vec.steps) < int(plain.steps) == int(ref.steps)  # windows were jumped
    # the draws matter: the deterministic roofline gives other times
    det = simulate_reference(p, shape.max_instances, ROOFLINE)
    assert compare(det, ref)["max_rel_err_finish"] > 1e-3
    # and another seed draws other numbers
    other = simulate_reference(p._replace(seed=np.uint32(4)), shape.max_instances, NOISY)
    assert compare(other, ref)["max_rel_err_finish"] > 1e-4
