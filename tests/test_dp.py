"""Attention data parallelism + expert parallelism (frontier_jax/cost/dp.py): the DP ranks of
an instance step together, each layer waits for the slowest DP rank's attention and the slowest
EP rank's experts and adds the all-to-all; the layout's GPUs, weights and KV; both simulators
agree, and DP degrees stack into one compiled call."""

import dataclasses

import numpy as np
import pytest
from conftest import REPO, SCENARIOS
from helpers import agree

from frontier_jax.cost import ROOFLINE_MOE, batch_totals, dp
from frontier_jax.cost.batch import BatchSlots
from frontier_jax.cost.context import IterationContext
from frontier_jax.cost.params import cost_params_from_scenario
from frontier_jax.params import sim_params, stack, unstack
from frontier_jax.reference import simulate_reference
from frontier_jax.runner import compare, prepare, run_vectorized
from frontier_jax.spec import (
    SpecError,
    kv_bytes_per_token_per_gpu,
    kv_capacity_blocks,
    load_scenario,
    with_overrides,
)
from frontier_jax.workload import make_workload

CTX = IterationContext(7, 0, 3)


def _scenario(name="moe_qwen3_dp4_ep8", **over):
    return with_overrides(load_scenario(SCENARIOS / f"{name}.toml"), over)


def _batch(q, c, ids):
    q, c = np.asarray(q), np.asarray(c)
    dec = q == 1
    return BatchSlots(q, c, dec, np.ones(len(q), bool), np.ones(len(q), bool), ids=np.asarray(ids))


def _padded(p, d):
    """``p``'s MoE params with ``d`` DP rank slots (the live ones first), as a stack pads them."""
    live = np.asarray(p.moe.dp_ranks)
    return p._replace(moe=p.moe._replace(dp_ranks=np.pad(live, (0, d - live.shape[-1]))))


def test_layout_counts_dp_ranks():
    s = _scenario()
    pool = s.pools[0]
    assert (pool.dp, pool.tp, pool.gpus_per_instance, s.num_gpus) == (4, 2, 8, 16)
    one = with_overrides(s, {"parallel.dp": 1, "moe.ep": 2})
    # each DP rank holds its own KV, and the experts are spread over 4x the GPUs: more room
    assert kv_capacity_blocks(s) > 4 * kv_capacity_blocks(one)
    m = s.model
    weights = (m.weight_bytes() - m.routed_expert_bytes()) / 2 + m.routed_expert_bytes() / 8
    free = 80e9 * pool.scheduler.gpu_memory_utilization - weights
    per_rank = int(free // (pool.scheduler.block_size * kv_bytes_per_token_per_gpu(s)))
    assert kv_capacity_blocks(s) == 4 * per_rank
    # EPLB's spare slots hold extra expert copies: less room for KV
    eplb = with_overrides(s, {"moe.placement": "eplb", "moe.redundant_experts": 8})
    assert kv_capacity_blocks(eplb) < kv_capacity_blocks(s)
    e = sim_params(s, make_workload(s.workload, s.seed)).engine.pools
    assert int(e.max_num_seqs[0]) == 4 * 32 and int(e.max_batched_tokens[0]) == 4 * 1024


@pytest.mark.parametrize("over,match", [
    ({"moe.ep": 2}, r"must be 1 or pool 'main'\'s dp x tp = 8"),
    ({"scheduler.max_num_batched_tokens": 2**30}, "under 2\\*\\*31"),
    ({"moe.routing": "balanced", "moe.ep": 1}, "sampled routing maps"),
    ({"parallel.dp": 65}, "dp"),
])
def test_bad_dp_layouts_get_one_clear_line(over, match):
    with pytest.raises(SpecError, match=match):
        _scenario(**over)


def test_dp_on_a_dense_model_is_refused():
    with pytest.raises(SpecError, match="is dense"):
        with_overrides(load_scenario(SCENARIOS / "light.toml"), {"parallel.dp": 2})


def test_surrogate_tier_refuses_dp():
    from frontier_jax.cost.tiers import cost_model

    s = _scenario()
    s = dataclasses.replace(s, cost=dataclasses.replace(s.cost, kind="surrogate", predictor="x"))
    with pytest.raises(SpecError, match="roofline' for attention data parallelism"):
        cost_model(s)


def test_one_dp_rank_is_the_roofline():
    """dp = 1 padded to 4 rank slots (as when stacked with wider configurations) prices every
    batch as the roofline does, iterations and decode windows."""
    p = cost_params_from_scenario(_scenario(**{"parallel.dp": 1, "moe.ep": 2}))
    assert not dp.uses_dp(p) and dp.uses_dp(_padded(p, 4))
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 40))
        q = np.where(rng.random(n) < 0.7, 1, rng.integers(1, 900, n))
        b = _batch(q, rng.integers(0, 3000, n), rng.permutation(1000)[:n])
        ctx = IterationContext(int(rng.integers(99)), 0, int(rng.integers(99)))
        want = ROOFLINE_MOE.iteration_time(b, p, np, ctx)
        assert ROOFLINE_MOE.iteration_time(b, _padded(p, 4), np, ctx) == pytest.approx(want, rel=1e-12)
        w = ROOFLINE_MOE.decode_window_times(b, p, np, 5, ctx)
        np.testing.assert_allclose(ROOFLINE_MOE.decode_window_times(b, _padded(p, 4), np, 5, ctx), w,
                                   rtol=1e-12)


def test_ranks_wait_for_the_slowest_dp_rank():
    """The same sequences cost more when they all sit on one DP rank than dealt over the
    four; a rank's attention is priced from its own requests only, and an idle rank does not
    make the step cheaper than its busiest one."""
    p = cost_params_from_scenario(_scenario())
    n = 32
    ranks = dp.dp_rank(np.arange(4000), 4.0, np)
    piled_ids = np.flatnonzero(ranks == 0)[:n]
    dealt_ids = np.concatenate([np.flatnonzero(ranks == r)[:n // 4] for r in range(4)])
    q, c = np.ones(n, int), np.full(n, 4000)
    spread = ROOFLINE_MOE.iteration_time(_batch(q, c, dealt_ids), p, np, CTX)
    piled = ROOFLINE_MOE.iteration_time(_batch(q, c, piled_ids), p, np, CTX)
    assert piled > spread
    tr = dp.rank_totals(_batch(q, c, piled_ids), p, np)
    np.testing.assert_array_equal(tr.num_seqs, [32, 0, 0, 0])
    np.testing.assert_array_equal(tr.decode_kv_tokens, [32 * 4001, 0, 0, 0])
    np.testing.assert_array_equal(dp.rank_totals(_batch(q, c, dealt_ids), p, np).num_seqs, [8] * 4)


def test_dp_rank_is_independent_of_the_replica_router():
    """A hash of the request id, the same in numpy and jax: the requests a round-robin router
    sends to one of 2, 4 or 8 replicas (every 2nd, 4th, 8th id) still reach every DP rank."""
    import jax.numpy as jnp

    ids = np.arange(4096)
    for d in (2, 4, 8):
        r = dp.dp_rank(ids, float(d), np)
        np.testing.assert_array_equal(r, np.asarray(dp.dp_rank(jnp.asarray(ids, jnp.int32), jnp.float64(d), jnp)))
        for replicas in (2, 4, 8):
            counts = np.bincount(r[::replicas], minlength=d)
            assert counts.min() > 0.8 * len(ids) / replicas / d


def test_all_to_all_by_bytes_and_link():
    """Dispatch + combine: none with one DP rank; with DP ranks, per MoE layer 2 x (latency +
    bytes / bandwidth), NVLink inside a node, the network across nodes."""
    s = _scenario()
    p = cost_params_from_scenario(s)
    b = _batch(np.ones(64, int), np.full(64, 100), np.arange(64))
    t_all, t_rank = batch_totals(b, np), dp.rank_totals(b, p, np)
    x = np.array([200.0])
    a2a = dp.a2a_seconds(t_rank, t_all, x, p, np)
    send = 16 * p.top_k / p.tp  # 16 tokens per rank, split over its 2 GPUs
    want = 2 * (p.nvlink_lat_s + max(send, 200.0) * (7 / 8) * p.hidden * p.dtype_bytes / p.nvlink_bw)
    assert a2a[0] == pytest.approx(want, rel=1e-12)
    wide = cost_params_from_scenario(with_overrides(s, {"parallel.dp": 8, "moe.ep": 16}))
    assert wide.gpus_per_node < 16
    far = dp.a2a_seconds(dp.rank_totals(b, wide, np), t_all, x, wide, np)
    assert far[0] > 3 * a2a[0]  # the network: slower and higher latency than NVLink
    one = cost_params_from_scenario(with_overrides(s, {"parallel.dp": 1, "moe.ep": 2}))
    assert dp.a2a_seconds(dp.rank_totals(b, _padded(one, 4), np), t_all, x, _padded(one, 4), np)[0] == 0


@pytest.mark.parametrize("name", ["moe_qwen3_dp4_ep8", "moe_deepseek_dp8_ep32"])
def test_shipped_dp_scenarios_agree(name):
    agree(load_scenario(SCENARIOS / f"{name}.toml"), 150)


def test_dp_degrees_stack_into_one_call():
    """DP 1, 2 and 4 (EP 2, 4, 8) in one vmapped call: each equals its own reference run."""
    import jax

    from frontier_jax.sim import sim_shape, simulate_batch

    configs = []
    for d in (1, 2, 4):
        s = _scenario(**{"parallel.dp": d, "moe.ep": 2 * d, "cluster.replicas": 1,
                         "workload.num_requests": 120, "workload.arrival.rate": 20.0})
        configs.append(sim_params(s, make_workload(s.workload, s.seed), ROOFLINE_MOE))
    stacked = stack(configs)
    assert stacked.cost.moe.dp_ranks.shape[-1] == 4
    shape = sim_shape(stacked)
    res = jax.device_get(simulate_batch(shape, stacked, ROOFLINE_MOE))
    ends = set()
    for i in range(3):
        ref = simulate_reference(unstack(stacked, i), shape.max_instances, ROOFLINE_MOE)
        c = compare(unstack(res, i), ref)
        assert c["max_rel_err_finish"] <= 1e-6 and c["iterations_equal"]
        ends.add(float(res.end_s[i]))
    assert len(ends) == 3


def test_deepseek_ep_sweep_is_one_group():
    """sweeps/moe_deepseek_ep.toml: EP 1..64 x skew x spare slots x max/mean on 64 H200s; the
    EP degrees whose weights do not fit are skipped, the rest are one compiled group."""
    from frontier_jax.sweep import load_sweep
    from frontier_jax.sweep.plan import group_plans, plan

    plans, _ = plan(load_sweep(REPO / "sweeps" / "moe_deepseek_ep.toml"))
    ok = [p for p in plans if p.status == "ok"]
    assert len(plans) == 112 and len(ok) == 80
    assert sorted({p.scenario.moe.ep for p in ok}) == [1, 8, 16, 32, 64]
    assert {p.scenario.num_gpus for p in ok} == {64}
    assert all("do not fit" in p.status or "missing" in p.status for p in plans if p.status != "ok")
    assert len(group_plans(ok)) == 1


def test_long_prefill_threshold_caps_a_chunk():
    """vLLM's long_prefill_token_threshold: no sequence computes more than it in an iteration
    (without it, prompts take the whole budget), and both simulators agree; a DP rank's budget
    caps one sequence's chunk the same way; the knob needs chunked prefill."""
    base = load_scenario(SCENARIOS / "light.toml")
    for cap in (0, 96):
        s = with_overrides(base, {"scheduler.long_prefill_token_threshold": cap,
                                  "workload.num_requests": 150})
        prep = prepare(s)
        assert int(prep.params.engine.pools.max_chunk[0]) == (cap or s.scheduler.max_num_batched_tokens)
        chunks: list[int] = []
        ref = simulate_reference(prep.params, s.num_instances,
                                 on_iteration=lambda r, t, d, b, f, out=chunks: out.append(int(b.q_tokens.max())))
        c = compare(run_vectorized(prep).result, ref)
        assert c["max_rel_err_finish"] <= 1e-9 and c["iterations_equal"]
        assert (max(chunks) <= 96) if cap else (max(chunks) > 96)
    with pytest.raises(SpecError, match="chunked_prefill = true"):
        with_overrides(base, {"scheduler.long_prefill_token_threshold": 64,
                              "scheduler.chunked_prefill": False})
    s = _scenario()
    e = sim_params(s, make_workload(s.workload, s.seed)).engine.pools
    assert int(e.max_chunk[0]) == 1024 and int(e.max_batched_tokens[0]) == 4096
    with pytest.raises(SpecError, match="needs chunked_prefill"):
        _scenario(**{"scheduler.chunked_prefill": False})


def test_ep_per_pool_in_a_pd_layout():
    """A small-EP prefill pool and a wide DP + EP decode pool (scenarios/pd_moe_qwen3.toml):
    each pool's MoE params have their own EP degree and DP ranks (padded to one shape across
    pools), bad per-pool EP degrees are one clear line, and the layout agrees with the
    reference request by request."""
    s = load_scenario(SCENARIOS / "pd_moe_qwen3.toml")
    pre, dec = s.pools
    assert (pre.ep, dec.ep, dec.dp, s.num_gpus) == (2, 8, 4, 12)
    p = sim_params(s, make_workload(s.workload, s.seed))
    assert p.cost.moe.shares.shape[-1] == 8 and p.cost.moe.dp_ranks.shape == (2, 4)
    np.testing.assert_array_equal(p.cost.moe.ep, [2.0, 8.0])
    np.testing.assert_array_equal(p.cost.moe.dp_ranks, [[1, 0, 0, 0], [1, 1, 1, 1]])
    assert np.all(p.cost.moe.shares[0, :, 2:] == 0)  # the prefill pool's ranks past its EP 2
    with pytest.raises(SpecError, match=r"layout.prefill.ep.*must be 1 or pool 'prefill''s tp = 2"):
        with_overrides(s, {"layout.prefill.ep": 4})
    with pytest.raises(SpecError, match="needs an MoE model"):
        with_overrides(load_scenario(SCENARIOS / "pd_1p1d.toml"), {"layout.decode.ep": 1})
    assert agree(s, 150)["decode_replicas_equal"]


def test_a_groups_chunks_share_one_moe_shape():
    """A sweep pads every chunk of a group to the group's (G, S, D): a dp = 1 configuration
    run alone or in a chunk with DP 4 is priced alike and every chunk has one compiled shape."""
    from frontier_jax.sweep.plan import Planned, group_plans

    scen = [_scenario(**{"parallel.dp": d, "moe.ep": 2 * d, "cluster.replicas": 1,
                         "workload.num_requests": 60}) for d in (1, 4)]
    plans = [Planned(None, s, "ok") for s in scen]
    (group,) = group_plans(plans)
    assert group.moe_dims == (4, 8, 4)
    alone = group.pad([sim_params(scen[0], make_workload(scen[0].workload, scen[0].seed), group.cost)])
    assert alone[0].cost.moe.shares.shape[-1] == 8 and alone[0].cost.moe.dp_ranks.shape[-1] == 4
