"""The torch operator profiler (frontier_jax.profile) and the CPU device entry."""

import math
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from frontier_jax.predict.devices import DEVICES, canonical_device, device_spec
from frontier_jax.predict.importers import linear_op_shape, load_profiles
from frontier_jax.profile.plan import (
    ATTENTION_OPS,
    ELEMENTWISE_OPS,
    GEMM_OPS,
    build_plan,
    expert_counts,
    layer_shapes,
    token_grid,
)
from frontier_jax.spec.model import MODEL_PRESETS, ModelSpec

TINY = ModelSpec("tiny-test", hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
                 num_hidden_layers=2, intermediate_size=256, vocab_size=1000, head_dim=32)
TINY_MOE = ModelSpec("tiny-moe", hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                     num_hidden_layers=2, intermediate_size=128, vocab_size=500, head_dim=16,
                     num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64)


# --------------------------------------------------------------------------------------
# pure-Python parts (no torch)


def test_cpu_device_canonical():
    assert canonical_device("cpu") == "cpu"
    assert canonical_device("CPU") == "cpu"
    assert canonical_device("profiling/cpu/llama-512") == "cpu"
    assert device_spec("cpu") is DEVICES["cpu"]
    assert DEVICES["cpu"].num_sms == 2
    assert 1e11 < DEVICES["cpu"].peak_flops(2) < 1e13 and 1e9 < DEVICES["cpu"].mem_bw < 1e11
    # GPU names keep their keys, also next to "cpu"
    assert canonical_device("NVIDIA H100 80GB HBM3") == "h100"
    assert canonical_device("a800_cpu_overheads") == "a800"
    assert canonical_device("NVIDIA A40") == "a40"
    assert canonical_device("something else") == "unknown"


def test_plan_shapes_follow_linear_op_shape():
    for tp in (1, 2, 4):
        spec = MODEL_PRESETS["llama-3-8b"]
        sh = layer_shapes(spec, tp)
        plan = build_plan(sh, "cpu", seed=3)
        seen = set()
        for it in plan:
            if it.family != "linear":
                continue
            seen.add(it.op)
            n, k, g = linear_op_shape(it.op, n_embd=spec.hidden_size, n_head=spec.num_attention_heads,
                                      n_kv_head=spec.num_key_value_heads, head_dim=spec.head_dim,
                                      ffn=spec.intermediate_size, vocab=spec.vocab_size, tp=tp)
            assert (it.params["n"], it.params["k"], it.params["is_gemm"]) == (n, k, g), it.op
        assert seen == set(GEMM_OPS + ELEMENTWISE_OPS)
        assert sh.local_q_heads == 32 // tp and sh.local_kv_heads == max(8 // tp, 1)
    with pytest.raises(ValueError, match="--tp 3"):
        layer_shapes(MODEL_PRESETS["llama-3-8b"], 3)


def test_plan_fixed_grid_shared_across_seeds_and_heterogeneous():
    sh = layer_shapes(MODEL_PRESETS["tiny-llama"], 1)
    a = build_plan(sh, "cpu", seed=1)
    b = build_plan(sh, "cpu", seed=2)
    assert build_plan(sh, "cpu", seed=1)[5].params == a[5].params  # deterministic

    def key(it):
        return (it.op, str(it.params))

    common = {key(i) for i in a} & {key(i) for i in b}
    assert len(common) > 0.3 * len(a)  # the fixed grid is in both runs
    m = token_grid(4096, np.random.default_rng(0), 16)
    assert 1 in m and 4096 in m and 3 in m and any((x & (x - 1)) and x % 3 for x in m)
    for op in ATTENTION_OPS:
        modes = {it.mode for it in a if it.op == op}
        assert modes == {"homogeneous", "uniform", "skewed"}
    for it in a:
        if it.op == "attn_decode":
            assert all(q == 1 for q, _ in it.params["seqs"])
    for mode in ("balanced", "skewed"):
        c = expert_counts(100, 8, mode, np.random.default_rng(0))
        assert sum(c) == 100 and len(c) == 8 and min(c) >= 0
    assert max(expert_counts(1000, 8, "skewed", np.random.default_rng(0))) > 250


def test_cli_without_torch_is_one_clean_line(monkeypatch):
    from frontier_jax.cli import main

    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" raises ImportError
    res = CliRunner().invoke(main, ["profile", "--model", "tiny-llama", "--quick", "--out", "unused"])
    assert res.exit_code != 0
    assert "pip install -e '.[profile]'" in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------
# real timing runs (torch)


@pytest.fixture(scope="module")
def quick_profile(tmp_path_factory):
    pytest.importorskip("torch")
    from frontier_jax.profile.runner import run_profile

    out = tmp_path_factory.mktemp("prof")
    # dtype pinned: "auto" picks bf16 or fp32 by timing a GEMM, which can flip under load
    run_profile(TINY, 1, "cpu", out, quick=True, repeats=4, warmup=1, seed=0, threads=1, rounds=2,
                dtype="fp32", progress=False)
    return out


def test_quick_profile_loads_native(quick_profile):
    frames = load_profiles(quick_profile, "native")
    assert set(frames) == {"linear", "attention"}
    lin, att = frames["linear"], frames["attention"]
    assert set(lin["op"]) == set(GEMM_OPS + ELEMENTWISE_OPS)
    assert set(att["op"]) == set(ATTENTION_OPS)
    for df in (lin, att):
        t = df["time_s"].to_numpy(float)
        assert np.all(np.isfinite(t)) and np.all(t > 0) and np.all(t < 1.0)
        assert (df["device"] == "cpu").all() and (df["model"] == "tiny-test").all()
        assert df["torch_version"].notna().all() and df["profiler_version"].notna().all()
        assert df["dtype_bytes"].isin([2, 4]).all()
    for r in lin.to_dict("records"):
        n, k, g = linear_op_shape(r["op"], n_embd=128, n_head=4, n_kv_head=2, head_dim=32, ffn=256,
                                  vocab=1000, tp=1)
        assert (r["n"], r["k"], bool(r["is_gemm"])) == (n, k, g)
    assert (att["n_q_heads"] == 4).all() and (att["n_kv_heads"] == 2).all() and (att["head_dim"] == 32).all()
    # heterogeneous batches: distinct (q, c) within one batch
    het = [r for r in att.to_dict("records") if len(set(zip(r["q_lens"], r["c_lens"], strict=True))) > 1]
    assert any(r["op"] == "attn_prefill" and len(set(r["q_lens"])) > 1 for r in het)
    assert any(r["op"] == "attn_decode" and len(set(r["c_lens"])) > 1 for r in het)
    assert set(att["batch_kind"]) >= {"homogeneous", "heterogeneous"}
    dec = att[att["op"] == "attn_decode"]
    assert all(all(d) for d in dec["is_decode"]) and all(set(q) == {1} for q in dec["q_lens"])
    pre = att[att["op"] == "attn_prefill"]
    assert not any(any(d) for d in pre["is_decode"])
    # features build on the rows (the CPU device spec is used)
    from frontier_jax.predict.features import frame_features

    for fam, df in frames.items():
        X = frame_features(fam, df)
        assert X.shape[0] == len(df) and np.isfinite(X).all()
    assert (quick_profile / "profile.json").exists()


def test_quick_profile_cli(tmp_path):
    pytest.importorskip("torch")
    import json

    from frontier_jax.cli import main

    out = tmp_path / "p"
    res = CliRunner().invoke(main, ["profile", "--model", "tiny-llama", "--quick", "--repeats", "3",
                                    "--quiet", "--threads", "1", "--out", str(out), "--seed", "4"])
    assert res.exit_code == 0, res.output
    man = json.loads((out / "profile.json").read_text())
    assert man["seed"] == 4 and man["device"] == "cpu" and man["model"] == "tiny-llama"
    assert man["wall_s"] > 0 and man["rows"]["linear"] > 0
    assert len(load_profiles(out, "native")["attention"]) == man["rows"]["attention"]


def test_quick_profile_moe(tmp_path):
    pytest.importorskip("torch")
    from frontier_jax.predict.features import frame_features
    from frontier_jax.profile.runner import run_profile

    run_profile(TINY_MOE, 2, "cpu", tmp_path, quick=True, repeats=3, warmup=1, threads=1, progress=False)
    frames = load_profiles(tmp_path, "native")
    moe = frames["moe"]
    assert set(moe["op"]) == {"moe_grouped_gemm"}
    assert set(moe["batch_kind"]) == {"balanced", "skewed"}
    assert (moe["routed_tokens"] == moe["num_tokens"] * 2).all()
    assert (moe["expert_hidden"] == 32).all() and (moe["local_experts"] == 4).all()
    t = moe["time_s"].to_numpy(float)
    assert np.all(np.isfinite(t)) and np.all(t > 0)
    assert np.isfinite(frame_features("moe", moe)).all()
    assert "mlp_up_proj" not in set(frames["linear"]["op"])  # a MoE layer has no dense MLP
    assert not math.isnan(float(moe["load_gini"].iloc[0]))


def test_compare_runs_and_provenance_stamp(quick_profile, tmp_path):
    import json

    from frontier_jax.profile.compare import compare_runs
    from frontier_jax.profile.provenance import stamp
    from frontier_jax.profile.runner import run_profile

    run2 = tmp_path / "run2"
    run_profile(TINY, 1, "cpu", run2, quick=True, repeats=3, warmup=1, seed=5, threads=1, dtype="fp32",
                progress=False)
    res = compare_runs(quick_profile, run2)
    assert res["all"]["pairs"] > 20  # the fixed grid is shared across seeds
    assert set(res["ops"]) >= set(GEMM_OPS)
    assert 0 <= res["all"]["within_5"] <= res["all"]["within_10"] <= 1

    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "card.json").write_text(json.dumps({"data": {"license": [{"source": "unknown"}]}, "models": {}}))
    ev = {"split": "auto", "ops": {"add": {"rows": 3, "forest": {"median_rel_err": 0.1, "within_5": 0.2,
                                                                 "within_10": 0.5, "within_20": 1.0}}}}
    card = stamp(pred, quick_profile, train_command="frontier-jax predictors train ...", eval_result=ev,
                 eval_command="frontier-jax predictors eval ...")
    assert card["data"]["profile"]["device"] == "cpu" and card["data"]["profile"]["command"] is None
    assert "own profiler" in (pred / "README.md").read_text()
    assert "| add | 3 | 10.0 / 20.0 / 50.0 / 100.0 |" in (pred / "README.md").read_text()
    assert json.loads((pred / "card.json").read_text())["data"]["license"][0]["license"].startswith("MIT")


def test_rounds_pool_samples(quick_profile):
    lin = load_profiles(quick_profile, "native")["linear"]
    assert (lin["rounds"] == 2).all() and (lin["repeats"] >= 2).all()
    assert (lin["min_s"] <= lin["time_s"]).all()


def test_compare_runs_says_why_nothing_pairs(quick_profile, tmp_path):
    from frontier_jax.profile.compare import compare_runs
    from frontier_jax.profile.runner import run_profile

    run_profile(TINY, 1, "cpu", tmp_path, quick=True, repeats=3, warmup=1, threads=1, dtype="bf16", progress=False)
    with pytest.raises(ValueError, match=r"dtype_bytes: \['4'\] vs \['2'\]"):
        compare_runs(quick_profile, tmp_path)
