"""Attention/FFN disaggregation end to end: the [af] layout (spec, GPUs, KV, caps), its
iteration price (cost/af_price.py) against the co-located price where they must meet, the
micro-batch split, and the two simulators on the shipped AF scenarios."""

import dataclasses

import numpy as np
import pytest
from conftest import SCENARIOS
from helpers import agree

from frontier_jax.cost import ROOFLINE, ROOFLINE_AF
from frontier_jax.cost.af_price import micro_totals
from frontier_jax.cost.batch import BatchSlots, batch_totals
from frontier_jax.cost.params import cost_params_from_scenario
from frontier_jax.params import sim_params, sim_shape
from frontier_jax.runner import prepare, run_reference
from frontier_jax.sim import simulate_batch, stack
from frontier_jax.spec import SpecError, kv_capacity_blocks, load_scenario, with_overrides
from frontier_jax.workload import make_workload

DENSE = SCENARIOS / "af_llama70b_2to1.toml"
MOE = SCENARIOS / "af_qwen3_4to1.toml"


def _batch(rng, B=48, live=40, decode_share=0.7):
    m = np.arange(B) < live
    dec = m & (rng.random(B) < decode_share)
    q = np.where(dec, 1, rng.integers(16, 700, B))
    return BatchSlots(np.where(m, q, 0).astype(np.int32), rng.integers(0, 3000, B).astype(np.int32),
                      dec, m, m, rng.permutation(10_000)[:B].astype(np.int32))


def test_gpus_kv_and_caps_of_an_af_group():
    s = load_scenario(DENSE)
    assert s.num_gpus == 2 * (2 * 2 + 1 * 4)
    # the attention GPUs hold all but the MLP (under a quarter of the weights): each of the
    # 2 attention instances keeps the rest of its GPUs' memory for KV
    m = s.model
    attn_per_gpu = (m.weight_bytes() - m.ffn_weight_bytes()) / 2
    assert attn_per_gpu < 0.25 * m.weight_bytes() / 2
    usable = s.hardware.hbm_bytes * s.scheduler.gpu_memory_utilization
    kv_token_gpu = 2 * m.num_hidden_layers * (m.num_key_value_heads // 2) * m.head_dim * m.dtype_bytes
    assert kv_capacity_blocks(s) == 2 * int((usable - attn_per_gpu) // (16 * kv_token_gpu))
    p = sim_params(s, make_workload(s.workload, s.seed))
    assert int(p.engine.pools.max_num_seqs[0]) == 2 * 64  # the group's one scheduler
    assert int(p.engine.pools.max_batched_tokens[0]) == 2 * 2048
    assert int(p.engine.pools.max_chunk[0]) == 2048  # one sequence's chunk: one instance's budget


@pytest.mark.parametrize("bad, match", [
    ({"af.ffn": 0}, "at least 1 FFN instance"),
    ({"parallel.pp": 2}, "tp only"),
    ({"af.ffn_tp": 3}, "must divide"),
    ({"af.micro_batches": 5}, "micro_batches"),
    ({"cost.kind": "surrogate", "cost.predictor": "cpu-llama-512"}, "'roofline' with \\[af\\]"),
])
def test_bad_af_layouts_are_one_line(bad, match):
    with pytest.raises(SpecError, match=match) as e:
        with_overrides(load_scenario(DENSE), bad)
    assert "\n" not in str(e.value)


def _sampled(path=MOE, **kw):
    s = load_scenario(path)
    return with_overrides(s, {"moe.routing": "zipf", "moe.skew": 1.2, "moe.ep": s.af.ffn_gpus,
                              **kw})


def test_sampled_moe_routing_needs_ep_on_the_ffn_gpus_and_whole_layer_shares():
    with pytest.raises(SpecError, match=r"moe.ep: got 1; = af.ffn x af.ffn_tp = 4"):
        with_overrides(load_scenario(MOE), {"moe.routing": "uniform"})
    with pytest.raises(SpecError, match="sampled_layers: got 5; must divide"):
        _sampled(**{"moe.sampled_layers": 5})


def test_sampled_moe_ffn_tasks_wait_for_the_slowest_rank():
    """Each sampled layer is a group of its own whose FFN task is the slowest EP rank's
    GroupedGEMM for that micro-batch's own map: skewed routing is slower than the mean load,
    micro-batches and iterations draw different maps, and the simulators agree."""
    from frontier_jax.cost.af_price import layer_groups, micro_keys
    from frontier_jax.cost.context import IterationContext

    s = _sampled()
    p = cost_params_from_scenario(s)
    mean = p._replace(moe=p.moe._replace(wait_for_slowest=np.float64(0.0)))  # the mean rank load
    assert p.af.groups.tolist() == [0, 12, 12, 12, 12]
    b = _batch(np.random.default_rng(3), decode_share=0.3)
    tm = micro_totals(b, p, np)
    ctx = IterationContext(np.uint32(s.seed), np.int32(0), np.int32(5))
    groups = layer_groups(tm, p, np, micro_keys(p, np, ctx, None))
    at_mean = layer_groups(tm, mean, np, micro_keys(p, np, ctx, None))
    assert len(groups) == 5 and groups[0][0] == 0
    F = np.array([g[3] for g in groups[1:]])  # [layers, micro-batches]
    F0 = np.array([g[3] for g in at_mean[1:]])
    assert np.all(F > F0) and np.allclose(F0, F0[0])  # every layer's mean load is the same
    assert np.all(np.array([g[2] for g in groups[1:]]) >= np.array([g[2] for g in at_mean[1:]]))
    assert len(np.unique(F.round(12))) == F.size  # every (layer, micro-batch) its own map
    later = layer_groups(tm, p, np, micro_keys(p, np, ctx._replace(iteration=np.int32(6)), None))
    assert not np.allclose(F, [g[3] for g in later[1:]])
    c = agree(s, 120)
    assert c["max_rel_err_af_busy"] <= 1e-9


def test_sampled_moe_af_configs_of_other_layer_counts_stack():
    """2 and 4 sampled layers, 3:1 and 4:1 groups in one vmapped call (groups padded at the
    end like the sampled layers): each equals its own reference run."""
    base = _sampled(**{"workload.num_requests": 80})
    scen = [with_overrides(base, {"moe.sampled_layers": g, "af.attention": a})
            for g, a in ((4, 4), (2, 3))]
    preps = [prepare(x) for x in scen]
    from frontier_jax.params import af_dims, moe_dims, pad_af, pad_moe
    params = stack(pad_af(pad_moe([p.params for p in preps], moe_dims(scen)), af_dims(scen)))
    assert params.cost.af.groups.shape[-1] == 5
    res = simulate_batch(sim_shape(params), params, preps[0].cost)
    for i, p in enumerate(preps):
        ref = run_reference(p).result
        np.testing.assert_allclose(np.asarray(res.finish_s[i]), ref.finish_s, rtol=1e-9)


def test_micro_batches_split_the_batch_evenly():
    """Every live sequence is in exactly one (instance, micro-batch); each instance's
    micro-batches hold about equal tokens (within the largest sequence's), and decode-only
    micro-batches differ by at most one sequence."""
    s = load_scenario(DENSE)
    p = cost_params_from_scenario(s)
    rng = np.random.default_rng(0)
    for m in (1, 2, 3, 4):
        q = p._replace(af=p.af._replace(micro=np.ones(4) * (np.arange(4) < m)))
        b = _batch(rng)
        t = micro_totals(b, q, np)
        whole = batch_totals(b, np)
        for f in whole._fields:
            assert np.sum(getattr(t, f)) == pytest.approx(float(getattr(whole, f)))
        seqs, tok = t.num_seqs, t.num_tokens  # [M, MB]
        assert np.all(seqs[:, m:] == 0)
        biggest = int(b.q_tokens[b.mask].max())
        assert np.all(tok[:, :m].max(axis=1) - tok.sum(axis=1) / m <= biggest)
        d = b._replace(q_tokens=np.where(b.mask, 1, 0).astype(np.int32))
        ds = micro_totals(d, q, np).num_seqs
        assert np.all(ds[:, :m].max(axis=1) - ds[:, :m].min(axis=1) <= 1)


@pytest.mark.parametrize("path", [DENSE, MOE])
def test_one_micro_batch_and_a_free_link_is_the_colocated_layer(path):
    """One attention instance, one FFN instance of the same TP, m = 1 and a link of no cost:
    the graph is the layers in turn, and the iteration equals the co-located roofline's
    (the same operators, split between the sides)."""
    s = with_overrides(load_scenario(path), {"af.attention": 1, "af.micro_batches": 1,
                                             "af.ffn_tp": 4, "parallel.tp": 4})
    p = cost_params_from_scenario(s)
    p = p._replace(af=p.af._replace(link_bw=np.float64(np.inf), link_lat_s=np.float64(0.0)))
    rng = np.random.default_rng(1)
    for _ in range(5):
        b = _batch(rng)
        af = ROOFLINE_AF.iteration_time(b, p, np)
        co = ROOFLINE.iteration_time(b, p._replace(af=None), np)
        assert af == pytest.approx(co, rel=1e-12)


def test_micro_batches_overlap_the_sides():
    """m = 2 is faster than m = 1 on a prefill-heavy batch (the sides overlap), and the
    compiled window's first entry is the iteration."""
    s = load_scenario(DENSE)
    p = cost_params_from_scenario(s)
    b = _batch(np.random.default_rng(2), decode_share=0.0, live=16)
    t = {m: ROOFLINE_AF.iteration_time(b, p._replace(af=p.af._replace(micro=np.ones(m))), np)
         for m in (1, 2)}
    assert t[2] < 0.9 * t[1]


@pytest.mark.parametrize("path", [DENSE, MOE])
def test_simulators_agree_on_shipped_af_scenarios(path):
    c = agree(load_scenario(path), 200)
    assert c["max_rel_err_af_busy"] <= 1e-9  # the resources' busy time, request by request


@pytest.mark.parametrize("path", [DENSE, MOE])
def test_resource_busy_times_are_the_graphs_tasks(path):
    """With one micro-batch the graph is one chain: the four resources' busy times sum to
    its makespan. With more, no resource works longer than the makespan, and the sum is at
    least it (the sides overlap). A window's first entry is the batch's own, and the
    compiled and numpy prices agree."""
    import jax.numpy as jnp

    from frontier_jax.cost.af_price import _graph, layer_groups, resource_times

    s = load_scenario(path)
    p = cost_params_from_scenario(s)
    rng = np.random.default_rng(7)
    for m in (1, 3):
        pm = p._replace(af=p.af._replace(micro=np.ones(m)))
        for _ in range(2):
            b = _batch(rng)
            busy = resource_times(b, pm, np, 4)
            span = _graph(layer_groups(micro_totals(b, pm, np), pm, np), np)
            assert busy.shape == (4, 4) and np.all(busy[0] > 0)
            if m == 1:
                assert busy[0].sum() == pytest.approx(span, rel=1e-12)
            else:
                assert np.all(busy[0] <= span * (1 + 1e-12)) and busy[0].sum() >= span
            np.testing.assert_allclose(resource_times(b, pm, np, 1)[0], busy[0], rtol=1e-14)
            assert np.all(busy[1:, 0] >= busy[:-1, 0])  # decode contexts grow: attention too
            jb = resource_times(BatchSlots(*map(jnp.asarray, b)), pm, jnp, 4)
            np.testing.assert_allclose(np.asarray(jb), busy, rtol=1e-12)


def test_af_run_reports_utilisation_and_bubbles():
    from frontier_jax.runner import run_vectorized

    run = run_vectorized(prepare(with_overrides(load_scenario(DENSE), {"workload.num_requests": 120})))
    m = run.metrics
    for name in ("attention", "link_a2f", "ffn", "link_f2a"):
        assert 0 < m[f"af_{name}_util"] < 1
        assert m[f"af_{name}_util"] + m[f"af_{name}_bubble"] == pytest.approx(1.0)
    assert m["af_link_a2f_util"] < m["af_attention_util"] < m["af_ffn_util"]  # FFN-bound
    assert "af_ffn_util" not in run_vectorized(prepare(with_overrides(
        load_scenario(SCENARIOS / "cpu_tiny_llama.toml"), {"workload.num_requests": 20}))).metrics


def test_af_configs_stack_in_one_call():
    """2:1 and 4:1 groups, m = 1..3, in one vmapped call: each equals its own reference run
    (attention instance slots padded with dead ranks)."""
    base = with_overrides(load_scenario(DENSE), {"workload.num_requests": 150})
    scen = [with_overrides(base, {"af.attention": a, "af.micro_batches": m})
            for a, m in ((2, 1), (2, 3), (4, 2))]
    preps = [prepare(s) for s in scen]
    assert all(p.cost is preps[0].cost for p in preps)
    params = stack([p.params for p in preps])
    assert params.cost.af.ranks.shape[-1] == 4 and params.cost.af.micro.shape[-1] == 3
    res = simulate_batch(sim_shape(params), params, preps[0].cost)
    for i, p in enumerate(preps):
        ref = run_reference(p).result
        np.testing.assert_allclose(np.asarray(res.finish_s[i]), ref.finish_s, rtol=1e-6)
    assert len({round(float(np.max(res.finish_s[i])), 6) for i in range(3)}) == 3


def test_af_is_a_scenario_table_round_trip():
    from frontier_jax.spec.scenario import scenario_from_dict, scenario_to_dict

    s = load_scenario(MOE)
    assert scenario_from_dict(scenario_to_dict(s), s.source) == s
    assert "af" not in scenario_to_dict(dataclasses.replace(s, af=type(s.af)()))


def test_af_sweep_counts_both_sides_gpus_and_groups_once():
    """sweeps/af_32gpus_af.toml: `gpus` counts attention and FFN GPUs, so `gpus == 32` keeps
    the five group sizes that divide 32 (x 3 micro-batch counts x 4 rates); every
    configuration is in one group padded to (14 attention instances, 3 micro-batches, 1
    layer group), labelled by its A:F family."""
    from frontier_jax.sweep import load_sweep
    from frontier_jax.sweep.plan import family, group_plans, plan

    plans, _ = plan(load_sweep(SCENARIOS.parent / "sweeps" / "af_32gpus_af.toml"))
    assert len(plans) == 60 and all(p.status == "ok" for p in plans)
    assert all(p.scenario.num_gpus == 32 for p in plans)
    ratios = {(p.scenario.af.attention, p.scenario.af.ffn_tp) for p in plans}
    assert ratios == {(2, 2), (4, 4), (6, 2), (12, 4), (14, 2)}
    (group,) = group_plans(plans)
    assert group.af_dims == (14, 3, 1)
    assert family(plans[0].scenario) == "AF 2A:TP1+1F:TP2"


def test_dense_first_layer_group():
    """An MoE model's dense first layers are a layer group of their own (G = 2): a group of
    0 dense layers in front (what `pad_af` adds to a G = 1 configuration) prices exactly as
    G = 1, 3 dense layers price differently, and the compiled graph equals the task walk."""
    import jax
    import jax.numpy as jnp

    p = cost_params_from_scenario(load_scenario(MOE))
    L = float(p.layers)
    b = _batch(np.random.default_rng(4))
    one = ROOFLINE_AF.iteration_time(b, p, np)
    padded = p._replace(af=p.af._replace(groups=np.array([0.0, L])))
    assert ROOFLINE_AF.iteration_time(b, padded, np) == pytest.approx(one, rel=1e-12)
    dense = p._replace(af=p.af._replace(groups=np.array([3.0, L - 3.0])), dense_layers=np.float64(3.0))
    walk = ROOFLINE_AF.iteration_time(b, dense, np)
    assert abs(walk / one - 1.0) > 1e-4
    compiled = jax.jit(lambda b, p: ROOFLINE_AF.iteration_time(b, p, jnp))(b, dense)
    assert float(compiled) == pytest.approx(walk, rel=1e-9)


def test_ffn_side_on_its_own_hardware():
    """[af] ffn_hardware: the FFN tasks run at that GPU's FLOP/s and HBM bandwidth, its memory
    holds the FFN weights, the group's links take the slower network of the two (two kinds of
    GPU never share a node), and the simulators agree. Naming [hardware]'s own preset changes
    nothing."""
    from frontier_jax.cost.af_price import layer_groups
    from frontier_jax.spec import check_feasible
    from frontier_jax.spec.hardware import HARDWARE_PRESETS
    from frontier_jax.sweep.plan import family

    s = with_overrides(load_scenario(DENSE), {"workload.num_requests": 150})
    same = with_overrides(s, {"af.ffn_hardware": s.hardware.name})
    for x, y in zip(cost_params_from_scenario(same).af, cost_params_from_scenario(s).af, strict=True):
        np.testing.assert_array_equal(x, y)
    h200 = with_overrides(s, {"af.ffn_hardware": "H200"})
    p, p0 = cost_params_from_scenario(h200), cost_params_from_scenario(s)
    hw = HARDWARE_PRESETS["H200"]
    assert (p.af.ffn_hbm_bw, p.af.ffn_flops) == (hw.hbm_bw, hw.peak_flops)
    assert p.af.link_bw == min(s.hardware.net_bw, hw.net_bw) < p0.af.link_bw
    b = _batch(np.random.default_rng(4), decode_share=1.0)
    free = lambda q: q._replace(af=q.af._replace(link_bw=np.float64(np.inf), link_lat_s=np.float64(0)))  # noqa: E731
    (_, A, _, F, _), = layer_groups(micro_totals(b, free(p), np), free(p), np)
    (_, A0, _, F0, _), = layer_groups(micro_totals(b, free(p0), np), free(p0), np)
    np.testing.assert_allclose(A, A0)  # the attention side is the same GPU
    assert np.all(F[F0 > 0] < F0[F0 > 0])  # decode FFN is memory-bound: H200's HBM is faster
    with pytest.raises(SpecError, match="112.7 GB per FFN GPU but H100-SXM leaves 72.0 GB"):
        check_feasible(with_overrides(s, {"af.ffn_tp": 1}))
    check_feasible(with_overrides(h200, {"af.ffn_tp": 1}))
    assert family(h200) == "AF 2A:TP2+1F:TP4@H200" and family(same) == "AF 2A:TP2+1F:TP4"
    agree(h200, 100)
