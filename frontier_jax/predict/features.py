"""Host-side features of tidy profile frames, and the Vidur-style proxy baseline.

The array builders themselves (:func:`attention_features`, :func:`gemm_features`, ...) live in
:mod:`frontier_jax.cost.features`, beside the cost model that evaluates them inside the
compiled step; they are re-exported here for training code. This module adds what needs
pandas: :func:`frame_features` (features of a tidy frame of one family) and
:func:`proxy_features`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from frontier_jax.cost.features import (  # noqa: F401  (re-exported for training code)
    ATTENTION_FEATURES,
    ATTN_TILE_Q,
    COLLECTIVE_FEATURES,
    DECODE_KV_ROUND,
    FEATURE_NAMES,
    GEMM_FEATURES,
    GEMM_TILE_M,
    GEMM_TILE_N,
    MOE_FEATURES,
    MOE_TILE_M,
    MOE_TILE_N,
    SHIFT_EMBED,
    SHIFT_KEEP,
    SHIFTED_COLUMNS,
    SHIFTED_INDEX,
    STACK_CHUNK,
    attention_columns,
    attention_features,
    collective_features,
    gemm_features,
    grouped_gemm_features,
    moe_features_from_stats,
    moe_load_stats,
    reduce_last,
    shifted_decode_columns,
    shifted_decode_features,
    stack_attention,
    stack_last,
)

from .devices import device_spec

# --------------------------------------------------------------------------------------
# host-side: features of tidy frames


def _spec_arrays(df: pd.DataFrame):
    specs = [device_spec(d) for d in df["device"].astype(str)]
    db = df["dtype_bytes"].to_numpy(dtype=float) if "dtype_bytes" in df.columns else np.full(len(df), 2.0)
    pf = np.array([s.peak_flops(b) for s, b in zip(specs, db, strict=True)], dtype=float)
    bw = np.array([s.mem_bw for s in specs], dtype=float)
    sms = np.array([s.num_sms for s in specs], dtype=float)
    return pf, bw, sms


def pad_groups(df: pd.DataFrame, width: int | None = None):
    """Pad the attention group tuples of a tidy frame to ``[N, G]`` arrays:
    ``(q, c, counts, is_decode)``."""
    lens = [len(x) for x in df["q_lens"]]
    G = max(max(lens, default=1), 1) if width is None else width
    N = len(df)
    q = np.zeros((N, G))
    c = np.zeros((N, G))
    w = np.zeros((N, G))
    d = np.zeros((N, G), dtype=bool)
    for i, (a, b, n, dd) in enumerate(zip(df["q_lens"], df["c_lens"], df["counts"], df["is_decode"], strict=True)):
        L = len(a)
        q[i, :L] = a
        c[i, :L] = b
        w[i, :L] = n
        d[i, :L] = dd
    return q, c, w, d


def frame_features(family: str, df: pd.DataFrame) -> np.ndarray:
    """Feature matrix ``[N, F]`` (float64) of a tidy frame of one family (host side)."""
    if len(df) == 0:
        return np.zeros((0, len(FEATURE_NAMES[family])))
    pf, bw, sms = _spec_arrays(df)
    if family == "attention":
        out = np.zeros((len(df), len(ATTENTION_FEATURES)))
        lens = np.array([len(x) for x in df["q_lens"]])
        # chunk rows of similar width to bound memory
        order = np.argsort(lens, kind="stable")
        for s in range(0, len(df), 4096):
            idx = order[s:s + 4096]
            sub = df.iloc[idx]
            q, c, w, d = pad_groups(sub)
            out[idx] = attention_features(
                q, c, w, np, is_decode=d, n_q_heads=sub["n_q_heads"].to_numpy(float),
                n_kv_heads=sub["n_kv_heads"].to_numpy(float), head_dim=sub["head_dim"].to_numpy(float),
                peak_flops=pf[idx], mem_bw=bw[idx], num_sms=sms[idx],
                dtype_bytes=sub["dtype_bytes"].to_numpy(float),
                block_size=sub["block_size"].to_numpy(float)[:, None])
        return out
    if family == "linear":
        return gemm_features(df["m"].to_numpy(float), df["n"].to_numpy(float), df["k"].to_numpy(float),
                             np, peak_flops=pf, mem_bw=bw, num_sms=sms,
                             dtype_bytes=df["dtype_bytes"].to_numpy(float))
    if family == "moe":
        g = lambda c: df[c].to_numpy(float)  # noqa: E731
        return moe_features_from_stats(
            g("num_tokens"), g("routed_tokens"), g("local_experts"), g("active_experts"),
            g("max_tokens"), g("min_tokens"), g("load_cv"), g("load_gini"), g("load_entropy_bits"),
            np, hidden=g("hidden"), expert_hidden=g("expert_hidden"), topk=g("topk"),
            gated=g("gated"), tp=g("tp"), ep=g("ep"), dtype_bytes=g("dtype_bytes"),
            peak_flops=pf, mem_bw=bw, num_sms=sms,
            warm=g("warm_context") if "warm_context" in df.columns else np.zeros(len(df)))
    if family == "collective":
        return collective_features(df["size_bytes"].to_numpy(float), df["num_workers"].to_numpy(float),
                                   df["devices_per_node"].to_numpy(float), np)
    raise ValueError(f"unknown family {family!r}")


# --------------------------------------------------------------------------------------
# Vidur-style proxy features (the baseline)

PROXY_FEATURES = {
    "attention_prefill": ("agg_chunk", "agg_kv", "n_q_heads", "n_kv_heads", "head_dim",
                          "peak_tflops", "mem_bw_tbs"),
    "attention_decode": ("batch_size", "kv_mean_round64", "n_q_heads", "n_kv_heads", "head_dim",
                         "peak_tflops", "mem_bw_tbs"),
    "attention_other": ("num_tokens", "n_q_heads", "n_kv_heads", "head_dim", "peak_tflops",
                        "mem_bw_tbs"),
    "linear": ("m", "n", "k", "dtype_bytes", "peak_tflops", "mem_bw_tbs"),
    "moe": ("num_tokens", "mean_tokens_per_expert", "local_experts", "hidden", "expert_hidden",
            "topk", "tp", "ep", "dtype_bytes", "peak_tflops", "mem_bw_tbs"),
    "collective": COLLECTIVE_FEATURES,
}


def proxy_kind(family: str, op: str) -> str:
    """Which proxy feature set (a key of ``PROXY_FEATURES``) the baseline uses for ``op``."""
    base = op.split("@")[0]
    if family == "attention":
        if base == "attn_prefill":
            return "attention_prefill"
        if base == "attn_decode":
            return "attention_decode"
        return "attention_other"
    return family


def proxy_features(family: str, op: str, df: pd.DataFrame) -> np.ndarray:
    """Vidur-style proxy features ``[N, P]``: one representative length per batch.

    Prefill attention: ``sqrt(sum q_i^2)`` (aggregate chunk) and ``sum c_i`` (aggregate
    KV); decode attention: batch size and the mean KV length rounded up to 64; other
    attention ops: total tokens; MoE: tokens and the *balanced* tokens per expert (no
    load-imbalance information); GEMMs: ``m, n, k``.
    """
    kind = proxy_kind(family, op)
    if len(df) == 0:
        return np.zeros((0, len(PROXY_FEATURES[kind])))
    pf, bw, _ = _spec_arrays(df)
    if family == "attention":
        q, c, w, d = pad_groups(df)
        wp = np.where(d, 0.0, w)
        wd = np.where(d, w, 0.0)
        ctx = [df["n_q_heads"].to_numpy(float), df["n_kv_heads"].to_numpy(float),
               df["head_dim"].to_numpy(float), pf * 1e-12, bw * 1e-12]
        if kind == "attention_prefill":
            cols = [np.sqrt((wp * q * q).sum(-1)), (wp * c).sum(-1)]
        elif kind == "attention_decode":
            nd = wd.sum(-1)
            mean = (wd * c).sum(-1) / np.maximum(nd, 1)
            cols = [nd, np.ceil(mean / DECODE_KV_ROUND) * DECODE_KV_ROUND]
        else:
            cols = [(wp * q).sum(-1) + wd.sum(-1)]
        return np.stack(cols + ctx, axis=-1)
    if family == "linear":
        return np.stack([df["m"].to_numpy(float), df["n"].to_numpy(float), df["k"].to_numpy(float),
                         df["dtype_bytes"].to_numpy(float), pf * 1e-12, bw * 1e-12], axis=-1)
    if family == "moe":
        g = lambda c: df[c].to_numpy(float)  # noqa: E731
        return np.stack([g("num_tokens"), g("routed_tokens") / np.maximum(g("local_experts"), 1),
                         g("local_experts"), g("hidden"), g("expert_hidden"), g("topk"), g("tp"),
                         g("ep"), g("dtype_bytes"), pf * 1e-12, bw * 1e-12], axis=-1)
    return frame_features(family, df)
