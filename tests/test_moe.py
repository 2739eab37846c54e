"""MoE with expert parallelism: the layer waits for its slowest EP rank, the MoE structure of
the cost, [moe] validation, and agreement of the two simulators on the shipped MoE scenarios."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import SCENARIOS
from helpers import agree

from frontier_jax.cost import batch_totals, iteration_time
from frontier_jax.cost.batch import BatchSlots
from frontier_jax.cost.context import IterationContext
from frontier_jax.cost.params import cost_params_from_scenario
from frontier_jax.cost.roofline import _expert_rank_seconds, _gemm, moe_seconds, op_times
from frontier_jax.cost.routing import rank_loads
from frontier_jax.runner import prepare, run_vectorized
from frontier_jax.spec import SpecError, load_scenario, with_overrides

CTX = IterationContext(5, 0, 12)


def _scenario(**moe):
    s = load_scenario(SCENARIOS / "moe_qwen3_ep4.toml")
    return with_overrides(s, {f"moe.{k}": v for k, v in moe.items()})


def _batch(tokens: int) -> BatchSlots:
    """One prefill chunk of ``tokens`` tokens."""
    return BatchSlots(np.array([tokens]), np.array([0]), np.array([False]), np.array([True]),
                      np.array([True]))


def test_layer_waits_for_the_slowest_rank():
    """90% of the routed rows on one rank's experts: the iteration prices every MoE layer at
    that rank's time, not the mean rank's; the gap is the straggler penalty."""
    p = cost_params_from_scenario(_scenario(routing="uniform"))
    hot = np.tile([0.9, 0.1 / 3, 0.1 / 3, 0.1 / 3], (p.moe.shares.shape[0], 1))
    p = p._replace(moe=p.moe._replace(shares=hot))
    b = _batch(4096)
    slow = iteration_time(b, p, np, CTX)
    mean = iteration_time(b, p._replace(moe=p.moe._replace(wait_for_slowest=np.float64(0.0))), np, CTX)
    rows = 4096 * p.top_k
    loads = rank_loads(hot, rows, CTX.key(np), np)
    assert np.all(loads.argmax(-1) == 0) and loads[:, 0].min() > 0.85 * rows
    want = p.moe.layers_per_map * np.sum(_expert_rank_seconds(loads.max(-1), p, np)
                                         - _expert_rank_seconds(rows / 4.0, p, np))
    assert slow - mean == pytest.approx(want, rel=1e-9)
    assert slow > 1.4 * mean  # 3.6x the mean rank's rows: the expert GEMMs are a big share of a 4k prefill


def test_balanced_maps_give_the_balanced_time():
    p = cost_params_from_scenario(_scenario(routing="uniform"))
    b = _batch(8192)
    sampled = iteration_time(b, p, np, CTX)
    mean = iteration_time(b, p._replace(moe=p.moe._replace(wait_for_slowest=np.float64(0.0))), np, CTX)
    assert mean <= sampled <= 1.03 * mean  # 65k rows on 4 ranks: the max is within a few sd


def test_one_rank_with_unit_tile_is_the_balanced_formula():
    """EP 1 (experts sharded over TP) with a 1-row tile prices exactly the balanced routing's
    expected active experts: the two paths meet. (These batches are memory-bound; where the
    experts are compute-bound the sampled path still rounds each active expert's rows up.)"""
    bal = cost_params_from_scenario(_scenario(routing="balanced", ep=1, placement="contiguous"))
    ep1 = cost_params_from_scenario(_scenario(routing="uniform", ep=1, tile=1))
    for tokens in (1, 7, 300, 4096):
        a = iteration_time(_batch(tokens), bal, np, CTX)
        b = iteration_time(_batch(tokens), ep1, np, CTX)
        assert b == pytest.approx(a, rel=1e-12)


def test_tile_padding_and_active_experts():
    p = cost_params_from_scenario(_scenario(routing="uniform"))
    f = lambda x: float(_expert_rank_seconds(np.float64(x), p, np))  # noqa: E731
    assert f(0) == 0.0
    assert f(1) > 0 and f(2) >= f(1) and f(1000) > f(100)  # increasing in the rank's rows
    wide = p._replace(moe=p.moe._replace(tile=np.float64(1.0)))
    assert _expert_rank_seconds(np.float64(4096.0), wide, np) <= f(4096)


def test_dense_model_and_dense_first_layers():
    s = load_scenario(SCENARIOS / "light.toml")
    p = cost_params_from_scenario(s)
    t = batch_totals(_batch(512), np)
    assert p.moe is None and moe_seconds(t, p, np) == 0.0  # static: no work for dense models
    q = cost_params_from_scenario(load_scenario(SCENARIOS / "moe_deepseek_ep32.toml"))
    assert q.dense_layers == 3 and q.moe is not None
    ops = op_times(t, q, np)
    moe_parts = ops["moe_router"] + ops["mlp_up"] + ops["mlp_down"] + ops["moe_experts"]
    # three layers priced with the 18432-wide gated dense MLP instead of router + shared + experts
    dense_mlp = _gemm(512, 2 * 18432 / 32, 7168, q, np) + _gemm(512, 7168, 18432 / 32, q, np)
    key = CTX.key(np)
    with_dense = moe_seconds(t, q, np, key)
    # without dense layers the 3 layers are MoE layers: 58 + 3 in the count the sampled part replaces
    no_dense = moe_seconds(t, q._replace(dense_layers=np.float64(0.0)), np, key)
    assert with_dense - no_dense == pytest.approx(3 * (dense_mlp - moe_parts + ops["moe_experts"]), rel=1e-9)
    assert dense_mlp < moe_parts  # 512 tokens touch nearly all 256 experts: their weights outweigh a dense MLP


def test_sampled_routing_needs_the_context():
    p = cost_params_from_scenario(_scenario())
    with pytest.raises(ValueError, match="iteration context"):
        iteration_time(_batch(10), p, np, None)


@pytest.mark.parametrize("over,match", [
    ({"moe.ep": 3}, "must divide"),
    ({"moe.ep": 8}, "must be 1 or pool"),
    ({"moe.redundant_experts": 4}, "only used by placement 'eplb'"),
    ({"moe.placement": "eplb", "moe.redundant_experts": 6}, "multiple of moe.ep"),
    ({"moe.routing": "balanced"}, "need a sampled routing"),
    ({"moe.routing": "hot"}, "routing"),
])
def test_bad_moe_layouts_get_one_clear_line(over, match):
    with pytest.raises(SpecError, match=match):
        with_overrides(load_scenario(SCENARIOS / "moe_qwen3_ep4.toml"), over)


def test_moe_table_on_a_dense_model_is_refused():
    with pytest.raises(SpecError, match="dense model"):
        with_overrides(load_scenario(SCENARIOS / "light.toml"), {"moe.routing": "uniform"})


MOE_SHIPPED = ["moe_qwen3_ep4", "moe_qwen3_ep8", "moe_deepseek_ep32", "moe_qwen3_trace"]


@pytest.mark.parametrize("name", MOE_SHIPPED)
def test_shipped_moe_scenarios_agree(name):
    """Both simulators draw the same routing maps (keyed by seed, instance, iteration) and
    price them alike: per-request finish and first-token times within 1e-6."""
    agree(load_scenario(SCENARIOS / f"{name}.toml"), 400)


def test_skew_costs_throughput():
    """The same layout under uniform and Zipf(1.2) popularity: skew makes the slowest rank
    slower, so the run takes longer (and the mean-load what-if does not see it)."""
    runs = {}
    for routing, skew, slowest in (("uniform", 1.0, True), ("zipf", 1.2, True), ("zipf", 1.2, False)):
        s = _scenario(routing=routing, skew=skew, wait_for_slowest=slowest)
        s = dataclasses.replace(s, workload=dataclasses.replace(s.workload, num_requests=300))
        runs[(routing, slowest)] = run_vectorized(prepare(s)).metrics["duration_s"]
    assert runs[("zipf", True)] > runs[("uniform", True)]
    assert runs[("zipf", False)] < runs[("zipf", True)]


def test_sampled_layers_each_stand_for_their_share():
    """Four sampled layers of Qwen3's 48 MoE layers each weigh 12; drawing all 48 prices every
    layer from its own popularity and map; with uniform popularity the two agree on average."""
    few = cost_params_from_scenario(_scenario(routing="uniform"))
    every = cost_params_from_scenario(_scenario(routing="uniform", sampled_layers=48))
    assert few.moe.shares.shape == (4, 4) and few.moe.layers_per_map == 12.0
    assert every.moe.shares.shape == (48, 4) and every.moe.layers_per_map == 1.0
    b = _batch(256)
    keys = [IterationContext(1, 0, i) for i in range(200)]
    a = np.mean([iteration_time(b, few, np, k) for k in keys])
    c = np.mean([iteration_time(b, every, np, k) for k in keys])
    assert a == pytest.approx(c, rel=0.01)
    with pytest.raises(SpecError, match="MoE layers = 48"):
        _scenario(sampled_layers=49)


def test_routing_trace_csv_and_npz(tmp_path):
    """A trace's counts become each sampled layer's popularity; CSV and NPZ read alike; a
    trace of the wrong shape or a bad file is one clear line."""
    from frontier_jax.spec.scenario import load_routing_counts

    s = load_scenario(SCENARIOS / "moe_qwen3_trace.toml")
    counts = load_routing_counts(s.moe.trace)
    assert counts.shape == (48, 128)
    p = cost_params_from_scenario(s)
    layers = ((np.arange(4) + 0.5) * 48 / 4).astype(int)  # 6, 18, 30, 42
    pop = counts[layers] / counts[layers].sum(1, keepdims=True)
    np.testing.assert_allclose(p.moe.shares, pop.reshape(4, 32, 4).sum(1))  # round robin: e % 4
    z = tmp_path / "t.npz"
    np.savez(z, counts=np.stack([counts / 2, counts / 2]))
    np.testing.assert_allclose(load_routing_counts(str(z)), counts)
    bad = tmp_path / "bad.csv"
    bad.write_text("layer,expert,tokens\n0,0,5\n")
    with pytest.raises(SpecError, match="1 MoE layers x 1 experts"):
        with_overrides(s, {"moe.trace": str(bad)})
    with pytest.raises(SpecError, match="goes with routing 'trace'"):
        with_overrides(s, {"moe.routing": "uniform"})


def test_ep_degrees_and_skews_share_one_compiled_call():
    """sweeps/moe_ep.toml: EP 1-8 x four skews x max/mean is one group (one cost model, one
    compiled simulator); balanced routing, whose params lack the MoE leaves, is another."""
    from conftest import REPO

    from frontier_jax.sim import stack
    from frontier_jax.sweep import load_sweep
    from frontier_jax.sweep.plan import group_plans, plan

    plans, _ = plan(load_sweep(REPO / "sweeps" / "moe_ep.toml"))
    groups = group_plans(plans)
    assert len(plans) == 32 and len(groups) == 1
    eps = sorted({p.scenario.moe.ep for p in plans})
    assert eps == [1, 2, 4, 8]
    from frontier_jax.params import sim_params
    from frontier_jax.workload import make_workload

    params = [sim_params(p.scenario, make_workload(p.scenario.workload, p.scenario.seed), groups[0].cost)
              for p in plans[:: 8]]
    stacked = stack(params)
    assert stacked.cost.moe.shares.shape[-1] == 8  # narrower EP degrees padded with empty ranks
    bal = with_overrides(load_scenario(SCENARIOS / "moe_qwen3_ep4.toml"), {
        "moe.routing": "balanced", "moe.ep": 1, "moe.placement": "contiguous"})
    from frontier_jax.cost.tiers import cost_key

    assert cost_key(bal) != cost_key(plans[0].scenario)


def test_grouped_gemm_check_against_measured_kernels():
    """benchmarks/moe_gemm_check.py on Frontier's MoE profiles (skipped without them): the
    simulator's rank price is computed for every test row, and fitting the roofline's two
    efficiencies on the training rows lowers the median error on the A800 test rows at every TP."""
    import json
    import os
    import subprocess
    import sys

    from conftest import REPO

    root = Path(os.environ.get("FRONTIER_SHARED_DATA") or REPO.parent / "shared" / "data")
    if not (root / "frontier").exists():
        pytest.skip("no Frontier profiles")
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "moe_gemm_check.py"), "--json",
                          "--no-predictors", "--data", str(root)], capture_output=True, text=True, check=True)
    d = json.loads(out.stdout)
    assert d["test_rows"] > 1000
    a800 = [r for r in d["table"] if r["device"] == "a800" and r["model"] == "qwen3-a3b-30b-moe"]
    assert sorted(r["tp"] for r in a800) == [1, 2, 4, 8]
    for r in a800:
        assert r["roofline_fit"]["median_rel_err"] < r["roofline"]["median_rel_err"]
    # the data's own ceiling: near-repeats exist at every TP, and the small TP 8 kernels
    # repeat far worse than the TP 1 ones
    ceil = {r["tp"]: r for r in a800}
    assert all(r["near_repeat_rows"] > 100 for r in a800)
    assert ceil[1]["near_repeats_within"] > 0.95 > 0.7 > ceil[8]["near_repeats_within"]
    assert {s["timing"] for s in d["summary"] if s["device"] == "h800"} == {"cuda_event", "kernel_only"}


def test_popularity_drift_agrees_and_costs():
    """Drifting popularity: both simulators draw the same anchors and agree request by
    request; it is its own compiled group (extra leaves, extra draws)."""
    from frontier_jax.cost.tiers import cost_key

    s = _scenario(routing="zipf", skew=1.0, drift=0.8, drift_iterations=16)
    agree(s, 150)
    assert cost_key(s) != cost_key(_scenario(routing="zipf", skew=1.0))
    with pytest.raises(SpecError, match="drift need a sampled routing"):
        _scenario(routing="balanced", ep=1, drift=0.5)


def test_replaying_a_traces_iterations(tmp_path):
    """[moe] replay = 'iterations': an instance's iteration t takes the trace's iteration
    t mod I (here: all rows on rank 0's experts, then all on rank 1's), through the placement
    of the summed popularity; both simulators agree; bad combinations are one clear line."""
    from frontier_jax.cost.routing import layer_shares, routing_key

    base = load_scenario(SCENARIOS / "moe_qwen3_trace.toml")
    counts = np.zeros((2, 48, 128))
    counts[0, :, 0::4] = 10.0  # round robin on EP 4: expert e on rank e % 4
    counts[1, :, 1::4] = 10.0
    z = tmp_path / "iters.npz"
    np.savez(z, counts=counts)
    s = with_overrides(base, {"moe.trace": str(z), "moe.replay": "iterations"})
    moe = cost_params_from_scenario(s).moe
    assert moe.iter_shares.shape == (2, 4, 4)
    sh = layer_shares(moe, routing_key(IterationContext(1, 0, 0), moe, np, np.arange(4)), np)
    np.testing.assert_allclose(sh[:, 0, :], [[1, 0, 0, 0], [0, 1, 0, 0]] * 2)
    np.testing.assert_allclose(moe.shares[0], [0.5, 0.5, 0, 0])  # the summed popularity
    agree(s, 150)
    with pytest.raises(SpecError, match="needs routing = 'trace'"):
        _scenario(routing="uniform", replay="iterations")
    with pytest.raises(SpecError, match="do not mix"):
        with_overrides(s, {"moe.drift": 0.5})
