"""Layouts as pools of instances: the [layout] section, per-pool params, GPU counting, and
heterogeneous pools simulated alike by both simulators."""

import jax
import numpy as np
import pytest
from conftest import SCENARIOS
from helpers import make_params

from frontier_jax.contract import INACTIVE, ROLES, instance_kv_blocks
from frontier_jax.params import sim_params, stack
from frontier_jax.reference import simulate_reference
from frontier_jax.runner import compare, prepare, run_reference, run_vectorized
from frontier_jax.sim import sim_shape, simulate, simulate_batch, unstack
from frontier_jax.spec import (
    POOL_ROLES,
    SpecError,
    kv_capacity_blocks,
    load_scenario,
    scenario_from_dict,
    scenario_to_dict,
    with_overrides,
)
from frontier_jax.sweep import expand, plan, run_sweep, sweep_from_dict
from frontier_jax.sweep.plan import family, identity, layout_label
from frontier_jax.workload import make_workload

TWO = SCENARIOS / "two_pools.toml"


def _dict(**layout):
    d = scenario_to_dict(load_scenario(SCENARIOS / "light.toml"))
    del d["parallel"], d["cluster"]["replicas"]
    d["workload"]["num_requests"] = 200
    d["layout"] = layout
    return d


def test_roles_agree_between_spec_and_contract():
    assert set(POOL_ROLES) == set(ROLES)


def test_layout_pools_defaults_overrides_and_gpus():
    s = load_scenario(TWO)
    h100, a100 = s.pools
    assert (h100.name, h100.count, h100.tp, h100.hardware.name) == ("h100", 2, 1, "H100-SXM")
    assert (a100.count, a100.tp, a100.hardware.name) == (1, 2, "A100-80G")
    assert (h100.scheduler.max_num_seqs, a100.scheduler.max_num_seqs) == (64, 32)
    assert a100.scheduler.max_num_batched_tokens == 2048  # [scheduler] default
    assert s.num_gpus == 2 * 1 + 1 * 2 and s.num_instances == 3
    assert kv_capacity_blocks(s, a100) != kv_capacity_blocks(s, h100)
    with pytest.raises(ValueError, match="name one"):
        kv_capacity_blocks(s)
    # round trip, and overrides of pool fields
    assert scenario_from_dict(scenario_to_dict(s), s.source, TWO.parent) == s
    t = with_overrides(s, {"layout.a100.count": 3, "layout.h100.scheduler.max_num_seqs": 8,
                           "layout.a100.hardware": "H100-SXM"})
    assert [p.count for p in t.pools] == [2, 3] and t.num_gpus == 8
    assert t.pools[0].scheduler.max_num_seqs == 8 and t.pools[1].hardware.name == "H100-SXM"
    # the shorthand is one pool
    light = load_scenario(SCENARIOS / "four_replicas.toml")
    (pool,) = light.pools
    assert pool.count == light.cluster.replicas and pool.tp == light.parallel.tp
    assert light.num_gpus == light.cluster.replicas * light.parallel.tp * light.parallel.pp


@pytest.mark.parametrize("layout, extra, field", [
    ({}, {}, "layout"),
    ({"a": {"count": 1}}, {"parallel": {"tp": 2}}, "parallel"),
    ({"a": {"count": 1}}, {"cluster": {"replicas": 2}}, "cluster.replicas"),
    ({"a": {"tp": 1}}, {}, "layout.a.count"),
    ({"a": {"count": 1, "colour": 1}}, {}, "layout.a.colour"),
    ({"a": {"count": 1, "role": "ffn"}}, {}, "layout.a.role"),
    ({"a": {"count": 1, "role": "decode"}}, {}, "layout"),  # PD without a prefill instance
    ({"a": {"count": 1, "role": "prefill"}, "b": {"count": 1}}, {}, "layout"),  # PD + co-located
    ({"a": {"count": 1, "tp": 3}}, {}, "layout.a.tp"),
    ({"a": {"count": 0}}, {}, "layout"),
    ({"a": {"count": 1, "hardware": "B900"}}, {}, "layout.a.hardware.preset"),
    ({"a": {"count": 1, "scheduler": {"max_num_seqs": 0}}}, {}, "layout.a.scheduler.max_num_seqs"),
    ({"a": {"count": 1, "scheduler": {"max_seqs": 4}}}, {}, "layout.a.scheduler.max_seqs"),
])
def test_bad_layouts_get_one_line_naming_the_field(layout, extra, field):
    d = _dict(**layout)
    for k, v in extra.items():
        d.setdefault(k, {}).update(v)
    with pytest.raises(SpecError) as e:
        scenario_from_dict(d, "x.toml")
    assert e.value.field == field and "\n" not in str(e.value)


def test_a_layout_of_one_pool_is_the_shorthand():
    short = with_overrides(load_scenario(SCENARIOS / "four_replicas.toml"),
                           {"workload.num_requests": 300})
    d = scenario_to_dict(short)
    d["layout"] = {"main": {"count": d["cluster"].pop("replicas"), **d.pop("parallel")}}
    long = scenario_from_dict(d, short.source, SCENARIOS)
    assert long.layout and long.pools == short.pools and long.num_gpus == short.num_gpus
    a, b = prepare(short), prepare(long)
    assert jax.tree.all(jax.tree.map(np.array_equal, a.params, b.params))
    ra, rb = run_vectorized(a).result, run_vectorized(b).result
    assert compare(ra, rb)["max_rel_err_finish"] == 0.0


def test_heterogeneous_pools_agree_with_the_reference():
    s = with_overrides(load_scenario(TWO), {"workload.num_requests": 600, "workload.arrival.rate": 150.0})
    prep = prepare(s)
    e = prep.params.engine
    np.testing.assert_array_equal(e.pool, [0, 0, 1])
    assert e.pools.max_num_seqs.tolist() == [64, 32] and prep.params.cost.tp.tolist() == [1.0, 2.0]
    vec, ref = run_vectorized(prep), run_reference(prep)
    c = compare(vec.result, ref.result)
    assert c["finished"] == 600 and c["max_rel_err_finish"] <= 1e-9 and c["max_rel_err_ttft"] <= 1e-9
    assert c["replicas_equal"] and c["iterations_equal"] and c["preemptions_equal"]
    assert set(np.asarray(ref.result.replica).tolist()) == {0, 1, 2}
    caps = [kv_capacity_blocks(s, p) for p in s.pools]
    assert vec.result.kv_blocks.tolist() == [caps[0], caps[0], caps[1]]
    assert vec.metrics["gpus"] == 4 and len(vec.metrics["replica_busy_frac"]) == 3
    # per-pool engine knobs act: the A100 instance never runs more than its 32 sequences
    seen = []
    simulate_reference(prep.params, 3, prep.cost,
                       on_iteration=lambda r, t, d, b, f: seen.append((r, int(np.sum(b.mask)))))
    assert max(n for r, n in seen if r == 2) == 32 < max(n for r, n in seen if r < 2)


def test_layouts_of_different_sizes_stack_and_run_in_one_call():
    s = with_overrides(load_scenario(TWO), {"workload.num_requests": 200})
    variants = [s, with_overrides(s, {"layout.a100.count": 0}),
                with_overrides(s, {"layout.h100.count": 4, "layout.a100.tp": 4})]
    params = [sim_params(v, make_workload(v.workload, v.seed)) for v in variants]
    batch = stack(params, instances=5)
    assert batch.engine.pool.shape == (3, 5) and (batch.engine.pool[1, 2:] == INACTIVE).all()
    shape = sim_shape(batch, max_batch=64)
    res = jax.device_get(simulate_batch(shape, batch))
    for i, (v, p) in enumerate(zip(variants, params, strict=True)):
        one = unstack(res, i)
        ref = simulate_reference(p, 5)
        c = compare(one, ref)
        assert c["max_rel_err_finish"] <= 1e-9 and c["replicas_equal"], v.pools
        np.testing.assert_array_equal(one.kv_blocks, ref.kv_blocks)
    assert unstack(res, 1).iterations[2:].sum() == 0  # the switched-off pool never ran


def test_instance_capacity_and_the_one_accessor_on_hand_made_params():
    p = make_params(n=40, replicas=3, kv_blocks=123)
    assert instance_kv_blocks(p, np).tolist() == [123, 123, 123]
    res = jax.device_get(simulate(sim_shape(p, max_instances=5), p))
    assert res.kv_blocks.tolist() == [123, 123, 123, 0, 0] and res.pool.tolist()[3:] == [-1, -1]


def test_sweeps_take_pool_paths_and_count_gpus_per_pool(tmp_path):
    spec = sweep_from_dict({
        "base": str(TWO),
        "axes": {"layout.h100.count": [1, 2, 4], "layout.a100.tp": [1, 2]},
        "derived": {"workload.num_requests": "60"},
        "constraints": {"expressions": ["gpus <= 5"]},
    })
    configs, dropped = expand(spec)
    gpus = {(c.values["layout.h100.count"], c.values["layout.a100.tp"]) for c in configs}
    assert gpus == {(1, 1), (1, 2), (2, 1), (2, 2), (4, 1)} and dropped == 1
    plans, _ = plan(spec)
    assert all(p.status == "ok" for p in plans)
    for p in plans:
        assert identity(p)["gpus"] == p.scenario.num_gpus
    s = plans[0].scenario
    assert family(s) == "TP1+TP1@A100-80G" and layout_label(s).startswith("1xTP1 mbt=2048")
    df = run_sweep(spec, tmp_path / "out", progress=False)
    assert (df["status"] == "ok").all() and df["gpus"].tolist() == [p.scenario.num_gpus for p in plans]
    assert df["replicas"].tolist() == [p.scenario.num_instances for p in plans]


@pytest.mark.parametrize("axis, msg", [
    ("layout.nope.count", "unknown pool"),
    ("layout.h100.colour", "unknown pool field"),
    ("parallel.tp", "has a \\[layout\\]"),
])
def test_sweep_pool_paths_are_checked_against_the_base(axis, msg):
    with pytest.raises(SpecError, match=msg):
        sweep_from_dict({"base": str(TWO), "axes": {axis: [1, 2]}})
    if axis.startswith("layout"):
        with pytest.raises(SpecError, match="no \\[layout\\]"):
            sweep_from_dict({"base": str(SCENARIOS / "light.toml"), "axes": {axis: [1]}})


def test_round_robin_over_pools_with_a_small_pool_that_rejects():
    """Round robin over two pools whose second one cannot hold long requests: rejections,
    the router's counter and decode fast-forward agree with the reference."""
    s = with_overrides(load_scenario(TWO), {
        "workload.num_requests": 400, "cluster.router": "round_robin",
        "layout.a100.scheduler.gpu_memory_utilization": 0.1015})
    prep = prepare(s)
    small = int(prep.params.engine.pools.kv_blocks[1])
    tokens = prep.params.workload.prompt + prep.params.workload.output
    assert 0 < small < np.max(-(-tokens // 16)), "the A100 pool must be too small for some requests"
    vec, ref = run_vectorized(prep).result, run_reference(prep).result
    c = compare(vec, ref)
    assert c["max_rel_err_finish"] <= 1e-9 and c["replicas_equal"] and c["iterations_equal"]
    rejected = np.asarray(ref.replica) == -2
    assert rejected.any() and (~rejected).sum() > 300
    assert int(vec.steps) < int(ref.steps)  # windows were jumped


def test_pool_overrides_survive_top_level_overrides():
    d = _dict(a={"count": 1, "scheduler": {"max_num_seqs": 256}},  # equal to [scheduler]'s
              b={"count": 1, "hardware": "H100-SXM"})
    s = scenario_from_dict(d, "x.toml")
    t = with_overrides(s, {"scheduler.max_num_seqs": 16, "hardware.preset": "A100-80G"})
    a, b = t.pools
    assert a.scheduler.max_num_seqs == 256 and b.scheduler.max_num_seqs == 16
    assert a.hardware.name == "A100-80G" and b.hardware.name == "H100-SXM"
    # a field of an inherited hardware is an override on top of [hardware]
    u = with_overrides(s, {"layout.a.hardware.hbm_bytes": 40_000_000_000})
    assert u.pools[0].hardware.hbm_bytes == 40e9 and u.pools[0].hardware.name == "H100-SXM"
    assert u.pools[1].hardware.hbm_bytes == s.hardware.hbm_bytes
    # pool names are bare keys; parallel / replicas beside a layout are refused in code too
    with pytest.raises(SpecError, match="pool name"):
        scenario_from_dict(_dict(**{"a.b": {"count": 1}}), "x.toml")
    import dataclasses

    from frontier_jax.spec import ParallelSpec
    with pytest.raises(SpecError, match="not used with"):
        dataclasses.replace(s, parallel=ParallelSpec(tp=2))


def test_sweep_expressions_follow_pool_axes():
    spec = sweep_from_dict({
        "base": str(TWO),
        "axes": {"layout.h100.count": [1, 2, 3], "layout.a100.tp": [1, 2]},
        "derived": {"workload.num_requests": "60"},
        "constraints": {"expressions": ["replicas <= 3", "h100_count >= a100_tp"]},
    })
    configs, dropped = expand(spec)
    got = {(c.values["layout.h100.count"], c.values["layout.a100.tp"]) for c in configs}
    assert got == {(1, 1), (2, 1), (2, 2)} and dropped == 3
    with pytest.raises(SpecError, match="unknown name 'tp'"):
        sweep_from_dict({"base": str(TWO), "axes": {"layout.a100.count": [1, 2]},
                         "constraints": {"expressions": ["tp <= 2"]}})
