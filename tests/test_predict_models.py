"""Forest / surrogate training, save-load round trip, surrogate inside jax.jit and jax.vmap,
evaluation and the CLI."""

from __future__ import annotations

import json
import re

import click
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import shared_data_root

from frontier_jax.predict import features as F
from frontier_jax.predict.forest import ForestModel, fit_forest
from frontier_jax.predict.importers import load_profiles, save_profiles
from frontier_jax.predict.surrogate import (
    fit_surrogate,
    load_surrogate,
    predict_np,
    save_surrogate,
    surrogate_apply,
)
from frontier_jax.predict.train import (
    ITERATION_FEATURES,
    eval_predictors,
    holdout_mask,
    load_predictor_set,
    register_cli,
    train_predictors,
)

DATA = shared_data_root()
TINY_FOREST = {"n_estimators": 15, "min_samples_leaf": 1}
TINY_SUR = {"width": 32, "depth": 2, "steps": 600, "batch_size": 256}


def _synthetic_frames(n: int = 240, seed: int = 0) -> dict[str, pd.DataFrame]:
    """A GEMM family (launch floor + roofline-like time) and an attention family."""
    rng = np.random.default_rng(seed)
    m = rng.integers(1, 4096, n)
    t = 8e-6 + 2.0 * m * 4096 * 4096 / 300e12 * (1 + 0.01 * rng.standard_normal(n))
    lin = pd.DataFrame({
        "family": "linear", "op": "mlp_up_proj", "time_s": t, "std_s": 0.01 * t, "device": "a800",
        "model": "synthetic", "measurement_type": "CUDA_EVENT", "source": "synthetic.csv",
        "source_format": "native", "m": m, "n": 4096, "k": 4096, "is_gemm": True, "tp": 1,
        "dtype_bytes": 2, "batch_kind": "dense", "config_key": [f"lin|m={x}" for x in m],
    })
    rows = []
    for _i in range(n):
        b = int(rng.integers(1, 6))
        q = tuple(int(x) for x in rng.integers(16, 1024, b))
        c = tuple(int(x) for x in rng.integers(0, 2048, b))
        pairs = sum(qi * ci + qi * (qi + 1) / 2 for qi, ci in zip(q, c, strict=True))
        rows.append({"q_lens": q, "c_lens": c, "is_decode": (False,) * b, "counts": (1,) * b,
                     "time_s": 1e-5 + pairs * 4 * 128 * 32 / 150e12, "batch_kind": "heterogeneous"})
    att = pd.DataFrame(rows)
    att = att.assign(family="attention", op="attn_prefill", std_s=np.nan, device="a800", model="synthetic",
                     measurement_type="CUDA_EVENT", source="synthetic.csv", source_format="native",
                     n_q_heads=32.0, n_kv_heads=8.0, head_dim=128, tp=1, block_size=16, dtype_bytes=2,
                     mode="random")
    att["config_key"] = [f"att|{q}|{c}" for q, c in zip(att.q_lens, att.c_lens, strict=True)]
    return {"linear": lin, "attention": att}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ps") / "synthetic"
    frames = _synthetic_frames()
    card = train_predictors(frames, "native", out, seed=0, forest_params=TINY_FOREST,
                            surrogate_params=TINY_SUR, augment={"copies": 2})
    return out, frames, card


def test_train_writes_card_weights_and_forests(trained):
    out, frames, card = trained
    assert (out / "card.json").exists() and (out / "train_keys.npy").exists()
    assert (out / ".gitignore").read_text().strip() == "forests/"
    saved = json.loads((out / "card.json").read_text())
    assert set(saved["models"]) == {"mlp_up_proj", "attn_prefill"}
    for op, info in saved["models"].items():
        assert (out / info["file"]).exists() and (out / "forests" / f"{op}.joblib").exists()
        # forest-taught operators: every distillation row weighs the same
        assert info["surrogate"]["teacher"] == "forest" and info["surrogate"]["row_weights"] == "uniform"
        acc = info["accuracy"]
        for k in ("forest", "surrogate", "proxy"):
            assert set(acc[k]) == {"median_rel_err", "within_5", "within_10", "within_20",
                                   "time_weighted_err"}
        assert info["rows"]["train"] + info["rows"]["test"] == len(frames[info["family"]])
    assert saved["split"]["seed"] == 0 and saved["features"]["attention"] == list(F.ATTENTION_FEATURES)
    assert saved["devices"]["a800"]["num_sms"] == 108
    # the smooth synthetic GEMM is learnt
    assert saved["models"]["mlp_up_proj"]["accuracy"]["forest"]["within_10"] > 0.8


def test_surrogate_extrapolates_along_the_roofline(trained):
    out, frames, card = trained
    w = load_predictor_set(out)["weights"]["mlp_up_proj"]
    m = np.array([4096.0, 16384.0])
    X = F.gemm_features(m, 4096.0, 4096.0, np, peak_flops=312e12, mem_bw=2.039e12, num_sms=108)
    p = predict_np(w, X)
    assert 2.5 < p[1] / p[0] < 6.0  # 4x the tokens of the largest profiled GEMM: ~4x the time
    assert card["models"]["mlp_up_proj"]["rows"]["scaled_up"] > 0


def _architecture(weights: dict) -> tuple[int, int]:
    """(hidden width, hidden layers) of surrogate weights (W0..Wn: n hidden layers + head)."""
    n = sum(1 for k in weights if re.fullmatch(r"W\d+", k))
    return int(weights["W0"].shape[1]), n - 1


@pytest.mark.parametrize("over, want", [
    (None, {"attention": (32, 2), "linear": (128, 3)}),  # per-family defaults
    ({"width": 16}, {"attention": (16, 2), "linear": (16, 3)}),  # explicit width: every family
    ({"width": 16, "depth": 1}, {"attention": (16, 1), "linear": (16, 1)}),
])
def test_surrogate_architecture_per_family(tmp_path, over, want):
    frames = _synthetic_frames(n=40)
    att = frames["attention"]  # attn_prefill; a whole-step "iteration" op is attention too
    frames["attention"] = pd.concat([att, att.assign(op="iteration")], ignore_index=True)
    card = train_predictors(frames, "native", tmp_path / "set", seed=0, save_forests=False,
                            forest_params={"n_estimators": 5, "min_samples_leaf": 1},
                            surrogate_params={"steps": 20, "batch_size": 32, **(over or {})},
                            augment={"copies": 1, "scaleup_copies": 0})
    ps = load_predictor_set(tmp_path / "set")
    assert set(ps["card"]["models"]) == {"mlp_up_proj", "attn_prefill", "iteration"}
    for op, info in ps["card"]["models"].items():
        arch = want[info["family"]]
        assert _architecture(ps["weights"][op]) == arch, op
        assert (info["surrogate"]["width"], info["surrogate"]["depth"]) == arch, op  # the card says so
    for fam, (width, depth) in want.items():
        assert (card["surrogate"]["by_family"][fam]["width"], card["surrogate"]["by_family"][fam]["depth"]) == (width, depth)
    assert card["surrogate"]["overrides"] == {"steps": 20, "batch_size": 32, **(over or {})}


def test_split_is_per_configuration_and_deterministic():
    keys = [f"k{i}" for i in range(2000)] + ["k1", "k1"]
    a = holdout_mask(keys, 0, 0.2)
    assert a[1] == a[-1] == a[-2]
    assert 0.15 < a.mean() < 0.25
    assert np.array_equal(a, holdout_mask(keys, 0, 0.2)) and not np.array_equal(a, holdout_mask(keys, 1, 0.2))


def test_save_load_round_trip(trained, tmp_path):
    out, frames, card = trained
    ps = load_predictor_set(out)
    w = ps["weights"]["mlp_up_proj"]
    X = F.frame_features("linear", frames["linear"])
    p1 = predict_np(w, X)
    assert np.all(np.isfinite(p1)) and np.all(p1 > 0)
    # npz round trip through another file is exact
    from frontier_jax.predict.surrogate import SurrogateModel

    save_surrogate(SurrogateModel("x", "linear", "log_ratio", F.GEMM_FEATURES, w), tmp_path / "w.npz")
    w2 = load_surrogate(tmp_path / "w.npz")
    assert set(w2) == set(w) and all(np.array_equal(w[k], w2[k]) for k in w)
    # forest joblib round trip
    f = fit_forest("op", "linear", X[:50], frames["linear"].time_s[:50], feature_names=F.GEMM_FEATURES,
                   n_estimators=5)
    f.save(tmp_path / "f.joblib")
    np.testing.assert_allclose(ForestModel.load(tmp_path / "f.joblib").predict(X), f.predict(X))


def test_surrogate_inside_jit_and_vmap(trained):
    out, frames, card = trained
    ps = load_predictor_set(out, as_jax=True)
    w = ps["weights"]["attn_prefill"]
    ctx = dict(n_q_heads=32.0, n_kv_heads=8.0, head_dim=128.0, peak_flops=312e12, mem_bw=2.039e12, num_sms=108.0)

    @jax.jit
    def step_time(q, c, mask):
        x = F.attention_features(q, c, mask, jnp, is_decode=jnp.zeros_like(mask), **ctx)
        return surrogate_apply(w, x)

    q = jnp.array([512.0, 100.0, 7.0, 0.0])
    c = jnp.array([0.0, 1000.0, 30.0, 0.0])
    mask = jnp.array([True, True, True, False])
    t = step_time(q, c, mask)
    x_host = F.attention_features(np.asarray(q), np.asarray(c), np.asarray(mask), np,
                                  is_decode=np.zeros(4, bool), **ctx)
    ref = predict_np(load_predictor_set(out)["weights"]["attn_prefill"], x_host[None])[0]
    assert t.shape == () and float(t) == pytest.approx(ref, rel=1e-3)
    Q = jnp.stack([q, q * 2, q * 0.5])
    ts = jax.vmap(step_time)(Q, jnp.stack([c] * 3), jnp.stack([mask] * 3))
    assert ts.shape == (3,) and float(ts[0]) == pytest.approx(float(t), rel=1e-5)
    assert float(ts[1]) > float(ts[2])  # more work, more time
    # weights as a traced argument (vmap over predictor sets too)
    f = jax.jit(jax.vmap(surrogate_apply, in_axes=(None, 0)))
    X = F.frame_features("attention", frames["attention"])[:7]
    np.testing.assert_allclose(np.asarray(f(w, jnp.asarray(X, jnp.float32))),
                               predict_np(load_predictor_set(out)["weights"]["attn_prefill"], X), rtol=1e-3)


def test_fit_surrogate_with_a_linear_ratio():
    """``ratio_coef``: the network divides by ``ratio_bias + X @ ratio_coef``; host numpy and
    jax (jit) agree, and the stored weights refuse a negative coefficient."""
    from frontier_jax.cost import mlp

    rng = np.random.default_rng(2)
    X = rng.uniform(0, 100, (300, 3))
    t = 1e-3 + 2e-5 * X[:, 0] + 5e-5 * X[:, 2]
    coef = np.array([2e-5, 0.0, 5e-5])
    s = fit_surrogate("g", "attention", X, np.log(t), feature_names=("a", "b", "c"), ratio_coef=coef,
                      ratio_bias=1e-3, width=8, depth=1, steps=300)
    assert s.info["linear_ratio"]["coefficients"] == {"a": pytest.approx(2e-5), "c": pytest.approx(5e-5)}
    assert float(s.weights["ratio_bias"]) == pytest.approx(1e-3)
    p = predict_np(s.weights, X)
    assert np.max(np.abs(p / t - 1)) < 0.02  # the ratio is the law: the network learns ~1
    got = jax.jit(lambda x: surrogate_apply(s.weights, x))(jnp.asarray(X, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), p, rtol=1e-4)
    with pytest.raises(ValueError, match="non-negative"):
        mlp.prepare_weights({**s.weights, "ratio_select": np.float32([-1.0, 0.0, 1.0])})
    for bad in (-1e-3, np.nan):
        with pytest.raises(ValueError, match="non-negative"):
            mlp.prepare_weights({**s.weights, "ratio_bias": np.float32(bad)})
    # a one-hot ratio is its column's value, bit for bit (every operator but the whole step)
    onehot = {**s.weights, "ratio_select": np.float32([0.0, 1.0, 0.0])}
    onehot.pop("ratio_bias")
    for xp in (np, jnp):
        got = mlp.ratio_column(mlp.prepare_weights(onehot, xp.float32, xp), xp.asarray(X), xp)
        np.testing.assert_array_equal(np.asarray(got), X[:, 1])
    with pytest.raises(ValueError, match="ratio_coef"):
        fit_surrogate("g", "attention", X, np.log(t), feature_names=("a", "b", "c"),
                      ratio_coef=-coef, steps=10)


def test_fit_surrogate_learns_a_power_law():
    rng = np.random.default_rng(1)
    m = rng.uniform(1, 5000, 400)
    X = F.gemm_features(m, 4096.0, 4096.0, np, peak_flops=312e12, mem_bw=2e12, num_sms=108)
    y = np.log(5e-6 + 2 * m * 4096 * 4096 / 250e12)
    ri = F.GEMM_FEATURES.index("roofline_s")
    s = fit_surrogate("g", "linear", X, y, feature_names=F.GEMM_FEATURES, ratio_index=ri, width=32,
                      depth=2, steps=1500)
    err = np.abs(np.log(predict_np(s.weights, X)) - y)
    assert np.median(err) < 0.03
    # outside the data the efficiency is held at its edge value: time scales like the roofline
    Xo = F.gemm_features(np.array([16384.0, 65536.0]), 4096.0, 4096.0, np, peak_flops=312e12, mem_bw=2e12, num_sms=108)
    p = predict_np(s.weights, Xo)
    assert p[1] / p[0] == pytest.approx(4.0, rel=0.05)
    # a context feature that was constant in training (the device peak) acts through the roofline only
    Xf = F.gemm_features(np.array([16384.0]), 4096.0, 4096.0, np, peak_flops=624e12, mem_bw=4e12, num_sms=108)
    assert predict_np(s.weights, Xf)[0] == pytest.approx(p[0] / 2, rel=0.05)


def test_eval_any_csv_and_split_modes(trained, tmp_path):
    out, frames, card = trained
    # the training frames: "auto" scores only configurations that were not trained on
    res = eval_predictors(out, frames, split="auto")
    te = holdout_mask(frames["linear"].config_key, 0, 0.2)
    assert res["ops"]["mlp_up_proj"]["rows"] == int(te.sum())
    assert eval_predictors(out, frames, split="all")["ops"]["mlp_up_proj"]["rows"] == len(frames["linear"])
    # a new CSV of the same (native) format: every row is unseen
    new = _synthetic_frames(n=40, seed=7)
    save_profiles(new, tmp_path / "new.csv")
    res = eval_predictors(out, tmp_path / "new.csv", "native")
    op = res["ops"]["attn_prefill"]
    assert op["rows"] == 40 and {"forest", "surrogate", "proxy", "fidelity_median"} <= set(op)
    assert "heterogeneous" not in op.get("slices", {})  # one kind only: no slice table
    # without the forests folder only the surrogate is scored
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(out, bare, ignore=shutil.ignore_patterns("forests"))
    op = eval_predictors(bare, new)["ops"]["mlp_up_proj"]
    assert "surrogate" in op and "forest" not in op


def test_cli_train_and_eval(tmp_path):
    frames = _synthetic_frames(n=80)
    save_profiles(frames, tmp_path / "prof.csv")

    @click.group()
    def cli():
        pass

    register_cli(cli)
    r = CliRunner().invoke(cli, ["predictors", "train", "--data", str(tmp_path / "prof.csv"), "--format", "native",
                                 "--out", str(tmp_path / "set"), "--op", "mlp_up_proj", "--trees", "10",
                                 "--surrogate-steps", "300", "--json"],
                           catch_exceptions=False, env={})
    assert r.exit_code == 0, r.output
    assert "mlp_up_proj" in json.loads(r.output)["ops"]
    r = CliRunner().invoke(cli, ["predictors", "eval", "--model", str(tmp_path / "set"), "--data",
                                 str(tmp_path / "prof.csv"), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["ops"]["mlp_up_proj"]["surrogate"]["within_20"] is not None
    assert res["missing_models"] == ["attn_prefill"]


FRONTIER = DATA / "frontier" / "data" / "profiling" / "compute"


@pytest.mark.skipif(not FRONTIER.exists(), reason="shared Frontier data not available")
def test_real_a800_gemm_small(tmp_path):
    frames = load_profiles(FRONTIER / "a800" / "qwen3-a3b-30b-moe" / "linear_op.csv")
    lin = frames["linear"]
    lin = lin[lin.op == "attn_post_proj"].iloc[::2]  # subsample to keep the test fast
    card = train_predictors({"linear": lin}, "frontier", tmp_path / "real", forest_params=TINY_FOREST,
                            surrogate_params=TINY_SUR, augment={"copies": 1})
    acc = card["models"]["attn_post_proj"]["accuracy"]
    assert acc["rows"] > 20 and acc["forest"]["within_20"] > 0.8
    assert card["data"]["license"]


def test_length_cv_of_attention_batches():
    """The skew measure of the predictor experiment: 0 for a uniform batch; counts weight
    the groups of identical sequences."""
    import pandas as pd

    from frontier_jax.predict.train import length_cv

    df = pd.DataFrame({"q_lens": [(100, 100), (1, 1), (10,)], "c_lens": [(0, 0), (99, 299), (0,)],
                       "counts": [(3, 5), (1, 1), (4,)], "is_decode": [(False, False), (True, True), (False,)]})
    cv = length_cv(df)
    np.testing.assert_allclose(cv, [0.0, 0.5, 0.0])  # lengths 100 and 300: mean 200, std 100


def test_frontier_head_to_head_reimplementation():
    """benchmarks/frontier_head_to_head.py: Frontier's MAPE scorer and its grid-searched forest
    (2 folds under 10 rows, refit on every row, NaN rows dropped)."""
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    import frontier_head_to_head as h2h

    # percent; a zero truth costs 0 when predicted 0, else 100
    assert h2h._frontier_mape([1.0, 2.0, 0.0, 0.0], [1.1, 2.0, 0.0, 3.0]) == pytest.approx((10 + 0 + 0 + 100) / 4)
    grid = {"n_estimators": [10], "max_depth": [2, 8], "min_samples_split": [2]}
    x = pd.DataFrame({"num_tokens": np.arange(1, 41, dtype=float)})
    y = pd.Series(0.01 * x["num_tokens"] + 0.05)
    y.iloc[3] = np.nan  # dropped, not fitted
    est = h2h.frontier_forest(x, y, grid)
    assert est.get_params()["max_depth"] == 8  # the deeper forest fits a line better
    pred = est.predict(pd.DataFrame({"num_tokens": [10.0, 30.0]}))
    np.testing.assert_allclose(pred, [0.15, 0.35], rtol=0.1)
    small = h2h.frontier_forest(x.iloc[:6], y.iloc[:6].fillna(0.09), grid)  # 2-fold search
    assert small.n_estimators == 10


def test_gemm_distillation_probe_interpolation_baseline():
    """benchmarks/gemm_distillation_probe.py --interpolate: a GEMM that follows a power law in
    its token count is interpolated exactly from its training rows; a test row off the law is
    missed; a shape with one training row is left out."""
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    import gemm_distillation_probe as probe

    from frontier_jax.predict.train import holdout_mask

    m = np.arange(16, 16 * 41, 16)
    keys = [f"linear|dev|tp=1|m={x}" for x in m]
    rows = [{"op": op, "config_key": k, "model": "x", "tp": 1, "n": n, "k": 64, "dtype_bytes": 2,
             "m": x, "time_s": 1e-6 * x ** 0.8 * n / 64}
            for op, n in (("attn_pre_proj", 64), ("mlp_up_proj", 128)) for k, x in zip(keys, m, strict=True)]
    df = pd.DataFrame(rows)
    te = holdout_mask(df["config_key"], probe.SEED, 0.2)
    inner = te & (df["m"] > m.min()) & (df["m"] < m.max())  # between two training rows
    assert inner.any()
    exact = df[~te | inner]
    res = probe.interpolate(exact)["cuda_event"]
    assert res == {"test_rows": int(inner.sum()), "interpolation_within_5": 1.0, "left_out": 0}
    off = exact.copy()
    first = off.index[inner[off.index]][0]
    off.loc[first, "time_s"] *= 1.2  # one test row 20% off the law
    assert probe.interpolate(off)["cuda_event"]["interpolation_within_5"] < 1.0
    lone = pd.concat([exact, pd.DataFrame([{**rows[0], "n": 999, "config_key": df.loc[inner.idxmax(), "config_key"]}])],
                     ignore_index=True)  # a shape whose only row is a test row
    assert probe.interpolate(lone)["cuda_event"]["left_out"] == 1


def _engine_profile(rng: np.random.Generator) -> pd.DataFrame:
    """Native rows of a CPU engine's whole steps ("iteration") on a sparse probe grid, as
    benchmarks/vllm_cpu/profile_engine.py measures them: prefill chunks of 32, 128 and 512
    tokens and decode batches of 1, 4 and 16 sequences, 1% noise. Truth: 3 ms + 0.17 ms per
    token + 0.2 us per context token read."""
    rows = []

    def add(q, c, d):
        t = 3e-3 + 1.7e-4 * sum(q) + 2e-7 * sum(c)
        rows.append((tuple(q), tuple(c), tuple(d), t * np.exp(rng.normal(0, 0.01))))

    for q in (32, 128, 512):
        for c in (0, 1024, 3072):
            for _ in range(3):
                add([q], [c], [False])
    for _ in range(3):
        for c in range(0, 3072, 512):  # the 512-token chunks before a long probe's last chunk
            add([512], [c], [False])
        for b in (1, 4, 16):
            for c in (128, 1024, 3072):
                for j in range(16):
                    add([1] * b, [c + j] * b, [True] * b)
        for b in (4, 15):  # mixed: b decodes beside a prefill chunk
            for q in (128, 512 - b):
                add([1] * b + [q], [512] * b + [0], [True] * b + [False])
    q, c, d, t = zip(*rows, strict=True)
    return pd.DataFrame({"family": "attention", "op": "iteration", "q_lens": q, "c_lens": c,
                         "is_decode": d, "counts": [(1,) * len(x) for x in q], "n_q_heads": 8.0,
                         "n_kv_heads": 8.0, "head_dim": 64, "tp": 1, "block_size": 16,
                         "dtype_bytes": 2, "device": "cpu", "model": "tiny", "time_s": t,
                         "source": "synthetic engine profile"})


def _tidy_engine(rows: pd.DataFrame) -> pd.DataFrame:
    """Native engine rows as the loader tidies them (the features' input frame)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        save_profiles(rows, Path(d) / "engine.csv")
        return load_profiles(Path(d) / "engine.csv", "native")["attention"]


def test_iteration_surrogate_interpolates_between_sparse_probes(tmp_path):
    """The whole-step model learns from the measured steps, not from a forest: between the
    profile's prefill probes (128 and 512 tokens) a forest is a step function, and a network
    distilled from it priced a 200-token chunk like a 512-token one (vLLM CPU validation)."""
    import joblib

    from frontier_jax.predict.train import _inputs, op_inputs

    (tmp_path / "prof").mkdir()
    save_profiles(_engine_profile(np.random.default_rng(0)), tmp_path / "prof" / "engine.csv")
    card = train_predictors(tmp_path / "prof", "native", tmp_path / "set", seed=0,
                            test_fraction=0.01,
                            forest_params={"n_estimators": 20, "min_samples_leaf": 1},
                            surrogate_params={"steps": 2000, "width": 64, "depth": 2})
    info = card["models"]["iteration"]
    assert info["surrogate"]["teacher"] == "measured" and info["rows"]["augmented"] == 0
    assert info["surrogate"]["row_weights"] == "measured time"
    qs = np.array([64, 200, 256, 320])
    probe = _engine_profile(np.random.default_rng(1)).iloc[:len(qs)].assign(
        q_lens=[(int(q),) for q in qs], c_lens=[(0,)] * len(qs), is_decode=[(False,)] * len(qs))
    (tmp_path / "eval").mkdir()
    save_profiles(probe, tmp_path / "eval" / "engine.csv")
    tidy = load_profiles(tmp_path / "eval" / "engine.csv", "native")["attention"]
    X = _inputs(F.frame_features("attention", tidy), op_inputs("attention", "iteration",
                                                                F.FEATURE_NAMES["attention"]))
    truth = 3e-3 + 1.7e-4 * qs
    sur = predict_np(load_predictor_set(tmp_path / "set")["weights"]["iteration"], X)
    assert np.max(np.abs(sur / truth - 1)) < 0.1, sur / truth
    # the forest (the teacher of every other operator) is off by far more between the probes
    forest = joblib.load(tmp_path / "set" / "forests" / "iteration.joblib")["forest"]
    assert np.max(np.abs(forest.predict(X) / truth - 1)) > 0.25
    # past the probes (64 decodes, 16 at most profiled) the network's correction is held at
    # its edge and the physics it divides by prices the rest: a time per token held constant
    # from the 16-sequence probe would be +17% here
    big = probe.iloc[:1].assign(q_lens=[(1,) * 64], c_lens=[(3072,) * 64], is_decode=[(True,) * 64],
                                counts=[(1,) * 64])
    save_profiles(big, tmp_path / "eval" / "engine.csv")
    tidy = load_profiles(tmp_path / "eval" / "engine.csv", "native")["attention"]
    Xb = _inputs(F.frame_features("attention", tidy), op_inputs("attention", "iteration",
                                                                 F.FEATURE_NAMES["attention"]))
    t_big = 3e-3 + 1.7e-4 * 64 + 2e-7 * 64 * 3072
    got = predict_np(load_predictor_set(tmp_path / "set")["weights"]["iteration"], Xb)[0]
    assert got == pytest.approx(t_big, rel=0.05)
    lin = info["surrogate"]["linear_ratio"]
    assert lin["bias_s"] > 0 and set(lin["coefficients"]) <= set(ITERATION_FEATURES)


def test_physics_ratio_recovers_a_linear_step_law():
    """The whole-step network's ratio: a non-negative linear fit of the step's time on its
    work totals (see physics_ratio); on a profile that follows such a law it is the law."""
    from frontier_jax.predict.train import physics_ratio

    prof = _engine_profile(np.random.default_rng(0))
    tidy = F.frame_features("attention", _tidy_engine(prof))
    truth = np.array([3e-3 + 1.7e-4 * sum(q) + 2e-7 * sum(c) for q, c in zip(prof.q_lens, prof.c_lens, strict=True)])
    names = F.FEATURE_NAMES["attention"]
    coef, bias = physics_ratio(tidy, prof.time_s.to_numpy(), names)
    assert (coef >= 0).all() and bias >= 0
    outside = [i for i, n in enumerate(names) if n not in ITERATION_FEATURES]
    assert not coef[outside].any()
    assert np.max(np.abs((bias + tidy @ coef) / truth - 1)) < 0.03
    assert bias == pytest.approx(3e-3, rel=0.2)


def test_physics_ratio_falls_back_to_the_column(tmp_path, monkeypatch):
    """No usable physics (the solver gives up, or a fit that prices steps at ~0): the
    network keeps its one-column ratio (time per token) and the card says so."""
    import scipy.optimize

    import frontier_jax.predict.train as T

    prof = _engine_profile(np.random.default_rng(0))
    X = F.frame_features("attention", _tidy_engine(prof))
    names, t = F.FEATURE_NAMES["attention"], prof.time_s.to_numpy()

    def gives_up(*a, **k):
        raise RuntimeError("Maximum number of iterations reached.")

    monkeypatch.setattr(scipy.optimize, "nnls", lambda A, b, **k: (np.zeros(A.shape[1]), 0.0))
    assert T.physics_ratio(X, t, names) is None  # physics 0 < PHYSICS_FLOOR x time
    monkeypatch.setattr(scipy.optimize, "nnls", gives_up)
    assert T.physics_ratio(X, t, names) is None
    (tmp_path / "prof").mkdir()
    save_profiles(prof, tmp_path / "prof" / "engine.csv")
    card = T.train_predictors(tmp_path / "prof", "native", tmp_path / "set", seed=0, save_forests=False,
                              forest_params={"n_estimators": 5, "min_samples_leaf": 1},
                              surrogate_params={"steps": 50, "width": 8, "depth": 1})
    info = card["models"]["iteration"]
    assert info["surrogate_ratio"] == "num_tokens" and "linear_ratio" not in info["surrogate"]
    w = load_predictor_set(tmp_path / "set")["weights"]["iteration"]
    assert "ratio_bias" not in w and w["ratio_select"][names.index("num_tokens")] == 1.0


def test_measured_steps_weigh_by_their_time(tmp_path, monkeypatch):
    """A whole-step network fitted to measured steps weighs each by its time (what the
    simulation sums); forest-taught operators keep uniform weights (checked on the card in
    test_train_writes_card_weights_and_forests)."""
    import frontier_jax.predict.train as T

    assert np.allclose(T.measured_weights([1.0, 3.0]), [0.5, 1.5])
    # the error those weights aim at: |pred - true| summed over the summed measured time
    assert T.accuracy(np.array([1.1, 2.0]), np.array([1.0, 2.0]))["time_weighted_err"] == pytest.approx(0.1 / 3)
    seen = {}
    fit = T.fit_surrogate

    def spy(op, family, X, y, **kw):
        seen[op] = (np.exp(y), kw.get("sample_weight"))
        return fit(op, family, X, y, **kw)

    monkeypatch.setattr(T, "fit_surrogate", spy)
    (tmp_path / "prof").mkdir()
    save_profiles(_engine_profile(np.random.default_rng(0)), tmp_path / "prof" / "engine.csv")
    T.train_predictors(tmp_path / "prof", "native", tmp_path / "set", seed=0,
                       forest_params={"n_estimators": 5, "min_samples_leaf": 1},
                       surrogate_params={"steps": 50, "width": 8, "depth": 1})
    t, w = seen["iteration"]
    assert w is not None and np.allclose(w, t / t.mean())


def _kloop_moe_rows(rng, n=400):
    """Synthetic kernel-only GroupedGEMM rows of a small MoE layer, latency-bound as H800's
    small kernels are (kernel-only median 30 us): a launch, a fixed time per K-loop step of each GEMM, and the padded
    blocks' roofline; half the rows timed warm (the same time: kernel-only timing)."""
    from frontier_jax.predict.importers import moe_stats_from_counts

    kw = dict(hidden=2048, expert_hidden=768, topk=8, gated=1, peak_flops=989e12, mem_bw=3.35e12, num_sms=132)
    rows = []
    for _ in range(n):
        tp, ep = int(rng.choice([1, 2, 4, 8])), int(rng.choice([1, 2, 4]))
        local = 16 // ep
        tokens = int(rng.choice([1, 2, 4, 8, 16, 32, 64]))
        counts = rng.multinomial(tokens * 8 // ep, np.full(local, 1.0 / local))
        mask = np.ones(local, bool)
        x = F.grouped_gemm_features(counts, mask, np, num_tokens=tokens, tp=tp, ep=ep, **kw)
        col = {n: x[i] for i, n in enumerate(F.MOE_FEATURES)}
        t = 6e-6 + 1.5e-7 * (col["kloop_up"] + col["kloop_down"]) + 0.5 * col["block_roofline_s"]
        rows.append(dict(family="moe", op="moe_grouped_gemm", device="h800", num_tokens=tokens,
                         **moe_stats_from_counts(counts), hidden=2048, expert_hidden=768, topk=8,
                         gated=1, tp=tp, ep=ep, num_experts=16, dtype_bytes=2,
                         warm_context=int(rng.random() < 0.5), time_s=t * rng.lognormal(0, 0.005)))
    return pd.DataFrame(rows)


def test_moe_models_correct_the_kernel_physics(tmp_path):
    """MoE forests and surrogates learn a correction to a linear physics of the kernel
    (PHYSICS_COLUMNS: the K-loops and the padded roofline), fitted on the training rows: on
    rows that follow such a law both put >= 97% of held-out rows within 5%, and the card, the
    forest and the network carry the same physics, over those columns only."""
    from frontier_jax.predict.train import PHYSICS_COLUMNS

    df = _kloop_moe_rows(np.random.default_rng(0))
    (tmp_path / "prof").mkdir()
    save_profiles(df, tmp_path / "prof" / "moe.csv")
    card = train_predictors(tmp_path / "prof", "native", tmp_path / "set", seed=0,
                            forest_params=TINY_FOREST, surrogate_params={**TINY_SUR, "steps": 1500})
    info = card["models"]["moe_grouped_gemm"]
    assert info["forest"]["target"].startswith("log(time / physics)")
    lin = info["surrogate"]["linear_ratio"]
    assert lin["coefficients"] and set(lin["coefficients"]) <= set(PHYSICS_COLUMNS["moe"])
    import joblib

    forest = joblib.load(tmp_path / "set" / "forests" / "moe_grouped_gemm.joblib")["forest"]
    names = F.MOE_FEATURES
    outside = [i for i, n in enumerate(names) if n not in PHYSICS_COLUMNS["moe"]]
    assert forest.ratio_coef is not None and not forest.ratio_coef[outside].any()
    assert forest.ratio_bias == pytest.approx(lin["bias_s"], rel=1e-6)
    acc = info["accuracy"]
    assert acc["forest"]["within_5"] >= 0.97 and acc["surrogate"]["within_5"] >= 0.97, acc
    # the law's constant is the launch
    assert lin["bias_s"] == pytest.approx(6e-6, rel=0.25)


def test_moe_copies_visit_the_other_timing_context():
    """Half the augmented MoE copies flip the timing context (warm <-> standalone); every
    other configuration field stays as the training row had it."""
    from frontier_jax.predict.train import augment_rows

    df = _kloop_moe_rows(np.random.default_rng(1), n=50).assign(warm_context=1)
    out = augment_rows("moe", df, copies=8, sigma=0.15, rng=np.random.default_rng(2))
    assert len(out) == 8 * len(df)
    share = (out["warm_context"] == 0).mean()
    assert 0.4 < share < 0.6
    for c in ("tp", "ep", "hidden", "expert_hidden", "topk", "num_experts", "local_experts"):
        np.testing.assert_array_equal(out[c].to_numpy(), np.tile(df[c].to_numpy(), 8))
