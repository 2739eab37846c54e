"""Importers of operator profiles: units, list-valued columns, format detection, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data_root

from frontier_jax.predict.importers import (
    linear_op_shape,
    load_file,
    load_profiles,
    moe_stats_from_counts,
    parse_int_list,
    save_profiles,
)

DATA = shared_data_root()


def _ts(op: str, ms: list[float], std: list[float] | None = None) -> dict:
    std = std if std is not None else [0.0] * len(ms)
    return {
        f"time_stats.{op}.min": ms, f"time_stats.{op}.max": ms, f"time_stats.{op}.mean": ms,
        f"time_stats.{op}.median": ms, f"time_stats.{op}.std": std,
    }


def _vidur_attention(tmp: Path) -> Path:
    d = tmp / "a100" / "org" / "model"
    d.mkdir(parents=True)
    df = pd.DataFrame({
        **_ts("attn_prefill", [0.5, 0.0]), **_ts("attn_decode", [0.0, 0.25], [0.0, 0.01]),
        **_ts("attn_kv_cache_save", [0.01, 0.02]),
        "n_embd": [8192, 8192], "n_q_head": [64, 64], "n_kv_head": [8, 8], "block_size": [16, 16],
        "num_tensor_parallel_workers": [2, 2], "max_model_len": [4096, 4096], "batch_size": [1, 4],
        "prefill_chunk_size": [512, 0], "kv_cache_size": [128, 1024], "is_prefill": [True, False],
        "attention_backend": ["FLASHINFER"] * 2,
    })
    p = d / "attention.csv"
    df.to_csv(p, index=False)
    return p


def _frontier_attention(tmp: Path) -> Path:
    d = tmp / "h800" / "tiny"
    d.mkdir(parents=True)
    nan = np.nan
    df = pd.DataFrame({
        **_ts("attn_prefill", [0.2, 0.05, 0.3]), **_ts("attn_decode", [0.0, 0.04, 0.0]),
        "n_embd": [2048] * 3, "n_q_head": [32] * 3, "n_kv_head": [4] * 3, "block_size": [16] * 3,
        "num_tensor_parallel_workers": [1, 1, 2], "max_model_len": [4096] * 3,
        "batch_size": [2, 3, 1], "prefill_chunk_size": [0, 0, 64], "kv_cache_size": [0, 0, 256],
        "is_prefill": [True, True, True], "mode": ["random", "true_mixed", "even"],
        "seq_lens": ["[1496, 1240]", nan, "[64]"],
        "measurement_type": ["CUDA_EVENT", "CUDA_EVENT", "KERNEL_ONLY"],
        "is_true_mixed_batch": [False, True, False],
        "prefill_seq_lens": [nan, "[64]", nan], "prefill_kv_cache_sizes": [nan, "[0]", nan],
        "decode_kv_cache_sizes": [nan, "[16, 96]", nan],
    })
    p = d / "attention.csv"
    df.to_csv(p, index=False)
    return p


def test_parse_int_list():
    assert parse_int_list("[1496, 1240]") == (1496, 1240)
    assert parse_int_list("[1]") == (1,)
    assert parse_int_list("[]") == ()
    assert parse_int_list(float("nan")) is None
    assert parse_int_list([3.0, 4]) == (3, 4)


def test_vidur_attention_units_and_batches(tmp_path):
    p = _vidur_attention(tmp_path)
    out = load_profiles(tmp_path)
    assert set(out) == {"attention"}
    df = out["attention"]
    pre = df[df.op == "attn_prefill"].iloc[0]
    assert pre.time_s == pytest.approx(0.5e-3)  # ms -> s
    assert pre.q_lens == (512,) and pre.c_lens == (128,) and pre.counts == (1,)
    assert pre.is_decode == (False,)
    assert pre.n_q_heads == 32 and pre.n_kv_heads == 4 and pre.head_dim == 128  # local heads, TP2
    assert pre.device == "a100" and pre.model == "org/model" and pre.source_format == "vidur"
    dec = df[df.op == "attn_decode"].iloc[0]
    assert dec.q_lens == (1,) and dec.c_lens == (1024,) and dec.counts == (4,) and dec.is_decode == (True,)
    assert dec.std_s == pytest.approx(0.01e-3)
    # zero-time ops are dropped (attn_prefill of the decode row, attn_decode of the prefill row)
    assert len(df[df.op == "attn_prefill"]) == 1 and len(df[df.op == "attn_decode"]) == 1
    assert len(df[df.op == "attn_kv_cache_save"]) == 2
    assert df.source.iloc[0] == str(p.relative_to(tmp_path))


def test_frontier_attention_lists_mixed_and_kernel_only(tmp_path):
    _frontier_attention(tmp_path)
    df = load_profiles(tmp_path)["attention"]
    het = df[(df.op == "attn_prefill") & (df["mode"] == "random")].iloc[0]
    assert het.q_lens == (1496, 1240) and het.c_lens == (0, 0) and het.batch_kind == "heterogeneous"
    mixed = df[(df["mode"] == "true_mixed")]
    assert set(mixed.op) == {"attn_prefill", "attn_decode"}
    r = mixed.iloc[0]
    assert r.q_lens == (64, 1, 1) and r.c_lens == (0, 16, 96) and r.is_decode == (False, True, True)
    assert r.batch_kind == "mixed" and r.source_format == "frontier"
    ko = df[df["mode"] == "even"].iloc[0]
    assert ko.op == "attn_prefill@kernel_only" and ko.c_lens == (256,) and ko.n_q_heads == 16


def test_linear_and_moe_and_collective(tmp_path):
    d = tmp_path / "a800" / "m"
    d.mkdir(parents=True)
    pd.DataFrame({
        **_ts("attn_pre_proj", [0.05, 0.1]), **_ts("mlp_up_proj", [0.2, 0.4]), **_ts("input_layernorm", [0.01, 0.01]),
        "n_head": [32, 32], "n_kv_head": [8, 8], "n_embd": [4096, 4096], "n_expanded_embd": [14336, 14336],
        "vocab_size": [128256] * 2, "use_gated_mlp": [True, True], "num_tokens": [128, 256],
        "num_tensor_parallel_workers": [2, 2],
    }).to_csv(d / "mlp.csv", index=False)
    pd.DataFrame({
        **_ts("moe_grouped_gemm", [1.0, 2.0]), "num_tokens": [100, 200], "num_experts": [8, 8],
        "num_experts_per_device": [8, 4], "expert_parallel_size": [1, 2], "router_topk": [2, 2],
        "hidden_dim": [4096] * 2, "expert_hidden_dim": [14336] * 2, "use_gated": [True] * 2,
        "num_tensor_parallel_workers": [1, 1], "total_routed_tokens": [200, np.nan],
        "tokens_per_expert_avg": [25.0, np.nan], "expert_utilization": [1.0, np.nan],
        "min_load_ratio": [0.8, np.nan], "max_load_ratio": [1.4, np.nan], "load_imbalance_cv": [0.2, np.nan],
        "load_entropy": [2.9, np.nan], "load_gini_coefficient": [0.1, np.nan],
    }).to_csv(d / "moe.csv", index=False)
    net = tmp_path / "network" / "a800_pairwise_nvlink"
    net.mkdir(parents=True)
    pd.DataFrame({"Unnamed: 0": [0], **_ts("all_reduce", [0.5]), "rank": [0], "num_workers": [4],
                  "size": [2**21], "collective": ["all_reduce"], "devices_per_node": [4],
                  "max_devices_per_node": [8]}).to_csv(net / "all_reduce.csv", index=False)
    out = load_profiles(tmp_path)
    lin = out["linear"]
    up = lin[lin.op == "mlp_up_proj"].iloc[0]
    assert (up.m, up.n, up.k, bool(up.is_gemm)) == (128, 14336, 4096, True)  # 2 x 14336 / TP2
    qkv = lin[lin.op == "attn_pre_proj"].iloc[0]
    assert (qkv.n, qkv.k) == ((32 + 16) * 128 // 2, 4096)
    moe = out["moe"]
    a = moe[moe.num_tokens == 100].iloc[0]
    assert a.routed_tokens == 200 and a.max_tokens == pytest.approx(35.0) and a.min_tokens == pytest.approx(20.0)
    b = moe[moe.num_tokens == 200].iloc[0]  # old format: balanced estimate, local share of 200 x 2
    assert b.routed_tokens == pytest.approx(200.0) and b.local_experts == 4 and b.load_cv == 0
    col = out["collective"].iloc[0]
    assert col.op == "all_reduce" and col.size_bytes == 2**21 and col.device == "a800"
    assert col.time_s == pytest.approx(0.5e-3)


def test_linear_op_shape_gated_and_elementwise():
    kw = dict(n_embd=4096, n_head=32, n_kv_head=8, head_dim=128, ffn=11008, vocab=32000, tp=4)
    assert linear_op_shape("mlp_down_proj", **kw) == (4096, 11008 // 4, True)
    assert linear_op_shape("attn_post_proj", **kw) == (4096, 1024, True)
    assert linear_op_shape("input_layernorm", **kw) == (4096, 1, False)


def test_moe_stats_from_counts():
    st = moe_stats_from_counts([10, 0, 5, 5])
    assert st["routed_tokens"] == 20 and st["active_experts"] == 3 and st["local_experts"] == 4
    assert st["load_cv"] == pytest.approx(np.std([10, 0, 5, 5]) / 5)
    assert st["load_gini"] == pytest.approx(0.375)
    assert st["load_entropy_bits"] == pytest.approx(1.5)


def _write(df, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def test_errors_are_one_line_with_file_and_column(tmp_path):
    base = dict(n_embd=[4096], n_q_head=[32], n_kv_head=[32], num_tensor_parallel_workers=[1],
                batch_size=[1], kv_cache_size=[0], prefill_chunk_size=[64], is_prefill=[True])
    p = _write(pd.DataFrame({**_ts("attn_prefill", [float("nan")]), **base}), tmp_path / "a" / "attention.csv")
    with pytest.raises(ValueError, match=r"attention.csv: column time_stats.attn_prefill.median: all values are NaN"):
        load_file(p, device="a100")
    p = _write(pd.DataFrame({**_ts("attn_prefill", [2500.0]), **base}), tmp_path / "b" / "attention.csv")
    with pytest.raises(ValueError, match="looks like microseconds") as e:
        load_file(p, device="a100")
    assert "\n" not in str(e.value)
    p = _write(pd.DataFrame({**_ts("attn_prefill", [2.5e-6]), **base}), tmp_path / "c" / "attention.csv")
    with pytest.raises(ValueError, match="looks like seconds"):
        load_file(p, device="a100")
    p = _write(pd.DataFrame({"time_stats.attn_prefill.mean": [0.1], **base}), tmp_path / "d" / "attention.csv")
    with pytest.raises(ValueError, match=r"column time_stats.attn_prefill.median: missing"):
        load_file(p, device="a100")
    nob = {k: v for k, v in base.items() if k != "batch_size"}
    p = _write(pd.DataFrame({**_ts("attn_prefill", [0.1]), **nob}), tmp_path / "e" / "attention.csv")
    with pytest.raises(ValueError, match=r"column batch_size: missing"):
        load_file(p, device="a100")
    p = _write(pd.DataFrame({"x": [1]}), tmp_path / "f" / "trace.csv")
    with pytest.raises(ValueError, match="not a Vidur/Frontier"):
        load_file(p, device="a100")
    # ... but folders skip files that are not profiles
    assert load_profiles(tmp_path / "f") == {}


def test_native_round_trip(tmp_path):
    _frontier_attention(tmp_path / "in")
    frames = load_profiles(tmp_path / "in")
    save_profiles(frames, tmp_path / "native.csv")
    back = load_profiles(tmp_path / "native.csv", fmt="native")["attention"]
    a = frames["attention"].sort_values(["op", "time_s"]).reset_index(drop=True)
    b = back.sort_values(["op", "time_s"]).reset_index(drop=True)
    assert list(a.q_lens) == list(b.q_lens) and list(a.is_decode) == list(b.is_decode)
    np.testing.assert_allclose(a.time_s, b.time_s)
    assert list(a.config_key) == list(b.config_key)


# ---- real public data (skipped without ../shared/data) ---------------------------------

FRONTIER = DATA / "frontier" / "data" / "profiling" / "compute"


@pytest.mark.skipif(not FRONTIER.exists(), reason="shared Frontier data not available")
def test_real_frontier_attention_file():
    out = load_file(FRONTIER / "a800" / "qwen3-a3b-30b-moe" / "attention.csv", root=DATA)
    df = out["attention"]
    assert df.time_s.max() < 0.01 and df.time_s.min() > 1e-7  # seconds
    het = df[(df.op == "attn_prefill") & (df.batch_kind == "heterogeneous")]
    assert len(het) > 100 and any(len(set(q)) > 1 for q in het.q_lens)
    assert (df.batch_kind == "mixed").any()


@pytest.mark.skipif(not (DATA / "vidur").exists(), reason="shared Vidur data not available")
def test_real_vidur_mlp_and_network():
    mlp = load_file(DATA / "vidur" / "profiling" / "compute" / "h100" / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv")
    lin = mlp["linear"]
    up = lin[(lin.op == "mlp_up_proj") & (lin.m == 4096) & (lin.tp == 1)]
    assert up.time_s.iloc[0] == pytest.approx(0.99e-3, rel=0.05)  # README: 0.99 ms on H100
    net = load_file(DATA / "vidur" / "profiling" / "network" / "h100_dgx" / "all_reduce.csv")["collective"]
    assert set(net.num_workers) == {2, 4, 8} and net.device.iloc[0] == "h100"


@pytest.mark.skipif(not (DATA / "aiconfigurator").exists(), reason="shared aiconfigurator data not available")
def test_real_aiconfigurator_gemm_and_nccl():
    root = DATA / "aiconfigurator" / "systems" / "data" / "h100_sxm"
    gemm = load_file(root / "gemm" / "vllm" / "0.24.0" / "gemm_perf.parquet")["linear"]
    big = gemm[(gemm.m >= 4096) & (gemm.n >= 4096) & (gemm.k >= 4096) & gemm.op.str.startswith("gemm@bfloat16")]
    tflops = 2.0 * big.m * big.n * big.k / big.time_s / 1e12
    assert len(big) > 10 and 400 < tflops.median() < 989  # seconds, H100 BF16 (README: ~830 TFLOP/s)
    nccl = load_file(root / "comm" / "nccl" / "2.29.2" / "nccl_perf.parquet")["collective"]
    assert nccl.op.str.startswith("all_reduce").any() and nccl.device.iloc[0] == "h100"


@pytest.mark.skipif(not FRONTIER.exists(), reason="shared Frontier data not available")
def test_real_frontier_rows_point_back_to_their_file_row():
    # benchmarks/frontier_head_to_head.py joins Frontier's forests and ours on (file, row):
    # every tidy row's source_row must be the raw row its time came from
    model = FRONTIER / "a800" / "qwen3-a3b-30b-moe"
    for name, family in (("linear_op.csv", "linear"), ("moe.csv", "moe")):
        df = load_file(model / name, root=DATA)[family]
        raw = pd.read_csv(model / name, low_memory=False)
        assert df["source_row"].between(0, len(raw) - 1).all()
        for base, g in df.groupby(df["op"].str.split("@").str[0]):
            ms = pd.to_numeric(raw.loc[g["source_row"], f"time_stats.{base}.median"]).to_numpy()
            np.testing.assert_allclose(g["time_s"].to_numpy(), ms * 1e-3, rtol=1e-12)
