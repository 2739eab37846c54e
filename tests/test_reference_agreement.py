"""The vectorized simulator agrees with the exact reference, request by request."""

import dataclasses

import jax
import numpy as np
import pytest
from conftest import SCENARIOS
from helpers import make_params

from frontier_jax.reference import simulate_reference
from frontier_jax.runner import compare, prepare, run_reference, run_vectorized
from frontier_jax.sim import sim_shape, simulate
from frontier_jax.spec import load_scenario, with_overrides

SHIPPED = ["light", "saturation", "kv_pressure", "four_replicas", "two_pools"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_agree(name):
    # kv_pressure at its 2,000 requests (preemption must happen); the others' first 1,000
    n = 2000 if name == "kv_pressure" else 1000
    prep = prepare(with_overrides(load_scenario(SCENARIOS / f"{name}.toml"), {"workload.num_requests": n}))
    assert prep.shape.num_requests == n
    vec, ref = run_vectorized(prep), run_reference(prep)
    c = compare(vec.result, ref.result)
    assert c["finished"] == n
    assert c["max_rel_err_finish"] <= 1e-6
    assert c["max_rel_err_ttft"] <= 1e-6
    assert c["preemptions_equal"] and c["replicas_equal"] and c["iterations_equal"]
    assert not vec.metrics["incomplete"] and not ref.metrics["incomplete"]
    if name == "kv_pressure":
        assert c["preemptions_total"] > 0, "this scenario must exercise preemption"
    if name == "four_replicas":
        assert len(set(np.asarray(ref.result.replica).tolist())) == 4


@pytest.mark.parametrize(
    "kw",
    [
        dict(chunked=False, max_batched_tokens=1024, prompt=(8, 300)),
        dict(kv_blocks=30, rate=50.0, prompt=(8, 600)),  # heavy preemption, rejections
        dict(kv_blocks=30, rate=50.0, prompt=(8, 600), reserve_full_isl=False),
        dict(replicas=3, router="least_outstanding", rate=80.0),
        dict(replicas=3, router="round_robin", rate=80.0, max_num_seqs=4),
        dict(block_size=1, kv_blocks=900, max_batched_tokens=64),
    ],
)
def test_policy_corners_agree(kw):
    p = make_params(n=150, **kw)
    shape = sim_shape(p, max_instances=4)
    vec = jax.device_get(simulate(shape, p))
    ref = simulate_reference(p, 4)
    c = compare(vec, ref)
    assert c["max_rel_err_finish"] <= 1e-9 and c["max_rel_err_ttft"] <= 1e-9
    assert c["preemptions_equal"] and c["replicas_equal"] and c["generated_equal"]
    assert c["iterations_equal"]
    # Without fast-forwarding the two simulators process exactly the same events.
    plain = jax.device_get(simulate(dataclasses.replace(shape, decode_window=1), p))
    assert compare(plain, ref)["max_rel_err_finish"] <= 1e-9
    assert int(plain.steps) == int(ref.steps) >= int(vec.steps)


def test_preemption_and_rejection_happen_under_tiny_kv():
    p = make_params(n=150, kv_blocks=30, rate=50.0, prompt=(8, 600))
    shape = sim_shape(p)
    res = jax.device_get(simulate(shape, p))
    assert res.preemptions.sum() > 0
    rejected = res.replica == -2
    assert rejected.any()
    too_big = -(-(p.workload.prompt + p.workload.output) // 16) > 30
    np.testing.assert_array_equal(rejected, too_big)


def test_fewer_slots_than_max_num_seqs_is_exact_or_flagged():
    from frontier_jax.runner import simulate_sized

    p = make_params(n=200, rate=400.0, max_num_seqs=16, max_batched_tokens=4096)
    ref = simulate_reference(p, 1)
    small = sim_shape(p, max_batch=4)
    flagged = jax.device_get(simulate(small, p))
    assert flagged.slots_full, "a saturated replica must bind 4 slots"
    res, shape = simulate_sized(small, p)
    assert shape.max_batch > 4 and not res.slots_full
    c = compare(res, ref)
    assert c["max_rel_err_finish"] <= 1e-9 and c["preemptions_equal"]
    light = make_params(n=60, rate=0.5, max_num_seqs=32)
    lres = jax.device_get(simulate(sim_shape(light, max_batch=4), light))
    assert not lres.slots_full
    lc = compare(lres, simulate_reference(light, 1))
    assert lc["max_rel_err_finish"] <= 1e-9
