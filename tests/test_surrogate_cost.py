"""The surrogate cost tier: trained predictors priced inside the compiled step.

A predictor set trained by the real pipeline on synthetic profiles prices iterations;
the tests hold (1) the in-step features to the training features (the tier's price is
the sum of the surrogates evaluated on :func:`frame_features` of equivalent profile
rows), (2) the decode-window entry point to the per-iteration one, (3) the reference
and vectorized simulators to each other under this tier, and (4) clean errors.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import SCENARIOS
from helpers import llama8b_h100_cost
from synthetic_predictors import MODEL, make_predictor_set

from frontier_jax.cost import ROOFLINE, BatchSlots
from frontier_jax.cost.surrogate import SurrogateCost, grid_deviations, surrogate_cost
from frontier_jax.predict import linear_op_shape, load_predictor_set, predict_np
from frontier_jax.predict.features import frame_features
from frontier_jax.runner import compare, prepare, run_reference, run_vectorized
from frontier_jax.sim import simulate_batch, stack
from frontier_jax.spec import SpecError, load_scenario, with_overrides
from frontier_jax.spec.scenario import CostSpec


@pytest.fixture(scope="module")
def pset(tmp_path_factory):
    return make_predictor_set(tmp_path_factory.mktemp("pset"))


@pytest.fixture(scope="module")
def model(pset):
    return surrogate_cost(str(pset), "h100")


def _batch(q, c, dec, B=16):
    n = len(q)
    pad = lambda x, v: np.array(list(x) + [v] * (B - n))  # noqa: E731
    return BatchSlots(q_tokens=pad(q, 0).astype(np.int32), ctx_tokens=pad(c, 0).astype(np.int32),
                      is_decode=pad(dec, False).astype(bool),
                      samples=pad([True] * n, False).astype(bool),
                      mask=pad([True] * n, False).astype(bool))


MIXED = ([300, 1, 1, 1], [100, 500, 2000, 37], [False, True, True, True])


def _on_grid(price, c, dec, G=32):
    """``price(contexts)`` of a batch on the decode-context grid, by hand: interpolate
    between the anchors whose shortest decoding context is the multiple of G below and above."""
    c, dec = np.asarray(c), np.asarray(dec, bool)
    r = int(c[dec].min()) % G
    lo = np.where(dec, c - r, c)
    return (1 - r / G) * price(lo) + (r / G) * price(np.where(dec, lo + G, c))


def _by_hand(pset, q, c, dec, p):
    """The iteration price composed from host predictions on training-style rows."""
    ws = load_predictor_set(pset)["weights"]
    tp = int(p.tp)
    T = sum(q)
    lin = []
    for op, times in (("attn_pre_proj", 1), ("attn_post_proj", 1), ("mlp_up_proj", 1),
                      ("mlp_down_proj", 1), ("input_layernorm", 1), ("post_attention_layernorm", 1),
                      ("attn_rope", 1), ("mlp_act", 1), ("add", 2)):
        n, k, _ = linear_op_shape(op, tp=tp, **MODEL)
        lin.append((op, times, n, k))
    df = pd.DataFrame([dict(m=T, n=n, k=k, dtype_bytes=2, device="h100") for _, _, n, k in lin])
    X = frame_features("linear", df)
    layer = sum(t * predict_np(ws[op], X[i:i + 1])[0] for i, (op, t, _, _) in enumerate(lin))
    def att(cs):
        return frame_features("attention", pd.DataFrame([dict(
            q_lens=tuple(q), c_lens=tuple(cs), is_decode=tuple(dec), counts=(1,) * len(q),
            n_q_heads=32 / tp, n_kv_heads=8 / tp, head_dim=128, block_size=16, dtype_bytes=2,
            device="h100")]))

    if not all(dec):
        layer += predict_np(ws["attn_prefill"], att(c))[0]
    if any(dec):  # decode contexts on the 32-token grid (see cost.surrogate)
        layer += _on_grid(lambda cs: predict_np(ws["attn_decode"], att(cs))[0], c, dec)
    n, k, _ = linear_op_shape("lm_head_linear", tp=tp, **MODEL)
    lm = predict_np(ws["lm_head_linear"], frame_features(
        "linear", pd.DataFrame([dict(m=len(q), n=n, k=k, dtype_bytes=2, device="h100")])))[0]
    # all-reduce has no predictor in this set: the tier keeps its roofline price
    ar = 0.0
    if tp > 1:
        from frontier_jax.cost import batch_totals, op_times
        ar = op_times(batch_totals(_batch(q, c, dec), np), p, np)["tp_allreduce"]
    embed = T * 4096 * 2 / (p.hbm_bw * p.mem_eff)
    return 32 * (layer + ar) + lm + embed + p.cpu_s + p.cpu_per_seq_s * len(q)


@pytest.mark.parametrize("tp", [1.0, 2.0])
def test_price_is_the_sum_of_trained_surrogates_on_training_features(pset, model, tp):
    p = llama8b_h100_cost(tp)
    b = _batch(*MIXED)
    got = float(model.iteration_time(b, p, np))
    want = _by_hand(pset, *MIXED, p)
    # the networks run in float32 (both simulators): agreement to float32 rounding
    assert got == pytest.approx(want, rel=1e-6)
    jit = float(jax.jit(lambda b, p: model.iteration_time(b, p, jnp))(b, p))
    assert jit == pytest.approx(got, rel=1e-6)
    # the trained set is not the roofline in disguise
    assert abs(got / float(ROOFLINE.iteration_time(b, p, np)) - 1.0) > 0.05


def test_empty_batch_costs_nothing(model):
    b = _batch([], [], [])
    assert float(model.iteration_time(b, llama8b_h100_cost(), np)) == 0.0


def test_decode_window_matches_iterations(model):
    p = llama8b_h100_cost()
    q, c = [1] * 5, [10, 700, 15, 4000, 63]
    b = _batch(q, c, [True] * 5)
    K = 8
    per_iter = [float(model.iteration_time(_batch(q, [x + j for x in c], [True] * 5), p, np))
                for j in range(K)]
    np.testing.assert_allclose(model.decode_window_times(b, p, np, K), per_iter, rtol=1e-6)
    win = jax.jit(lambda b, p: model.decode_window_times(b, p, jnp, K))(b, p)
    np.testing.assert_allclose(np.asarray(win), per_iter, rtol=1e-6)
    assert per_iter[-1] > per_iter[0]  # longer contexts cost more


def test_vmaps_over_traced_tp(model):
    b = _batch(*MIXED)
    ps = stack([llama8b_h100_cost(1.0), llama8b_h100_cost(2.0)])
    got = jax.jit(jax.vmap(lambda p: model.iteration_time(b, p, jnp)))(ps)
    want = [float(model.iteration_time(b, llama8b_h100_cost(t), np)) for t in (1.0, 2.0)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def _scenario(pset, name="light", **extra):
    s = load_scenario(SCENARIOS / f"{name}.toml")
    over = {"cost.kind": "surrogate", "cost.predictor": str(pset), "workload.num_requests": 150}
    return with_overrides(s, {**over, **extra})


@pytest.mark.parametrize("extra", [{}, {"workload.arrival.rate": 12.0, "scheduler.max_num_seqs": 24,
                                        "scheduler.max_num_batched_tokens": 1024}])
def test_reference_and_vectorized_agree_under_the_surrogate_tier(pset, extra):
    prep = prepare(_scenario(pset, **extra))
    assert isinstance(prep.cost.iteration_time.__self__, SurrogateCost)
    vec, ref = run_vectorized(prep), run_reference(prep)
    c = compare(vec.result, ref.result)
    assert c["finished"] == 150
    assert c["max_rel_err_finish"] <= 1e-6 and c["max_rel_err_ttft"] <= 1e-6
    assert c["iterations_equal"] and c["preemptions_equal"]
    # and the tier changes the answer: the roofline run of the same scenario differs
    roof = run_reference(prepare(dataclasses.replace(prep.scenario, cost=CostSpec())))
    assert abs(roof.metrics["tpot_mean"] / ref.metrics["tpot_mean"] - 1.0) > 0.01


def test_same_set_same_compiled_model(pset):
    a, b = prepare(_scenario(pset)), prepare(_scenario(pset, **{"workload.arrival.rate": 3.0}))
    assert a.cost is b.cost  # static argument: one compilation serves both


def test_vmapped_sweep_of_surrogate_configs(pset):
    preps = [prepare(_scenario(pset, **{"workload.arrival.rate": r})) for r in (1.0, 4.0)]
    shape = preps[0].shape
    res = simulate_batch(shape, stack([p.params for p in preps]), preps[0].cost)
    for i, p in enumerate(preps):
        ref = run_reference(p).result
        np.testing.assert_allclose(np.asarray(res.finish_s[i]), ref.finish_s, rtol=1e-6)


def test_missing_set_is_a_one_line_error(tmp_path):
    with pytest.raises(SpecError) as e:
        prepare(_scenario(tmp_path / "nope"))
    msg = str(e.value)
    assert "cost.predictor" in msg and "no predictor set" in msg and "\n" not in msg


def test_set_of_another_device_is_refused(pset):
    with pytest.raises(SpecError) as e:
        prepare(_scenario(pset, **{"hardware.preset": "A100-80G"}))
    assert "profiled on h100" in str(e.value)


def test_forest_kind_is_refused_with_the_alternative(pset):
    with pytest.raises(SpecError) as e:
        prepare(_scenario(pset, **{"cost.kind": "forest"}))
    assert "surrogate" in str(e.value)


def test_card_records_the_device_it_prices(pset):
    card = json.loads((pset / "card.json").read_text())
    assert set(card["devices"]) == {"h100"}


@pytest.mark.parametrize("seed", range(4))
def test_window_features_equal_features_of_grown_contexts(seed):
    from frontier_jax.predict.features import attention_features, shifted_decode_features

    rng = np.random.default_rng(seed)
    B, K = 24, 40
    c = rng.integers(0, 5000, B)
    dec = rng.random(B) < 0.7
    dec[0] = seed != 3  # seed 3: no decodes at all
    if seed == 3:
        dec[:] = False
    q = np.where(dec, 1, 0)
    mask = dec.copy()
    kw = dict(n_q_heads=8.0, n_kv_heads=2.0, head_dim=128.0, peak_flops=989e12, mem_bw=3.35e12,
              num_sms=132.0, dtype_bytes=2.0, block_size=16.0)
    x0 = attention_features(q, c, mask, np, is_decode=dec, **kw)
    got = shifted_decode_features(x0, c, dec & mask, np.arange(K), np, peak_flops=989e12, mem_bw=3.35e12,
                                 dtype_bytes=2.0, block_size=16.0)
    want = np.stack([attention_features(q, c + j * dec, mask, np, is_decode=dec, **kw)
                     for j in range(K)])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("aligned", [False, True])
def test_shifted_features_equal_features_of_shifted_contexts(aligned):
    """Anchor batches: decode contexts moved down (to the grid) and up, prefill untouched;
    ``aligned`` shifts differ by whole pages and take the one-pass page count."""
    from frontier_jax.predict.features import attention_features, shifted_decode_features

    rng = np.random.default_rng(7)
    B = 20
    dec = rng.random(B) < 0.6
    c = np.where(dec, rng.integers(40, 3000, B), rng.integers(0, 500, B))
    q = np.where(dec, 1, rng.integers(2, 300, B))
    mask = rng.random(B) < 0.9
    kw = dict(n_q_heads=8.0, n_kv_heads=2.0, head_dim=128.0, peak_flops=989e12, mem_bw=3.35e12,
              num_sms=132.0, dtype_bytes=2.0, block_size=16.0)
    r = int(c[dec & mask].min()) % 32
    shifts = np.array([-r, 32 - r, 64 - r]) if aligned else np.array([-r, 5 - r, 17, 3])
    x0 = attention_features(q, c, mask, np, is_decode=dec, **kw)
    got = shifted_decode_features(x0, c, dec & mask, shifts, np, peak_flops=989e12, mem_bw=3.35e12,
                                  dtype_bytes=2.0, block_size=16.0, aligned=aligned)
    want = np.stack([attention_features(q, c + s * (dec & mask), mask, np, is_decode=dec, **kw)
                     for s in shifts])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def iteration_set(tmp_path_factory):
    from synthetic_predictors import make_iteration_set

    return make_iteration_set(tmp_path_factory.mktemp("iterset"))


def test_iteration_model_prices_whole_steps(iteration_set):
    from frontier_jax.predict.features import frame_features

    model = surrogate_cost(str(iteration_set), "h100")
    p = llama8b_h100_cost()
    q, c, d = MIXED
    got = float(model.iteration_time(_batch(q, c, d), p, np))
    row = pd.DataFrame([dict(q_lens=tuple(q), c_lens=tuple(c), is_decode=tuple(d),
                             counts=(1,) * len(q), n_q_heads=32.0, n_kv_heads=8.0, head_dim=128,
                             block_size=16, dtype_bytes=2, device="h100")])
    ps = load_predictor_set(iteration_set)
    w = ps["weights"]["iteration"]
    # the network divides by a linear physics of the step that grows with the decode
    # contexts, so the decode anchors shift its ratio too (the path checked below)
    from frontier_jax.cost.features import SHIFTED_COLUMNS

    lin = ps["card"]["models"]["iteration"]["surrogate"]["linear_ratio"]
    assert set(lin["coefficients"]) & set(SHIFTED_COLUMNS) and float(w["ratio_bias"]) > 0
    want = _on_grid(lambda cs: predict_np(w, frame_features("attention", row.assign(
        c_lens=[tuple(int(x) for x in cs)])))[0], c, d)
    assert got == pytest.approx(want, rel=1e-6)
    assert got == pytest.approx(2e-3 + 4e-6 * sum(q) + 2e-8 * 2537, rel=0.1)  # the law trained on
    # decode windows agree with the per-iteration price
    qd, cd = [1] * 4, [40, 900, 3000, 17]
    per = [float(model.iteration_time(_batch(qd, [x + j for x in cd], [True] * 4), p, np))
           for j in range(6)]
    np.testing.assert_allclose(model.decode_window_times(_batch(qd, cd, [True] * 4), p, np, 6),
                               per, rtol=1e-6)


def test_iteration_model_sees_work_totals_not_batch_shapes(tmp_path):
    """An engine profile probes homogeneous batches (every decoding sequence at one context):
    the whole-step model is trained on the batch's work totals only, so a served batch whose
    contexts differ costs what a homogeneous batch of the same totals costs, and the law
    trained on holds for it."""
    from frontier_jax.predict import save_profiles, train_predictors
    from frontier_jax.predict.train import ITERATION_FEATURES

    rng = np.random.default_rng(0)
    rows = []
    for b in (1, 2, 3, 4, 6, 8, 12, 16):
        for c in rng.integers(4, 256, 6) * 16:  # one context per probe, as profile_engine.py runs
            t = 2e-3 + 3e-4 * b + 2e-8 * b * int(c)
            rows.append(dict(family="attention", op="iteration", q_lens=[1] * b, c_lens=[int(c)] * b,
                             is_decode=[True] * b, counts=[1] * b, n_q_heads=32, n_kv_heads=8,
                             head_dim=128, tp=1, block_size=16, dtype_bytes=2, device="h100",
                             time_s=t * rng.lognormal(0, 0.005)))
    (tmp_path / "prof").mkdir()
    save_profiles(pd.DataFrame(rows), tmp_path / "prof" / "engine.csv")
    card = train_predictors(tmp_path / "prof", "native", tmp_path / "set", seed=0, save_forests=False,
                            forest_params={"n_estimators": 20, "min_samples_leaf": 1},
                            surrogate_params={"steps": 600, "batch_size": 256},
                            augment={"copies": 1, "max_points": 2000})
    model = surrogate_cost(str(tmp_path / "set"), "h100")
    p = llama8b_h100_cost()
    # equal totals (sequences, tokens, context sum, KV pages), different shapes; contexts on
    # the 32-token decode grid, so each batch is priced at its own features
    het = float(model.iteration_time(_batch([1] * 4, [64, 960, 2048, 1024], [True] * 4), p, np))
    hom = float(model.iteration_time(_batch([1] * 4, [1024] * 4, [True] * 4), p, np))
    assert het == pytest.approx(hom, rel=1e-6)
    assert het == pytest.approx(2e-3 + 3e-4 * 4 + 2e-8 * 4096, rel=0.1)
    assert card["models"]["iteration"]["inputs"] == list(ITERATION_FEATURES)


def test_iteration_model_keeps_simulators_in_lockstep(iteration_set):
    prep = prepare(_scenario(iteration_set, **{"workload.arrival.rate": 6.0}))
    c = compare(run_vectorized(prep).result, run_reference(prep).result)
    assert c["finished"] == 150 and c["max_rel_err_finish"] <= 1e-6 and c["iterations_equal"]


def test_shipped_cpu_set_runs_in_both_simulators():
    """predictors/cpu-llama-512 (profiled here) priced through scenarios/cpu_tiny_llama.toml."""
    s = with_overrides(load_scenario(SCENARIOS / "cpu_tiny_llama.toml"), {"workload.num_requests": 120})
    prep = prepare(s)
    assert prep.cost.iteration_time.__self__.name == "cpu-llama-512"
    vec, ref = run_vectorized(prep), run_reference(prep)
    c = compare(vec.result, ref.result)
    assert c["finished"] == 120 and c["max_rel_err_finish"] <= 1e-6 and c["iterations_equal"]
    assert 0 < vec.metrics["tpot_mean"] < 1.0


@pytest.mark.parametrize("kind", ["ops", "iteration"])
def test_step_times_is_iteration_and_window_in_one_pass(model, iteration_set, kind):
    m = model if kind == "ops" else surrogate_cost(str(iteration_set), "h100")
    p = llama8b_h100_cost()
    for q, c, d in (MIXED, ([1] * 5, [10, 700, 15, 4000, 63], [True] * 5)):
        b = _batch(q, c, d)
        dur, win = m.step_times(b, p, np, 8)
        assert float(dur) == pytest.approx(float(m.iteration_time(b, p, np)), rel=1e-6)
        want = np.asarray(m.decode_window_times(b, p, np, 8))
        np.testing.assert_allclose(win[1:], want[1:], rtol=1e-6)
        assert win[0] == dur
        jd, jw = jax.jit(lambda b, p: m.step_times(b, p, jnp, 8))(b, p)
        np.testing.assert_allclose(np.asarray(jw), win, rtol=1e-6)


def test_sweep_over_a_surrogate_priced_scenario(tmp_path):
    """A sweep whose base selects a predictor set: chunks run under that tier, and a
    configuration whose hardware the set was not profiled on is kept as a row with the reason."""
    from frontier_jax.sweep import run_sweep, sweep_from_dict

    spec = sweep_from_dict({
        "name": "sur", "base": str(SCENARIOS / "cpu_tiny_llama.toml"), "chunk_size": 4,
        "axes": {"workload.arrival.rate": [2.0, 8.0], "hardware.name": ["cpu (2 cores)", "H100-SXM"]},
        "derived": {"workload.num_requests": "40"},
    })
    df = run_sweep(spec, tmp_path, progress=False)
    ok = df[df["status"] == "ok"]
    assert len(ok) == 2 and (ok["tpot_mean"] > 0).all()
    bad = df[df["status"] != "ok"]
    assert len(bad) == 2 and bad["status"].str.contains("profiled on cpu").all()
    # the ok rows equal single runs of the same scenarios under the same tier
    s = with_overrides(load_scenario(SCENARIOS / "cpu_tiny_llama.toml"),
                       {"workload.arrival.rate": 8.0, "workload.num_requests": 40})
    single = run_vectorized(prepare(s)).metrics
    row = ok[ok["rate"] == 8.0].iloc[0]
    assert row["tpot_mean"] == pytest.approx(single["tpot_mean"], rel=1e-6)  # float32 nets


def test_networks_of_different_shapes_are_priced_one_by_one(model):
    """Stacking needs one shape per group; a set mixing widths is evaluated op by op, same price."""
    from frontier_jax.cost.surrogate import SurrogateCost

    sc = model.iteration_time.__self__
    w = {op: dict(v) for op, v in sc.w.items()}
    up = w["mlp_up_proj"]  # widen its first hidden layer with dead units: same function
    pad = 3
    up["W0"] = np.concatenate([up["W0"], np.zeros((up["W0"].shape[0], pad), np.float32)], 1)
    up["b0"] = np.concatenate([up["b0"], np.zeros(pad, np.float32)])
    up["W1"] = np.concatenate([up["W1"], np.zeros((pad, up["W1"].shape[1]), np.float32)], 0)
    mixed = SurrogateCost("mixed", w, sc.dev, 16)
    assert mixed.lin is None and sc.lin is not None
    p, b = llama8b_h100_cost(), _batch(*MIXED)
    assert float(mixed.iteration_time(b, p, np)) == pytest.approx(float(sc.iteration_time(b, p, np)), rel=1e-6)


@pytest.mark.parametrize("missing", ["attn_prefill", "attn_decode"])
def test_a_set_without_one_attention_network_prices_that_part_by_the_roofline(model, missing):
    """The network present prices its part; the roofline prices the one the set lacks."""
    from frontier_jax.cost import batch_totals
    from frontier_jax.cost.batch import grow_decode
    from frontier_jax.cost.roofline import op_times
    from frontier_jax.cost.surrogate import _mlp

    sc = model.iteration_time.__self__
    part = SurrogateCost("part", {op: v for op, v in sc.w.items() if op != missing}, sc.dev, 16)
    p, b = llama8b_h100_cost(), _batch(*MIXED)
    t, x0 = batch_totals(b, np), sc._attention_x(b, p, np)
    full = float(sc.attention_times(b, t, p, np, 1, x0)[0])
    pre_net = float(_mlp(sc.w["attn_prefill"], x0.x, np))
    if missing == "attn_prefill":
        want = op_times(t, p, np)["attn_prefill"] + (full - pre_net)
    else:
        want = pre_net + op_times(grow_decode(t, 1, np), p, np)["attn_decode"][0]
    got = float(part.attention_times(b, t, p, np, 1, x0)[0])
    assert got == pytest.approx(float(want), rel=1e-6)
    assert got != pytest.approx(full, rel=1e-3)  # the roofline part really differs


def _random_batch(rng, B=16, max_q=600, decode_share=0.6):
    dec = rng.random(B) < decode_share
    q = np.where(dec, 1, rng.integers(1, max_q, B))
    c = rng.integers(1, 4000, B)
    m = rng.random(B) < 0.8
    return BatchSlots(q.astype(np.int32), c.astype(np.int32), dec & m, rng.random(B) < 0.7, m)


@pytest.mark.parametrize("tp", [1.0, 2.0])
def test_tables_price_like_the_networks(model, tp):
    """CostModel.prepare tabulates the linear family exactly: a step priced from the
    tables equals the step that evaluates the networks, in numpy and under jit."""
    sc = model.iteration_time.__self__
    p = llama8b_h100_cost(tp)
    pt = model.prepare(p, 16 * 600, 16)
    assert pt.tables.layer.shape == (16 * 600 + 1,) and pt.tables.lm_head.shape == (17,)
    assert float(pt.tables.layer[0]) == pytest.approx(float(sc.layer_time(np.float64(0.0), p, np)), rel=1e-6)
    # built in chunks (TABLE_CHUNK < 9,600): the same as one evaluation over every count
    np.testing.assert_allclose(pt.tables.layer, sc.layer_time(np.arange(16 * 600 + 1.0), p, np),
                               rtol=1e-12)
    rng = np.random.default_rng(int(tp))
    jit = jax.jit(lambda b, p: model.step_times(b, p, jnp, 8))
    for _ in range(20):
        b = _random_batch(rng)
        want = model.step_times(b, p, np, 8)
        got = model.step_times(b, pt, np, 8)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
        np.testing.assert_allclose(np.asarray(jit(b, pt)[1]), want[1], rtol=1e-6)
    # cached per cost parameters: the same budget reuses the table, a shorter one its prefix
    again, short = model.prepare(p, 16 * 600, 16).tables, model.prepare(p, 1000, 8).tables
    assert np.shares_memory(again.layer, pt.tables.layer)
    assert np.shares_memory(short.layer, pt.tables.layer) and short.layer.shape == (1001,)
    np.testing.assert_array_equal(short.lm_head, pt.tables.lm_head[:9])


def test_sim_params_carry_tables_and_stack_pads_them(pset):
    """Configurations with different token budgets stack (tables padded with their last
    entry) and the vectorized batch equals each configuration's reference run."""
    preps = [prepare(_scenario(pset, **{"scheduler.max_num_batched_tokens": n,
                                        "workload.arrival.rate": 6.0})) for n in (512, 2048)]
    lens = [p.params.cost.tables.layer.shape[-1] for p in preps]
    assert lens == [513, 2049]
    params = stack([p.params for p in preps])
    assert params.cost.tables.layer.shape == (2, 1, 2049)  # configurations, pools, token counts
    assert np.all(params.cost.tables.layer[0, 0, 513:] == preps[0].params.cost.tables.layer[0, -1])
    res = simulate_batch(preps[1].shape, params, preps[0].cost)
    for i, p in enumerate(preps):
        ref = run_reference(p).result
        np.testing.assert_allclose(np.asarray(res.finish_s[i]), ref.finish_s, rtol=1e-6)


def test_totals_read_off_the_attention_features():
    from frontier_jax.cost import batch_totals
    from frontier_jax.cost.surrogate import AttnX, _totals_of
    from frontier_jax.predict.features import attention_columns

    rng = np.random.default_rng(3)
    for _ in range(30):
        b = _random_batch(rng)
        cols = attention_columns(b.q_tokens, b.ctx_tokens, b.mask, np, is_decode=b.is_decode & b.mask,
                                 n_q_heads=8.0, n_kv_heads=2.0, head_dim=128.0, peak_flops=1e15,
                                 mem_bw=3e12, num_sms=132.0)
        got = _totals_of(AttnX(None, cols), b, np)
        assert tuple(map(float, got)) == tuple(map(float, batch_totals(b, np)))


def test_grid_price_stays_near_the_raw_surrogate(model):
    """The 32-token grid interpolates; on a grid point it is the raw surrogate itself, and
    off it stays close (bounds measured; see the module doc of cost.surrogate)."""
    from frontier_jax.cost.surrogate import _mlp

    sc = model.iteration_time.__self__
    p = llama8b_h100_cost()
    b = _batch([1] * 3, [64, 700, 4000], [True] * 3)  # shortest context on the grid
    x0 = sc._attention_x(b, p, np)
    from frontier_jax.cost import batch_totals
    got = float(sc.attention_times(b, batch_totals(b, np), p, np, 1, x0)[0])
    assert got == pytest.approx(float(_mlp(sc.w["attn_decode"], x0.x, np)), rel=1e-6)
    assert grid_deviations(sc, p, 200)[:, 1].max() < 0.005
    # the shipped CPU set bends sharply at short contexts; from 128 tokens on it is smooth
    from frontier_jax.cost import cost_params_from_scenario
    cpu = surrogate_cost(str(SCENARIOS.parent / "predictors" / "cpu-llama-512"), "cpu")
    pc = cost_params_from_scenario(load_scenario(SCENARIOS / "cpu_tiny_llama.toml"))
    dev = grid_deviations(cpu.iteration_time.__self__, pc, 200, c_lo=128)[:, 1]
    assert np.median(dev) < 0.005 and dev.max() < 0.03
