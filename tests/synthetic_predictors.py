"""A small predictor set trained on synthetic native profiles, for simulator tests.

The "measurements" are the features' roofline times times a smooth, shape-dependent
inefficiency (so the surrogate prices differ from the simulator's own roofline), written
as native CSVs and trained with the real pipeline (importer, features, forest, surrogate).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from frontier_jax.predict import linear_op_shape, save_profiles, train_predictors

# Llama-3-8B-like layer at TP 1 and 2 (the scenario in test_surrogate_cost.py)
MODEL = dict(n_embd=4096, n_head=32, n_kv_head=8, head_dim=128, ffn=14336, vocab=128256)
LINEAR_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj",
              "lm_head_linear", "input_layernorm", "post_attention_layernorm", "attn_rope",
              "mlp_act", "add")
PEAK, BW = 989e12, 3.35e12  # the h100 entry of predict.devices


def _linear_rows(rng, device):
    rows = []
    ms = sorted({int(x) for x in np.geomspace(1, 8192, 40)} | set(rng.integers(1, 8192, 40).tolist()))
    for tp in (1, 2):
        for op in LINEAR_OPS:
            n, k, gemm = linear_op_shape(op, tp=tp, **MODEL)
            for m in ms:
                flops = 2.0 * m * n * k
                nbytes = 2.0 * (n * k + m * k + m * n)
                roof = max(flops / PEAK, nbytes / BW)
                eff = 0.55 + 0.3 * np.tanh(m / 512.0) if gemm else 0.6
                t = roof / eff + 4e-6
                rows.append(dict(family="linear", op=op, m=m, n=n, k=k, dtype_bytes=2, tp=tp,
                                 time_s=t * rng.lognormal(0, 0.01), device=device))
    return rows


def _attention_rows(rng, device):
    rows = []
    for _ in range(500):
        tp = int(rng.choice([1, 2]))
        nq, nkv, hd = 32 / tp, 8 / tp, 128
        n_pre = int(rng.integers(0, 4))
        n_dec = int(rng.integers(0 if n_pre else 1, 64))
        q = list(rng.integers(16, 2048, n_pre)) + [1] * n_dec
        c = list(rng.integers(0, 4096, n_pre)) + list(rng.integers(16, 8192, n_dec))
        d = [False] * n_pre + [True] * n_dec
        qa, ca = np.array(q, float), np.array(c, float)
        pre = ~np.array(d)
        pairs = np.sum((qa * ca + 0.5 * (qa * qa + qa))[pre])
        p_roof = max(4 * hd * nq * pairs / PEAK, 2 * (qa[pre].sum() * nq + (qa + ca)[pre].sum() * nkv) * hd * 2 / BW)
        d_kv = np.sum(ca[~pre] + 1)
        d_roof = max(4 * hd * nq * d_kv / PEAK, 2 * (n_dec * nq + d_kv * nkv) * hd * 2 / BW)
        spread = 1.0 + 0.3 * (np.std(ca[~pre]) / max(np.mean(ca[~pre]), 1.0) if n_dec else 0.0)
        base = dict(family="attention", q_lens=q, c_lens=c, is_decode=d, counts=[1] * len(q),
                    n_q_heads=nq, n_kv_heads=nkv, head_dim=hd, tp=tp, block_size=16,
                    dtype_bytes=2, device=device)
        if n_pre:
            rows.append(dict(base, op="attn_prefill", time_s=p_roof / 0.45 + 8e-6))
        if n_dec:
            rows.append(dict(base, op="attn_decode", time_s=d_roof * spread / 0.6 + 5e-6))
    return rows


def make_predictor_set(out: Path, device: str = "h100", seed: int = 0,
                       surrogate: dict | None = None) -> Path:
    """Write synthetic profiles under ``out/profiles`` and train ``out/set``; returns the set.
    ``surrogate`` overrides the (small, fast) surrogate settings; the architecture is train's
    per-family default (attention width 32 / depth 2, GEMMs 128 / 3) unless it gives
    ``width`` / ``depth``, which then apply to every operator."""
    rng = np.random.default_rng(seed)
    prof = out / "profiles"
    prof.mkdir(parents=True, exist_ok=True)
    save_profiles(pd.DataFrame(_linear_rows(rng, device)), prof / "linear.csv")
    save_profiles(pd.DataFrame(_attention_rows(rng, device)), prof / "attention.csv")
    train_predictors(prof, "native", out / "set", seed=seed, save_forests=False,
                     forest_params={"n_estimators": 20, "min_samples_leaf": 2},
                     surrogate_params={"steps": 600, "batch_size": 256, **(surrogate or {})},
                     augment={"copies": 1, "max_points": 2000})
    return out / "set"


def make_iteration_set(out: Path, device: str = "h100", seed: int = 0) -> Path:
    """A set with one ``iteration`` model: whole engine steps, as an engine profile gives."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(400):
        n_pre = int(rng.integers(0, 3))
        n_dec = int(rng.integers(0 if n_pre else 1, 48))
        q = list(rng.integers(8, 1024, n_pre)) + [1] * n_dec
        c = list(rng.integers(0, 2048, n_pre)) + list(rng.integers(16, 4096, n_dec))
        d = [False] * n_pre + [True] * n_dec
        t = 2e-3 + 4e-6 * sum(q) + 2e-8 * sum(ci for ci, di in zip(c, d, strict=True) if di)
        rows.append(dict(family="attention", op="iteration", q_lens=q, c_lens=c, is_decode=d,
                         counts=[1] * len(q), n_q_heads=32, n_kv_heads=8, head_dim=128, tp=1,
                         block_size=16, dtype_bytes=2, device=device,
                         time_s=t * rng.lognormal(0, 0.01)))
    prof = out / "iteration_profiles"
    prof.mkdir(parents=True, exist_ok=True)
    save_profiles(pd.DataFrame(rows), prof / "engine.csv")
    train_predictors(prof, "native", out / "iteration_set", seed=seed, save_forests=False,
                     forest_params={"n_estimators": 20, "min_samples_leaf": 2},
                     surrogate_params={"steps": 2000, "batch_size": 256},  # attention: 32 / 2
                     augment={"copies": 1, "max_points": 2000})
    return out / "iteration_set"


# Qwen3-30B-A3B's routed experts (the moe_qwen3_* scenarios), one GPU's share at EP = TP
MOE_MODEL = dict(hidden=2048, expert_hidden=768, topk=8, num_experts=128)
MOE_TILE = 64


def moe_truth(counts, tp: int, ep: int) -> float:
    """The synthetic "measured" GroupedGEMM seconds of one GPU's expert token ``counts``:
    each expert's rows padded to the 64-row tile, compute-bound at 45% of peak or reading the
    active experts' weights at 70% of the bandwidth, plus a launch."""
    c = np.asarray(counts, float)
    h, eh = MOE_MODEL["hidden"], MOE_MODEL["expert_hidden"] * ep / tp
    padded = np.sum(np.ceil(c / MOE_TILE) * MOE_TILE)
    flops = 2.0 * padded * 3.0 * h * eh
    nbytes = 2.0 * (np.count_nonzero(c) * 3.0 * h * eh + c.sum() * 2.0 * (h + eh))
    return max(flops / (PEAK * 0.45), nbytes / (BW * 0.7)) + 6e-6


def _moe_rows(rng, device, n=1500):
    from frontier_jax.predict.importers import moe_stats_from_counts

    rows = []
    for _ in range(n):
        tp = ep = int(rng.choice([4, 8]))
        local = MOE_MODEL["num_experts"] // ep + int(rng.choice([0, 1]))  # EPLB: one spare slot
        routed = int(np.exp(rng.uniform(0.0, np.log(40000.0))))
        alpha = float(rng.choice([0.3, 3.0, 1e3]))  # skewed .. near-uniform spreads
        counts = rng.multinomial(routed, rng.dirichlet(np.full(local, alpha)))
        rows.append(dict(family="moe", op="moe_grouped_gemm", device=device,
                         # the EP group's tokens: each rank runs the layer on all of them
                         num_tokens=max(routed * ep // MOE_MODEL["topk"], 1), **moe_stats_from_counts(counts),
                         hidden=MOE_MODEL["hidden"], expert_hidden=MOE_MODEL["expert_hidden"],
                         topk=MOE_MODEL["topk"], gated=1, tp=tp, ep=ep,
                         num_experts=MOE_MODEL["num_experts"], dtype_bytes=2,
                         batch_kind="skewed" if alpha < 100 else "balanced",
                         time_s=moe_truth(counts, tp, ep) * rng.lognormal(0, 0.01)))
    return rows


def make_moe_predictor_set(out: Path, device: str = "h100", seed: int = 0) -> Path:
    """A set with one ``moe_grouped_gemm`` network, trained on synthetic GroupedGEMM rows of
    Qwen3-30B-A3B's experts at EP = TP 4 and 8 (16/32 experts per GPU, or one spare slot more)."""
    rng = np.random.default_rng(seed)
    prof = out / "moe_profiles"
    prof.mkdir(parents=True, exist_ok=True)
    save_profiles(pd.DataFrame(_moe_rows(rng, device)), prof / "moe.csv")
    train_predictors(prof, "native", out / "moe_set", seed=seed, save_forests=False,
                     forest_params={"n_estimators": 20, "min_samples_leaf": 2},
                     surrogate_params={"steps": 1500, "batch_size": 256},
                     augment={"copies": 1, "max_points": 2000})
    return out / "moe_set"
