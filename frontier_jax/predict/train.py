"""Training, evaluation and loading of operator predictor sets, and their CLI.

A *predictor set* is a folder::

    card.json          data source and license, features, split, per-operator accuracy
    <op>.npz           surrogate weights (plain float32 arrays, see surrogate.py)
    train_keys.npy     uint32 hashes of the training configurations (so that ``eval`` never
                       scores a row that was trained on)
    forests/           feature forest and proxy baseline per operator (joblib, host only,
                       git-ignored by the ``.gitignore`` written next to it)

The train/test split is deterministic per configuration: a row is a test row when
``blake2b(f"{seed}:{config_key}") / 2**64 < test_fraction``; every measurement of the same
configuration (repeats, kernel-only twins, copies in several files) lands on the same side.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from frontier_jax.cost.mlp import TINY_S
from frontier_jax.cost.surrogate import ITERATION_OP  # a whole engine step (family attention)

from . import features as F
from .artifact import CARD_FORMAT, load_predictor_set, load_surrogate  # noqa: F401  (part of this module's API)
from .devices import device_spec
from .forest import fit_forest, fit_proxy_forest
from .importers import load_profiles
from .surrogate import fit_surrogate, predict_np, save_surrogate

THRESHOLDS = (0.05, 0.10, 0.20)

FEATURE_BUILDERS = {
    "attention": "frontier_jax.predict.features.attention_features",
    "linear": "frontier_jax.predict.features.gemm_features",
    "moe": "frontier_jax.predict.features.grouped_gemm_features "
           "(or moe_features_from_stats)",
    "collective": "frontier_jax.predict.features.collective_features",
}

DEFAULT_FOREST = {"kind": "extra", "n_estimators": 100, "min_samples_leaf": "auto",
                  "max_features": 1.0, "aggregate": "median"}
LEAF_CANDIDATES = (1, 2, 3, 5)
DEFAULT_SURROGATE = {"width": 128, "depth": 3, "steps": 20000, "batch_size": 1024, "lr": 3e-3,
                     "target": "log_ratio"}
# Per-family architecture over DEFAULT_SURROGATE. The simulator evaluates the attention-family
# surrogates (attn_prefill, attn_decode, the whole-step ITERATION_OP) several times per
# simulated step, so they get a compact network: on Frontier's H800 data width 32 / depth 2
# kept attention accuracy (95.8% of rows within 10% vs 95.6% at width 128) but lost on GEMMs
# (60.7% vs 73.7%), so every other family keeps DEFAULT_SURROGATE's width 128 / depth 3.
FAMILY_SURROGATE = {"attention": {"width": 32, "depth": 2}}
AUGMENT = {"copies": 4, "max_points": 24000, "sigma": 0.15,
           # scale-up copies of the largest 10% of configurations, labelled with the forest's
           # time/roofline ratio at the original point (efficiency held constant beyond the data)
           "scaleup_fraction": 0.1, "scaleup_copies": 4, "scaleup_max": 4.0}

_LICENSES = (
    ("aiconfigurator", "NVIDIA aiconfigurator (https://github.com/ai-dynamo/aiconfigurator)", "Apache-2.0"),
    ("frontier", "Frontier (https://github.com/NetX-lab/Frontier)", "MIT"),
    ("vidur", "Vidur (https://github.com/microsoft/vidur)", "MIT"),
)


# --------------------------------------------------------------------------------------
# split and metrics


def config_hash(key: str, seed: int) -> int:
    """64-bit hash of a configuration key under ``seed``."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "little")


def holdout_mask(config_keys, seed: int = 0, test_fraction: float = 0.2) -> np.ndarray:
    """Bool array: which rows are test rows of the deterministic per-configuration split."""
    return np.array([config_hash(k, seed) / 2.0**64 < test_fraction for k in config_keys], dtype=bool)


def _key32(keys, seed: int) -> np.ndarray:
    return np.array([config_hash(k, seed) & 0xFFFFFFFF for k in keys], dtype=np.uint32)


def accuracy(pred_s: np.ndarray, true_s: np.ndarray) -> dict:
    """Median relative error, share of rows within 5/10/20% (fractions in [0, 1]) and the
    time-weighted error ``sum |pred - true| / sum true`` (``time_weighted_err``: each row by
    its share of the measured time, as a simulation sums them)."""
    pred_s = np.asarray(pred_s, float)
    true_s = np.asarray(true_s, float)
    if len(true_s) == 0:
        return {"median_rel_err": None, "within_5": None, "within_10": None, "within_20": None,
                "time_weighted_err": None}
    r = np.abs(pred_s / true_s - 1.0)
    out = {"median_rel_err": float(np.median(r)),
           "time_weighted_err": float(np.abs(pred_s - true_s).sum() / true_s.sum())}
    for t in THRESHOLDS:
        out[f"within_{int(round(t * 100))}"] = float(np.mean(r <= t))
    return out


def fidelity(sur_s: np.ndarray, forest_s: np.ndarray) -> float | None:
    """Median ``|surrogate - forest| / forest``."""
    if len(forest_s) == 0:
        return None
    return float(np.median(np.abs(np.asarray(sur_s) / np.asarray(forest_s) - 1.0)))


def safe_name(op: str) -> str:
    """File-name-safe version of an operator key."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", op)


def ratio_feature(family: str, op: str) -> str:
    """Name of the roofline feature an operator's ``log_ratio`` models divide by."""
    base = op.split("@")[0]
    if family == "attention":
        if base == "attn_prefill":
            return "p_roofline_s"
        if base == "attn_decode":
            return "d_roofline_s"
        if base == ITERATION_OP:
            # a whole engine iteration (GEMMs, attention, host work): the forest's time per
            # token; its surrogate divides by the linear physics_ratio instead
            return "num_tokens"
        return "roofline_s"
    if family == "collective":
        return "ring_bytes"
    return "roofline_s"


# Inputs of the whole-step ITERATION_OP model: the batch's additive work totals (sequences,
# tokens, context and query-x-context sums, KV pages, FLOPs, bytes, roofline times), not its
# shape statistics (means, variances, extremes) nor GPU launch terms (tiles, CTAs, waves). An
# engine profile probes homogeneous batches (every decoding sequence at one context), in which
# a batch's mean, minimum and maximum context coincide: a network trained there sees them as
# one input and cannot tell how a served batch, whose contexts differ, splits between them.
# The totals identify what an iteration costs on such an engine (a CPU's attention reads every
# sequence's KV once) and stay inside the profiled box. The other columns are zeroed before
# training, so the surrogate's input clipping pins them (``z_lo == z_hi``): the simulator
# needs no mask of its own.
ITERATION_FEATURES: tuple[str, ...] = (
    "p_num_seqs", "p_q_sum", "p_c_sum", "p_qc_sum", "p_q2_sum", "p_kv_sum", "p_kv_pages",
    "p_flops", "p_bytes", "p_roofline_s",
    "d_num_seqs", "d_c_sum", "d_kv_pages", "d_flops", "d_bytes", "d_roofline_s",
    "num_seqs", "num_tokens", "kv_write_bytes", "roofline_s",
)


def op_inputs(family: str, op: str, names) -> np.ndarray | None:
    """Which feature columns operator ``op``'s models see (a boolean mask over ``names``;
    None: all of them). Only the whole-step ``ITERATION_OP`` is restricted."""
    if family != "attention" or op.split("@")[0] != ITERATION_OP:
        return None
    missing = sorted(set(ITERATION_FEATURES) - set(names))
    if missing:
        raise ValueError(f"attention features lack the iteration inputs {missing}")
    return np.isin(np.asarray(names), ITERATION_FEATURES)


def surrogate_teacher(family: str, op: str) -> str:
    """What operator ``op``'s surrogate is trained to reproduce: "forest" (the forest's
    predictions on the training rows and on perturbed and scaled-up copies of them) or
    "measured" (the training rows' measured times only).

    The whole-step ``ITERATION_OP`` learns from its measurements. An engine profile is a
    sparse grid of probes (prefill chunks of 32, 128 and 512 tokens, decode batches of 1, 4
    and 16 sequences), and its few prefill rows are outnumbered by decode steps. The forest
    is piecewise constant between the probes (on vLLM's CPU validation, 2026-12-07, it priced
    a 200-token prefill chunk at 68 ms where the engine took 34), and the network distilled
    from it and its perturbed copies missed even a probe (42 ms for a 128-token chunk measured
    at 23 ms by 6 of 1,641 rows): served light-load prefill and mixed steps came out +66% and
    +25%. Fitted to the measured steps alone, the network (then a time per token; now a
    correction to :func:`physics_ratio`) interpolates between the probes (-4% and +3% on
    those steps). The public operator profiles are
    dense, noisy grids where the forest's averaging helps: they keep the forest teacher."""
    return "measured" if family == "attention" and op.split("@")[0] == ITERATION_OP else "forest"


def measured_weights(time_s: np.ndarray) -> np.ndarray:
    """Per-row weights of a surrogate fitted to measured steps (teacher "measured"): each
    step's share of the measured time (``t / mean(t)``).

    What a simulation reports (throughput, the queue, TTFT) follows the summed step time, and
    the squared log error weighted by time approximates the relative error of that sum. Left
    unweighted, the many short decode steps of an engine profile outvote its few long mixed
    ones. On vLLM's CPU validation (runs 3-6 of 2026-12-07), the trained set's own held-out
    rows' time-weighted error (``accuracy``'s ``time_weighted_err``) fell from 4.3 / 3.2 /
    3.8 / 4.9% to 3.4 / 3.0 / 2.4 / 3.9% with the median error unchanged within 0.1 point."""
    t = np.asarray(time_s, float)
    return t / t.mean()


PHYSICS_FLOOR = 1e-3  # smallest physics / measured time accepted on a training row


def physics_ratio(X: np.ndarray, time_s: np.ndarray, names,
                  columns: tuple[str, ...] = ITERATION_FEATURES) -> tuple[np.ndarray, float] | None:
    """The linear physics a model corrects (the whole-step ``ITERATION_OP`` network; the
    forest and network of a family in :data:`PHYSICS_COLUMNS`, given its ``columns``): non-negative
    coefficients ``[F]`` (zero outside ``columns``) and a constant (seconds) of
    ``time ~ bias + X @ coef``, fitted by non-negative least squares on the relative error
    weighted by time (``sum (pred - t)^2 / t``, as :func:`measured_weights`). None when no
    usable fit exists: the solver gives up, or some training row's physics is under
    :data:`PHYSICS_FLOOR` of its time (a kind of step the fit prices at ~0, whose log ratio
    would swamp the network's target); the caller then keeps the one-column ratio.

    Each column is additive work of one step (tokens, sequences, KV pages, query x context
    sums, FLOPs, bytes), so the fit is a roofline whose rates and per-step and per-sequence
    costs are learnt from the engine's own steps. The network then learns ``log(time /
    physics)``; its clipped inputs hold that correction at its edge value outside the profiled
    box, so a served batch larger than every probe is priced by the physics, not by a time
    per token held constant. On vLLM's CPU validation (2026-12-07, the trained set's own
    held-out rows, as ``compare.py`` trains it) the time-weighted error went from 3.4 / 3.0 /
    2.4 / 3.9% (time per token) to 2.9 / 3.0 / 2.0 / 4.0% on runs 3, 4 (qwen2), 5 and 6, the
    median error from 5.2 / 4.0 / 3.1 / 5.8% to 4.3 / 3.8 / 2.8 / 5.9%."""
    from scipy.optimize import nnls

    X = np.asarray(X, float)
    t = np.asarray(time_s, float)
    idx = [list(names).index(c) for c in columns]
    A = np.column_stack([np.ones(len(X)), X[:, idx]])
    scale = np.sqrt((A ** 2).mean(0))
    scale = np.where(scale > 0, scale, 1.0)
    w = 1.0 / np.sqrt(np.maximum(t, TINY_S))
    try:  # the totals are collinear (num_seqs = p_num_seqs + d_num_seqs, ...): allow long runs
        sol, _ = nnls(A / scale * w[:, None], t * w, maxiter=50 * A.shape[1])
    except (RuntimeError, ValueError):
        return None
    sol = sol / scale
    coef = np.zeros(X.shape[1])
    coef[idx] = sol[1:]
    phys = sol[0] + X @ coef
    if not (np.all(np.isfinite(sol)) and np.all(phys >= PHYSICS_FLOOR * t)):
        return None
    return coef, float(sol[0])


# The linear physics that a forest-taught family's forest and surrogate correct (columns of
# the family's features; :func:`physics_ratio` fits it per operator on the measured training
# rows). MoE grouped GEMMs: the two GEMMs' latency-bound K-loops (``kloop_up``,
# ``kloop_down``: waves x BLOCK_SIZE_K steps at vLLM's launch config) and the roofline of
# the padded blocks. Frontier's H800 kernels are small (kernel-only median 30 us) and
# latency-bound: their time
# follows the K-loops, not the roofline, and jumps with the launch config between the
# profiled token counts (1-64). Correcting this physics instead of learning the whole time,
# the held-out share within 6% went from 92.9 / 88.4% (forest / surrogate, kernel-only) and
# 97.5 / 97.0% (CUDA events) to 96.5 / 95.0% and 99.5 / 99.0%, with the kloop features and
# the context flip of :func:`augment_rows` (``benchmarks/predictor_accuracy.py``,
# 2026-12-07 and 2026-12-08 JSON in ``benchmarks/measured``). Families not listed keep
# the one-column ``ratio_feature`` (their surrogates) and log time (their forests).
PHYSICS_COLUMNS: dict[str, tuple[str, ...]] = {
    "moe": ("kloop_up", "kloop_down", "block_roofline_s"),
}


def _inputs(X: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """``X`` with the columns outside ``keep`` zeroed (unchanged when ``keep`` is None)."""
    return X if keep is None else np.where(keep, X, 0.0)


# --------------------------------------------------------------------------------------
# augmentation (perturbed copies of training configurations, labelled by the forest)


def augment_rows(family: str, df: pd.DataFrame, copies: int, sigma: float, rng: np.random.Generator) -> pd.DataFrame:
    """Perturbed copies of tidy rows: lengths / token counts / sizes scaled by
    ``exp(N(0, sigma))`` (rounded, kept valid); configuration context unchanged."""
    if len(df) == 0 or copies <= 0:
        return df.iloc[:0]
    out = pd.concat([df] * copies, ignore_index=True)
    n = len(out)
    if family == "attention":
        qs, cs, ns = [], [], []
        for q, c, d, cnt in zip(out["q_lens"], out["c_lens"], out["is_decode"], out["counts"], strict=True):
            g = len(q)
            fq = np.exp(rng.normal(0, sigma, g))
            fc = np.exp(rng.normal(0, sigma, g))
            qs.append(tuple(1 if dd else max(1, int(round(qi * f))) for qi, dd, f in zip(q, d, fq, strict=True)))
            cs.append(tuple(max(0, int(round(ci * f))) for ci, f in zip(c, fc, strict=True)))
            if rng.random() < 0.3:
                ns.append(tuple(max(1, int(round(k * np.exp(rng.normal(0, sigma))))) for k in cnt))
            else:
                ns.append(tuple(cnt))
        out["q_lens"], out["c_lens"], out["counts"] = qs, cs, ns
    elif family == "linear":
        f = np.exp(rng.normal(0, sigma, n))
        out["m"] = np.maximum(1, np.round(out["m"].to_numpy(float) * f)).astype(int)
    elif family == "moe":
        f = np.exp(rng.normal(0, sigma, n))
        for c in ("num_tokens", "routed_tokens", "max_tokens", "min_tokens"):
            out[c] = np.maximum(0.0, out[c].to_numpy(float) * f)
        out["max_tokens"] = np.maximum(out["max_tokens"], out["routed_tokens"] / np.maximum(out["local_experts"], 1))
        g = np.exp(rng.normal(0, sigma / 2, n))
        out["load_cv"] = out["load_cv"].to_numpy(float) * g
        out["load_gini"] = np.clip(out["load_gini"].to_numpy(float) * g, 0, 1)
        if "warm_context" in out.columns:
            # half the copies at the other timing context: a configuration's two contexts
            # often fall on opposite sides of the split, and a network shown each row at its
            # own context only learnt the context's effect row by row (on H800 kernel-only
            # MoE data, where the two contexts agree within 1%, its median distance to the
            # forest was 1.9%; with the flip and the physics ratio 0.3%)
            w = out["warm_context"].to_numpy(float)
            out["warm_context"] = np.where(rng.random(n) < 0.5, 1.0 - w, w)
    elif family == "collective":
        f = np.exp(rng.normal(0, sigma, n))
        out["size_bytes"] = np.maximum(1.0, out["size_bytes"].to_numpy(float) * f)
    return out


def scaleup_rows(family: str, df: pd.DataFrame, factors: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Copies of tidy rows with their work scaled up by ``factors`` (one per row): lengths
    (attention: query and context lengths, or, at random, the number of sequences), tokens
    (GEMM, MoE) or message size (collectives)."""
    out = df.copy().reset_index(drop=True)
    f = np.asarray(factors, float)
    if family == "attention":
        qs, cs, ns = [], [], []
        for i, (q, c, d, cnt) in enumerate(zip(out["q_lens"], out["c_lens"], out["is_decode"], out["counts"], strict=True)):
            if rng.random() < 0.5:  # longer sequences
                qs.append(tuple(1 if dd else max(1, int(round(qi * f[i]))) for qi, dd in zip(q, d, strict=True)))
                cs.append(tuple(int(round(ci * f[i])) for ci in c))
                ns.append(tuple(cnt))
            else:  # more sequences
                qs.append(tuple(q))
                cs.append(tuple(c))
                ns.append(tuple(max(1, int(round(k * f[i]))) for k in cnt))
        out["q_lens"], out["c_lens"], out["counts"] = qs, cs, ns
    elif family == "linear":
        out["m"] = np.maximum(1, np.round(out["m"].to_numpy(float) * f)).astype(int)
    elif family == "moe":
        for c in ("num_tokens", "routed_tokens", "max_tokens", "min_tokens"):
            out[c] = out[c].to_numpy(float) * f
    elif family == "collective":
        out["size_bytes"] = out["size_bytes"].to_numpy(float) * f
    return out


# --------------------------------------------------------------------------------------
# training


def select_min_samples_leaf(X: np.ndarray, time_s: np.ndarray, keys, *, names, ratio_index: int,
                            seed: int, forest_params: dict, candidates=LEAF_CANDIDATES,
                            physics: dict | None = None) -> tuple[int, dict]:
    """Pick the forest's ``min_samples_leaf`` by an inner split of the *training* rows
    (per configuration, seed ``seed + 1``): the candidate with the lowest truncated mean
    absolute log error ``mean(min(|log(pred / true)|, 0.2))``; near-ties (within 1%) go to
    the larger leaf (smoother teacher for the surrogate). ``physics``: the operator's
    ``{"ratio_coef", "ratio_bias"}`` (see :data:`PHYSICS_COLUMNS`), as the forest is fitted.
    Returns ``(leaf, scores)``."""
    inner = holdout_mask(keys, seed + 1, 0.2)
    if inner.sum() < 10 or (~inner).sum() < 10:
        return 2, {}
    fp = {k: v for k, v in forest_params.items() if k != "min_samples_leaf"}
    scores = {}
    for leaf in candidates:
        f = fit_forest("inner", "inner", X[~inner], time_s[~inner], feature_names=names,
                       ratio_index=ratio_index, seed=seed, min_samples_leaf=leaf, **fp,
                       **(physics or {}))
        err = np.abs(f.predict_log(X[inner]) - np.log(time_s[inner]))
        scores[leaf] = float(np.mean(np.minimum(err, 0.2)))
    best = min(scores.values())
    leaf = max(lf for lf, sc in scores.items() if sc <= best * 1.01)
    return int(leaf), scores


def _license_info(data_path: Path, sources: list[str]) -> list[dict]:
    text = (str(data_path) + " " + " ".join(sources)).lower()
    out = []
    for key, project, lic in _LICENSES:
        if key in text:
            out.append({"source": project, "license": lic})
    lic_file = None
    p = data_path if data_path.is_dir() else data_path.parent
    for _ in range(5):
        if (p / "LICENSE").exists():
            lic_file = p / "LICENSE"
            break
        p = p.parent
    if lic_file is not None:
        first = lic_file.read_text(errors="replace").strip().splitlines()[:3]
        out.append({"license_file": str(lic_file), "license_head": " ".join(s.strip() for s in first if s.strip())})
    if not out:
        out.append({"source": "unknown", "license": "unknown"})
    return out


def surrogate_settings(family: str, surrogate_params: dict | None = None) -> dict:
    """Surrogate settings for an operator of ``family``: ``DEFAULT_SURROGATE``, then the
    family's architecture (``FAMILY_SURROGATE``), then ``surrogate_params``; an explicit
    key (e.g. ``width``) overrides it for every family."""
    return {**DEFAULT_SURROGATE, **FAMILY_SURROGATE.get(family, {}), **(surrogate_params or {})}


def _family_ops(df: pd.DataFrame) -> list[str]:
    return sorted(df["op"].unique())


def train_predictors(data, fmt: str = "auto", out_dir: str | os.PathLike = "predictors/default", *,
                     seed: int = 0, test_fraction: float = 0.2, include=None,
                     ops: list[str] | None = None, min_rows: int = 8,
                     forest_params: dict | None = None, surrogate_params: dict | None = None,
                     augment: dict | None = None, save_forests: bool = True,
                     source_path: str | os.PathLike | None = None, verbose: bool = False) -> dict:
    """Train forest, proxy baseline and surrogate per operator and write a predictor set.

    Args:
        data: a folder / file of profiles (see :func:`load_profiles`) or already loaded
            ``{family: tidy DataFrame}``.
        fmt: profile format (``auto`` | ``vidur`` | ``frontier`` | ``aiconfigurator`` | ``native``).
        out_dir: output folder (created).
        seed, test_fraction: the deterministic per-configuration split.
        include: substrings of file paths to read (folder input only).
        ops: optional list of operator keys (or base names) to train; default all.
        min_rows: operators with fewer training rows are skipped.
        forest_params, surrogate_params, augment: override ``DEFAULT_FOREST``,
            ``DEFAULT_SURROGATE``, ``AUGMENT``. The surrogate's width and depth default per
            family (attention 32 / 2, the others 128 / 3: :func:`surrogate_settings`); a key
            given in ``surrogate_params`` applies to every family.
        source_path: where in-memory ``data`` came from (recorded in the card).

    Returns:
        the card (dict) also written to ``out_dir/card.json``; ``card["models"][op]["accuracy"]``
        holds the test-row accuracy of forest, surrogate and proxy baseline.
    """
    t_start = time.time()
    fp = {**DEFAULT_FOREST, **(forest_params or {})}
    sp_over = dict(surrogate_params or {})
    ap = {**AUGMENT, **(augment or {})}
    if isinstance(data, dict):
        frames, data_path = data, Path(source_path or ".")
    else:
        data_path = Path(data)
        frames = load_profiles(data_path, fmt, include=include)
    if not frames:
        raise ValueError(f"{data}: no profiles found")
    out = Path(out_dir)
    (out / "forests").mkdir(parents=True, exist_ok=True)
    (out / ".gitignore").write_text("forests/\n")
    rng = np.random.default_rng(seed)

    card: dict = {
        "format": CARD_FORMAT,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "data": {"path": str(data_path), "format": fmt, "sources": [], "license": []},
        "split": {"method": "blake2b(f'{seed}:{config_key}') / 2**64 < test_fraction, per configuration",
                  "seed": seed, "test_fraction": test_fraction},
        "devices": {},
        "features": {},
        "feature_builders": {},
        "proxy_features": {k: list(v) for k, v in F.PROXY_FEATURES.items()},
        "forest": fp,
        # settings per trained family (each operator's own: models[op]["surrogate"])
        "surrogate": {"by_family": {}, "overrides": sp_over},
        "augmentation": ap,
        "units": "seconds per op per layer per GPU",
        "models": {},
        "skipped_ops": {},
    }
    train_keys: list[np.ndarray] = []
    sources: set[str] = set()
    for family, df in frames.items():
        if family not in F.FEATURE_NAMES or len(df) == 0:
            continue
        names = F.FEATURE_NAMES[family]
        sp = surrogate_settings(family, sp_over)
        card["surrogate"]["by_family"][family] = sp
        card["features"][family] = list(names)
        card["feature_builders"][family] = FEATURE_BUILDERS[family]
        for d in df["device"].unique():
            card["devices"][str(d)] = device_spec(str(d)).to_dict()
        if family == "attention" and "block_size" in df.columns and len(df):
            # the KV page size behind the page-count features (the simulator reuses it)
            card["attention_block_size"] = int(df["block_size"].mode().iloc[0])
        sources.update(map(str, df["source"].unique()))
        X = F.frame_features(family, df)
        te = holdout_mask(df["config_key"], seed, test_fraction)
        train_keys.append(_key32(df.loc[~te, "config_key"].unique(), seed))
        for op in _family_ops(df):
            if ops and op not in ops and op.split("@")[0] not in ops:
                continue
            m = (df["op"] == op).to_numpy()
            tr, ts = m & ~te, m & te
            if tr.sum() < min_rows:
                card["skipped_ops"][op] = f"{int(tr.sum())} training rows < {min_rows}"
                continue
            t0 = time.time()
            ri = names.index(ratio_feature(family, op))
            keep = op_inputs(family, op, names)
            Xo = _inputs(X, keep)
            sub_tr = df.loc[tr]
            y_tr = sub_tr["time_s"].to_numpy(float)
            fpo = dict(fp)
            leaf_scores: dict = {}
            phys_fit = physics_ratio(Xo[tr], y_tr, names, PHYSICS_COLUMNS[family]) \
                if family in PHYSICS_COLUMNS else None
            lin: dict = {} if phys_fit is None else {"ratio_coef": phys_fit[0], "ratio_bias": phys_fit[1]}
            if fpo.get("min_samples_leaf") == "auto":
                fpo["min_samples_leaf"], leaf_scores = select_min_samples_leaf(
                    Xo[tr], y_tr, sub_tr["config_key"], names=names, ratio_index=ri, seed=seed,
                    forest_params=fpo, physics=lin)
            forest = fit_forest(op, family, Xo[tr], y_tr, feature_names=names, ratio_index=ri,
                                seed=seed, **fpo, **lin)
            pk = F.proxy_kind(family, op)
            P_tr = F.proxy_features(family, op, sub_tr)
            pfo = dict(fpo)
            if fp.get("min_samples_leaf") == "auto":
                pfo["min_samples_leaf"], _ = select_min_samples_leaf(
                    P_tr, y_tr, sub_tr["config_key"], names=F.PROXY_FEATURES[pk], ratio_index=-1,
                    seed=seed, forest_params=pfo)
            proxy = fit_proxy_forest(op, family, P_tr, y_tr, feature_names=F.PROXY_FEATURES[pk],
                                     seed=seed, **pfo)
            teacher = surrogate_teacher(family, op)
            aug, n_up, w_d = sub_tr.iloc[:0], 0, None
            if teacher == "measured":  # the training rows as measured (see surrogate_teacher)
                X_d, y_d, w_d = Xo[tr], np.log(y_tr), measured_weights(y_tr)
                phys = physics_ratio(Xo[tr], y_tr, names)
                if phys is not None:
                    lin = {"ratio_coef": phys[0], "ratio_bias": phys[1]}
            else:
                # distillation set: training rows + perturbed copies, labelled by the forest
                copies = int(max(1, min(ap["copies"], ap["max_points"] // max(int(tr.sum()), 1))))
                aug = augment_rows(family, sub_tr, copies, ap["sigma"], rng)
                X_aug = _inputs(F.frame_features(family, aug), keep) if len(aug) else np.zeros((0, X.shape[1]))
                X_d = np.concatenate([Xo[tr], X_aug])
                y_d = forest.predict_log(X_d)
                # extrapolation anchors: the largest configurations scaled up, constant time/roofline
                if ap.get("scaleup_copies", 0) > 0 and ap.get("scaleup_fraction", 0) > 0:
                    roof = X[tr, ri]
                    k = max(1, int(np.ceil(ap["scaleup_fraction"] * len(roof))))
                    top = np.argsort(roof)[-k:]
                    base_rows = pd.concat([sub_tr.iloc[top]] * int(ap["scaleup_copies"]), ignore_index=True)
                    fac = np.exp(rng.uniform(np.log(1.25), np.log(ap["scaleup_max"]), len(base_rows)))
                    up = scaleup_rows(family, base_rows, fac, rng)
                    X_up = _inputs(F.frame_features(family, up), keep)
                    X_base = np.concatenate([Xo[tr][top]] * int(ap["scaleup_copies"]))
                    ok = (X_up[:, ri] > X_base[:, ri]) & (X_base[:, ri] > 0)
                    if ok.any():
                        y_up = (forest.predict_log(X_base[ok]) + np.log(X_up[ok, ri]) - np.log(X_base[ok, ri]))
                        X_d = np.concatenate([X_d, X_up[ok]])
                        y_d = np.concatenate([y_d, y_up])
                        n_up = int(ok.sum())
            sur = fit_surrogate(op, family, X_d, y_d, feature_names=names, ratio_index=ri, seed=seed,
                                sample_weight=w_d, **lin, **{k: v for k, v in sp.items()})
            fname = safe_name(op) + ".npz"
            save_surrogate(sur, out / fname)
            if save_forests:
                import joblib

                joblib.dump({"forest": forest, "proxy": proxy}, out / "forests" / (safe_name(op) + ".joblib"),
                            compress=3)
            acc = _evaluate_op(family, op, df.loc[ts], Xo[ts], forest, sur.weights, proxy)
            card["models"][op] = {
                "family": family,
                "file": fname,
                "features": family,
                "target": sur.target,
                "ratio_feature": names[ri],  # the forest's; a linear surrogate ratio: below
                "surrogate_ratio": "linear (surrogate.linear_ratio)" if lin else names[ri],
                "inputs": "all" if keep is None else [n for n, k in zip(names, keep, strict=True) if k],
                "surrogate": {**sur.info, "teacher": teacher,
                              "row_weights": "uniform" if w_d is None else "measured time"},
                "forest": {"target": "log(time / physics), physics: surrogate.linear_ratio"
                           if forest.ratio_coef is not None else forest.target,
                           "min_samples_leaf": fpo["min_samples_leaf"],
                           "inner_split_scores": {str(k): v for k, v in leaf_scores.items()}},
                "proxy_features": pk,
                "proxy_forest": {"min_samples_leaf": pfo["min_samples_leaf"]},
                "rows": {"train": int(tr.sum()), "test": int(ts.sum()), "augmented": int(len(aug)),
                         "scaled_up": n_up},
                "devices": sorted(map(str, df.loc[m, "device"].unique())),
                "models": sorted(map(str, df.loc[m, "model"].unique())),
                "accuracy": acc,
                "train_seconds": round(time.time() - t0, 2),
            }
            if verbose:
                s = acc.get("surrogate", {})
                print(f"[train] {family}/{op}: train={int(tr.sum())} test={int(ts.sum())} "
                      f"surrogate within10={s.get('within_10')} fidelity={acc.get('fidelity_median')} "
                      f"({time.time() - t0:.1f}s)", flush=True)
    card["data"]["sources"] = sorted(sources)
    card["data"]["license"] = _license_info(data_path, sorted(sources))
    card["data"]["rows"] = int(sum(len(d) for d in frames.values()))
    card["split"]["train_configs"] = int(sum(len(k) for k in train_keys))
    card["train_seconds"] = round(time.time() - t_start, 1)
    keys = np.unique(np.concatenate(train_keys)) if train_keys else np.zeros(0, np.uint32)
    np.save(out / "train_keys.npy", keys.astype(np.uint32))
    (out / "card.json").write_text(json.dumps(card, indent=1, default=_json_default))
    return card


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


# --------------------------------------------------------------------------------------
# evaluation


def _predict_all(family, op, df, X, forest, weights, proxy):
    out = {"surrogate": predict_np(weights, X)}
    if forest is not None:
        out["forest"] = forest.predict(X)
    if proxy is not None:
        out["proxy"] = proxy.predict(F.proxy_features(family, op, df))
    return out


def _evaluate_op(family, op, df, X, forest, weights, proxy, with_rows: bool = False):
    t = df["time_s"].to_numpy(float)
    preds = _predict_all(family, op, df, X, forest, weights, proxy)
    res: dict = {"rows": int(len(df))}
    for k in ("forest", "surrogate", "proxy"):
        if k in preds:
            res[k] = accuracy(preds[k], t)
    if "forest" in preds:
        res["fidelity_median"] = fidelity(preds["surrogate"], preds["forest"])
    kinds = df["batch_kind"].astype(str).to_numpy() if "batch_kind" in df.columns else np.array([""] * len(df))
    slices = {}
    for bk in sorted(set(kinds)):
        s = kinds == bk
        if not bk or s.all():
            continue
        slices[bk] = {"rows": int(s.sum()), **{k: accuracy(v[s], t[s]) for k, v in preds.items()}}
    if slices:
        res["slices"] = slices
    # repeatability of the measurement itself (std over its repetitions / median)
    if "std_s" in df.columns and df["std_s"].notna().any():
        rs = (df["std_s"] / df["time_s"]).to_numpy(float)
        rep = {}
        for name, lo, hi in (("rel_std<=2%", -1, 0.02), ("rel_std>2%", 0.02, np.inf)):
            s = (rs > lo) & (rs <= hi)
            if s.any():
                rep[name] = {"rows": int(s.sum()), **{k: accuracy(v[s], t[s]) for k, v in preds.items()}}
        res["by_repeatability"] = rep
    if with_rows:
        rows = pd.DataFrame({"op": op, "family": family, "time_s": t,
                             "batch_kind": kinds, "device": df["device"].to_numpy(),
                             "model": df["model"].to_numpy(),
                             "source_row": df["source_row"].to_numpy() if "source_row" in df else np.full(len(df), -1),
                             "tp": df["tp"].to_numpy() if "tp" in df else np.ones(len(df), int),
                             "source": df["source"].to_numpy(), "config_key": df["config_key"].to_numpy(),
                             "rel_std": (df["std_s"] / df["time_s"]).to_numpy(float)})
        for k, v in preds.items():
            rows[k + "_s"] = v
        names = F.FEATURE_NAMES[family]
        if "roofline_s" in names:  # the roofline's time of the row (before any efficiency)
            rows["roofline_feature_s"] = X[:, names.index("roofline_s")]
        if family == "attention":
            rows["len_cv"] = length_cv(df)
        return res, rows
    return res


def length_cv(df: pd.DataFrame) -> np.ndarray:
    """[N] coefficient of variation of each attention batch's sequence lengths (query +
    context tokens per sequence, each group of identical sequences weighted by its count):
    0 for a uniform batch, larger the more skewed."""
    q, c, w, _ = F.pad_groups(df)
    n = np.maximum(w.sum(axis=1), 1e-12)
    length = q + c
    mean = (w * length).sum(axis=1) / n
    var = (w * (length - mean[:, None]) ** 2).sum(axis=1) / n
    return np.sqrt(var) / np.maximum(mean, 1e-12)


def _load_forests(d: Path, op: str):
    p = d / "forests" / (safe_name(op) + ".joblib")
    if not p.exists():
        return None, None
    import joblib

    obj = joblib.load(p)
    return obj.get("forest"), obj.get("proxy")


def eval_predictors(model_dir: str | os.PathLike, data, fmt: str = "auto", *, split: str = "auto",
                    include=None, ops: list[str] | None = None, return_rows: bool = False) -> dict:
    """Score a predictor set on profiles (any files of a supported format).

    Args:
        model_dir: folder written by :func:`train_predictors`.
        data: folder / file of profiles, or ``{family: tidy DataFrame}``.
        split: ``auto`` = every row whose configuration was not trained on (test-side rows
            and unseen configurations), ``test`` = test-side rows only, ``all`` = every row.
        ops: restrict to these operator keys (or base names).
        return_rows: also return per-row predictions under ``"_rows"`` (a DataFrame).

    Returns:
        ``{"model": dir, "data": path, "split": split, "ops": {op: {"rows", "forest",
        "surrogate", "proxy", "fidelity_median", "slices", "by_repeatability"}}}`` where each
        of forest/surrogate/proxy is ``{"median_rel_err", "within_5", "within_10",
        "within_20"}`` (fractions). The forest and proxy need the set's ``forests/`` folder.
    """
    d = Path(model_dir)
    ps = load_predictor_set(d)
    card = ps["card"]
    seed = int(card["split"]["seed"])
    frac = float(card["split"]["test_fraction"])
    frames = data if isinstance(data, dict) else load_profiles(data, fmt, include=include)
    keys = np.load(d / "train_keys.npy") if (d / "train_keys.npy").exists() else np.zeros(0, np.uint32)
    result: dict = {"model": str(d), "data": str(data) if not isinstance(data, dict) else "<frames>",
                    "split": split, "ops": {}, "missing_models": []}
    all_rows = []
    for family, df in frames.items():
        if family not in F.FEATURE_NAMES or len(df) == 0:
            continue
        if split == "all":
            keep = np.ones(len(df), bool)
        else:
            te = holdout_mask(df["config_key"], seed, frac)
            keep = te if split == "test" else te | ~np.isin(_key32(df["config_key"], seed), keys)
        df = df.loc[keep].reset_index(drop=True)
        if len(df) == 0:
            continue
        X = F.frame_features(family, df)
        for op in _family_ops(df):
            if ops and op not in ops and op.split("@")[0] not in ops:
                continue
            if op not in ps["weights"]:
                result["missing_models"].append(op)
                continue
            m = (df["op"] == op).to_numpy()
            forest, proxy = _load_forests(d, op)
            used = card["models"].get(op, {}).get("inputs", "all")  # as trained (older sets: all)
            Xo = _inputs(X[m], None if used == "all" else np.isin(np.asarray(F.FEATURE_NAMES[family]), used))
            res = _evaluate_op(family, op, df.loc[m], Xo, forest, ps["weights"][op], proxy, with_rows=return_rows)
            if return_rows:
                res, rows = res
                all_rows.append(rows)
            result["ops"][op] = res
    if return_rows:
        result["_rows"] = pd.concat(all_rows, ignore_index=True) if all_rows else pd.DataFrame()
    return result


# --------------------------------------------------------------------------------------
# CLI


def _table(result: dict) -> str:
    lines = [f"{'operator':40s} {'rows':>6s}  " + "  ".join(
        f"{k:>26s}" for k in ("forest med/5/10/20%", "surrogate med/5/10/20%", "proxy med/5/10/20%"))]
    for op, r in result["ops"].items():
        cells = []
        for k in ("forest", "surrogate", "proxy"):
            a = r.get(k)
            if not a or a["median_rel_err"] is None:
                cells.append(f"{'-':>26s}")
            else:
                cells.append(f"{a['median_rel_err'] * 100:6.2f} {a['within_5'] * 100:5.1f} "
                             f"{a['within_10'] * 100:5.1f} {a['within_20'] * 100:5.1f}")
        lines.append(f"{op:40s} {r['rows']:6d}  " + "  ".join(f"{c:>26s}" for c in cells))
    return "\n".join(lines)


def register_cli(group) -> None:
    """Add a ``predictors`` click group (``train``, ``eval``) to the click group ``group``."""
    import click

    @group.group("predictors")
    def predictors():
        """Operator runtime predictors: train from profiles, evaluate on profiles."""

    fmt_choice = click.Choice(["auto", "vidur", "frontier", "aiconfigurator", "native"])

    @predictors.command("train")
    @click.option("--data", "data", required=True, type=click.Path(exists=True), help="profile folder or file")
    @click.option("--format", "fmt", default="auto", type=fmt_choice, show_default=True)
    @click.option("--out", "out", required=True, type=click.Path(), help="output folder, e.g. predictors/NAME")
    @click.option("--seed", default=0, show_default=True, type=int)
    @click.option("--test-fraction", default=0.2, show_default=True, type=float)
    @click.option("--include", multiple=True, help="only files whose path contains this (repeatable)")
    @click.option("--op", "ops", multiple=True, help="only these operators (repeatable)")
    @click.option("--trees", type=int, default=None, help=f"trees per forest (default {DEFAULT_FOREST['n_estimators']})")
    @click.option("--surrogate-steps", type=int, default=None,
                  help=f"AdamW steps per surrogate (default {DEFAULT_SURROGATE['steps']})")
    @click.option("--surrogate-width", type=int, default=None,
                  help="hidden units per layer, for every operator (default per family: "
                       f"attention {FAMILY_SURROGATE['attention']['width']}, the others "
                       f"{DEFAULT_SURROGATE['width']}; the simulator evaluates the attention "
                       "surrogates several times per step)")
    @click.option("--surrogate-depth", type=int, default=None,
                  help="hidden layers, for every operator (default per family: attention "
                       f"{FAMILY_SURROGATE['attention']['depth']}, the others "
                       f"{DEFAULT_SURROGATE['depth']})")
    @click.option("--json", "as_json", is_flag=True, help="print the card's accuracy as JSON")
    def train_cmd(data, fmt, out, seed, test_fraction, include, ops, trees, surrogate_steps,
                  surrogate_width, surrogate_depth, as_json):
        """Train forests, proxy baselines and surrogates; write OUT/card.json and weights."""
        fp = {"n_estimators": trees} if trees else None
        sp = {k: v for k, v in (("steps", surrogate_steps), ("width", surrogate_width),
                                ("depth", surrogate_depth)) if v} or None
        card = train_predictors(data, fmt, out, seed=seed, test_fraction=test_fraction,
                                include=list(include) or None, ops=list(ops) or None,
                                forest_params=fp, surrogate_params=sp, verbose=not as_json)
        summary = {"out": out, "ops": {op: m["accuracy"] for op, m in card["models"].items()},
                   "skipped_ops": card["skipped_ops"]}
        if as_json:
            click.echo(json.dumps(summary, indent=1, default=_json_default))
        else:
            click.echo(_table(summary))

    @predictors.command("eval")
    @click.option("--model", "model", required=True, type=click.Path(exists=True), help="predictor set folder")
    @click.option("--data", "data", required=True, type=click.Path(exists=True), help="profile folder or file")
    @click.option("--format", "fmt", default="auto", type=fmt_choice, show_default=True)
    @click.option("--split", default="auto", type=click.Choice(["auto", "test", "all"]), show_default=True)
    @click.option("--include", multiple=True, help="only files whose path contains this (repeatable)")
    @click.option("--op", "ops", multiple=True, help="only these operators (repeatable)")
    @click.option("--json", "as_json", is_flag=True, help="print JSON")
    def eval_cmd(model, data, fmt, split, include, ops, as_json):
        """Per operator: rows, median relative error, share within 5/10/20% for the forest,
        the surrogate and the proxy baseline."""
        res = eval_predictors(model, data, fmt, split=split, include=list(include) or None, ops=list(ops) or None)
        if as_json:
            click.echo(json.dumps(res, indent=1, default=_json_default))
        else:
            click.echo(_table(res))
