"""Operator-predictor accuracy on Frontier's public A800 / H800 profiles.

Trains a predictor set per device (feature forest, Vidur-style proxy forest, MLP surrogate;
deterministic per-configuration 80/20 split, seed 0) and prints, as JSON, the accuracy on
the test rows for the issue's target groups, with the proxy baseline beside it:

* ``attention_heterogeneous`` / ``attention_mixed``: attn_prefill + attn_decode rows of
  heterogeneous prefill batches / prefill+decode batches (target: surrogate >= 95% within 10%)
* ``moe_grouped_gemm`` (target: >= 95% within 6%)
* ``gemm`` (QKV/O/up/down/lm-head/... projections; target: >= 95% within 5%)
* fidelity: median |surrogate - forest| / forest on the same rows (target <= 2%)

CUDA-event and kernel-only (``@kernel_only``) measurements are reported separately. For
context every group also reports the measurement noise: the share of rows within the
threshold of the leave-one-out median of *repeated measurements of the same
configuration* (``replicates``); where a device was profiled twice, once with CUDA events
and once kernel-only, how often the two runs of one configuration agree within the
threshold once the op's launch overhead is taken out (``cross_measurement``, GEMMs and MoE:
the kernel-only time against the CUDA-event time less the median difference of its op and
shape; not attention, whose CUDA-event runs also time per-batch work, so the two runs
differ by more than a constant); for MoE, the near-repeat ceiling per model, timing and TP
(``near_repeats``: rows with the same inputs and a busiest expert within 3%, see
``benchmarks/moe_gemm_check.py``) beside the model's share per model and TP
(``by_model_tp``); and the accuracy split by the measurement's own repetition spread
(``rel_std <= 2%`` vs ``> 2%``).

Usage: ``python benchmarks/predictor_accuracy.py --json [--data ROOT] [--out DIR] [--device
DEV ...]`` (A800 and H800 by default; ``--device all`` takes every device folder, A100, H100
and RTX PRO 6000 included); ``--noise-only`` prints the noise figures alone (seconds, no
training); ``--seed N`` draws another split (and network seeds); ``--group G`` scores one
group only (repeatable), e.g. ``--device h800 --group moe_grouped_gemm --seed 1`` in ~2 min.

``--skew`` runs the skew experiment instead: the attention test rows of the heterogeneous
and mixed batches split into terciles of the coefficient of variation of their sequence
lengths (query + context tokens per sequence; ``frontier_jax.predict.train.length_cv``), and
per tercile the error of the distributional-feature forest and its surrogate, of the
single-proxy forest (Vidur-style: total / mean tokens only) and of the fitted roofline (a
launch overhead plus the roofline time times a slowdown, both fitted per op on the training
rows by least relative squared error).
``ROOT`` is the shared data folder (default ``$FRONTIER_SHARED_DATA`` or ``../shared/data``
next to the repository); the script prints ``{"skipped": ...}`` when it is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "benchmarks"))

from moe_gemm_check import measured_rows, near_repeat_ceiling  # noqa: E402

from frontier_jax.predict.importers import load_profiles  # noqa: E402
from frontier_jax.predict.train import eval_predictors, holdout_mask, train_predictors  # noqa: E402

GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj", "lm_head_linear",
            "mtp_fusion_proj", "share_expert_up_proj", "share_expert_down_proj", "attn_pre_proj_qkv",
            "attn_pre_proj_wq", "attn_wq_proj")
ATTN_OPS = ("attn_prefill", "attn_decode")
MOE_OPS = ("moe_grouped_gemm",)
TARGETS = {"attention_heterogeneous": 0.10, "attention_mixed": 0.10, "moe_grouped_gemm": 0.06, "gemm": 0.05}
TARGET_SHARE = 0.95
FIDELITY_TARGET = 0.02


def _within(pred, true, thr):
    r = np.abs(np.asarray(pred) / np.asarray(true) - 1.0)
    return float(np.mean(r <= thr)) if len(r) else None


def _acc(pred, true, thr):
    r = np.abs(np.asarray(pred) / np.asarray(true) - 1.0)
    if not len(r):
        return None
    return {"median_rel_err": round(float(np.median(r)), 4), f"within_{int(thr * 100)}": round(float(np.mean(r <= thr)), 4),
            "within_5": round(float(np.mean(r <= 0.05)), 4), "within_10": round(float(np.mean(r <= 0.10)), 4),
            "within_20": round(float(np.mean(r <= 0.20)), 4)}


def _group_rows(rows, group):
    base = rows["op"].str.split("@").str[0]
    if group == "attention_heterogeneous":
        return base.isin(ATTN_OPS) & (rows["batch_kind"] == "heterogeneous")
    if group == "attention_mixed":
        return base.isin(ATTN_OPS) & (rows["batch_kind"] == "mixed")
    if group == "moe_grouped_gemm":
        return base.isin(MOE_OPS)
    return base.isin(GEMM_OPS)


def _family(group):
    """The frame (operator family) of a target group."""
    return {"gemm": "linear", "moe_grouped_gemm": "moe"}.get(group, "attention")


def _replicate_ceiling(frames, group, thr):
    """Share of repeated measurements of one configuration within ``thr`` of the median of
    the other repeats (leave-one-out): how repeatable the data itself is."""
    df = frames.get(_family(group))
    if df is None:
        return {}
    sel = _group_rows(df, group)
    out = {}
    for mt, d in df[sel].groupby(df.loc[sel, "op"].str.contains("@kernel_only").map({True: "kernel_only", False: "cuda_event"})):
        dev = []
        for _, t in d.groupby(["op", "config_key"])["time_s"]:
            v = t.to_numpy()
            if len(v) < 2:
                continue
            for i in range(len(v)):
                dev.append(abs(v[i] / np.median(np.delete(v, i)) - 1.0))
        out[mt] = {"replicate_rows": len(dev), "within_thr": round(float(np.mean(np.array(dev) <= thr)), 4) if dev else None}
    return out


def _cross_measurement(frames, group, thr):
    """Kernel-only against CUDA-event runs of the same configurations (two profiling runs):
    share within ``thr`` of ``kernel = cuda_event - offset``, the offset being the median
    difference over the op and shape (the launch overhead the kernel-only run leaves out)."""
    df = None if group.startswith("attention") else frames.get(_family(group))
    if df is None:
        return {}
    d = df[_group_rows(df, group)]
    d = d.assign(base=d["op"].str.split("@").str[0], ko=d["op"].str.contains("@kernel_only"))
    k = d[d["ko"]].groupby(["base", "config_key"])["time_s"].median().rename("k")
    c = d[~d["ko"]].groupby(["base", "config_key"])["time_s"].median().rename("c")
    j = pd.concat([k, c], axis=1).dropna()
    if not len(j):
        return {}
    shape = j.index.get_level_values(1).str.replace(r"\|(m|q)=.*$", "", regex=True)
    off = (j["c"] - j["k"]).groupby([j.index.get_level_values(0), shape]).transform("median")
    dev = np.abs((j["c"] - off) / j["k"] - 1.0)
    return {"configurations": int(len(j)), "within_thr": round(float(np.mean(dev <= thr)), 4),
            "within_5": round(float(np.mean(dev <= 0.05)), 4),
            "within_10": round(float(np.mean(dev <= 0.10)), 4)}


def _near_repeats(frames, group) -> dict:
    """MoE only: the near-repeat ceiling per (model, timing, TP) (moe_gemm_check's: rows with
    the same inputs and a busiest expert within 3%), where the data has near-repeats."""
    if group != "moe_grouped_gemm" or frames.get("moe") is None:
        return {}
    c = near_repeat_ceiling(measured_rows(frames["moe"]))
    out = {f"{m}/{t}/tp{tp}": {"rows": int(r["near_repeat_rows"]), "within_thr": float(r["near_repeats_within"])}
           for (_, m, t, tp), r in c.iterrows()}
    # every near-repeat row of a timing pooled (the README's one-line ceiling)
    for t, g in c.groupby(level="timing"):
        n = g["near_repeat_rows"].to_numpy(float)
        out[f"all/{t}"] = {"rows": int(n.sum()),
                           "within_thr": round(float(n @ g["near_repeats_within"].to_numpy(float) / n.sum()), 4)}
    return {"near_repeats": out}


def _present(compute: Path, devices, found: dict):
    """Yields (device, its profile folder) for the devices that have one; the others are
    recorded in ``found`` as skipped."""
    for dev in devices:
        path = compute / dev
        if path.exists():
            yield dev, path
        else:
            found[dev] = {"skipped": f"{path} not found"}


def noise(root: Path, devices=("a800", "h800")) -> dict:
    """The noise figures alone, per device and target group (no training)."""
    compute = root / "frontier" / "data" / "profiling" / "compute"
    out = {"data": str(compute), "devices": {}}
    for dev, path in _present(compute, devices, out["devices"]):
        frames = load_profiles(path)
        out["devices"][dev] = {g: {"threshold": thr, "replicates": _replicate_ceiling(frames, g, thr),
                                   "cross_measurement": _cross_measurement(frames, g, thr),
                                   **_near_repeats(frames, g)}
                               for g, thr in TARGETS.items()}
    return out


def group_ops(group: str) -> tuple[str, ...]:
    """The operator keys (base names) a group of :data:`TARGETS` scores."""
    return {"moe_grouped_gemm": MOE_OPS, "gemm": GEMM_OPS}.get(group, ATTN_OPS)


def run(root: Path, out_dir: Path, devices=("a800", "h800"), seed: int = 0, quick: bool = False,
        surrogate: dict | None = None, only=tuple(TARGETS)) -> dict:
    compute = root / "frontier" / "data" / "profiling" / "compute"
    result = {"data": str(compute), "split": {"seed": seed, "test_fraction": 0.2, "unit": "configuration"},
              "targets": {"share": TARGET_SHARE, "thresholds": TARGETS, "fidelity": FIDELITY_TARGET},
              "devices": {}}
    ops = [op for op in ATTN_OPS + MOE_OPS + GEMM_OPS if any(op in group_ops(g) for g in only)]
    sp = {"steps": 1500, "width": 64} if quick else None
    if surrogate:
        sp = {**(sp or {}), **surrogate}
    for dev, path in _present(compute, devices, result["devices"]):
        t0 = time.time()
        frames = load_profiles(path)
        card = train_predictors(frames, "auto", out_dir / dev, seed=seed, ops=ops, surrogate_params=sp,
                                source_path=path)
        t_train = time.time() - t0
        ev = eval_predictors(out_dir / dev, frames, split="test", ops=ops, return_rows=True)
        rows = ev.pop("_rows")
        groups = {}
        for group, thr in TARGETS.items():
            if group not in only:
                continue
            g = rows[_group_rows(rows, group)]
            if not len(g):
                df = frames.get(_family(group))
                n_all = 0 if df is None else int(_group_rows(df, group).sum())
                groups[group] = {"by_measurement": {}, "rows_in_data": n_all,
                                 "note": "no test rows: every configuration of this group is on the training side"}
                continue
            per_mt = {}
            mt_col = g["op"].str.contains("@kernel_only").map({True: "kernel_only", False: "cuda_event"})
            for mt, d in g.groupby(mt_col):
                t = d["time_s"].to_numpy()
                entry = {"rows": int(len(d)), "threshold": thr}
                for k in ("forest", "surrogate", "proxy"):
                    entry[k] = _acc(d[k + "_s"], t, thr)
                entry["fidelity_median"] = round(float(np.median(np.abs(d["surrogate_s"] / d["forest_s"] - 1))), 4)
                share = entry["surrogate"][f"within_{int(thr * 100)}"]
                entry["target_met"] = bool(share >= TARGET_SHARE and entry["fidelity_median"] <= FIDELITY_TARGET)
                rep = {}
                for name, s in (("rel_std<=2%", d["rel_std"] <= 0.02), ("rel_std>2%", d["rel_std"] > 0.02)):
                    if s.any():
                        rep[name] = {"rows": int(s.sum()),
                                     **{k: round(_within(d.loc[s, k + "_s"], t[s.to_numpy()], thr), 4)
                                        for k in ("forest", "surrogate", "proxy")}}
                entry["by_repeatability"] = rep
                if group == "moe_grouped_gemm":
                    entry["slices"] = {bk: {"rows": int(len(dd)), **{k: round(_within(dd[k + "_s"], dd["time_s"], thr), 4)
                                                                   for k in ("forest", "surrogate", "proxy")}}
                                       for bk, dd in d.groupby("batch_kind")}
                    entry["by_model_tp"] = {f"{m}/tp{int(tp)}": {"rows": int(len(dd)), **{k: _acc(dd[k + "_s"], dd["time_s"], thr)
                                                                                        for k in ("forest", "surrogate", "proxy")}}
                                            for (m, tp), dd in d.groupby(["model", "tp"])}
                per_mt[mt] = entry
            groups[group] = {"by_measurement": per_mt, "replicates": _replicate_ceiling(frames, group, thr),
                             "cross_measurement": _cross_measurement(frames, group, thr),
                             **_near_repeats(frames, group)}
        per_op = {op: {k: r.get(k) for k in ("rows", "forest", "surrogate", "proxy", "fidelity_median")}
                  for op, r in ev["ops"].items()}
        result["devices"][dev] = {"train_seconds": round(t_train, 1), "groups": groups, "ops": per_op,
                                  "models_trained": len(card["models"]), "skipped_ops": card["skipped_ops"]}
    return result


SKEW_GROUPS = ("attention_heterogeneous", "attention_mixed")


def _fit_roofline(roof: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """(overhead a, slowdown b) of t ~ a + b x roofline, least relative squared error (a
    launch overhead and an efficiency, the two knobs a fitted roofline has)."""
    A = np.stack([1.0 / t, roof / t], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    return float(a), float(b)


def skew(root: Path, out_dir: Path, devices=("a800",), seed: int = 0, quick: bool = False) -> dict:
    """Error of each predictor on the attention test rows, per tercile of the batch's length
    CV (see the module docstring)."""
    compute = root / "frontier" / "data" / "profiling" / "compute"
    result = {"data": str(compute), "split": {"seed": seed, "test_fraction": 0.2, "unit": "configuration"},
              "skew_measure": "CV of query + context tokens per sequence", "devices": {}}
    sp = {"steps": 1500, "width": 64} if quick else None
    for dev, path in _present(compute, devices, result["devices"]):
        frames = load_profiles(path)
        train_predictors(frames, "auto", out_dir / dev, seed=seed, ops=list(ATTN_OPS), surrogate_params=sp,
                         source_path=path)
        rows = eval_predictors(out_dir / dev, frames, split="all", ops=list(ATTN_OPS), return_rows=True)["_rows"]
        test = holdout_mask(rows["config_key"], seed, 0.2)
        rows["roofline_s"] = np.nan
        for op, d in rows[~test].groupby("op"):  # per op, on its training rows only
            a, b = _fit_roofline(d["roofline_feature_s"].to_numpy(), d["time_s"].to_numpy())
            on = rows["op"] == op
            rows.loc[on, "roofline_s"] = a + b * rows.loc[on, "roofline_feature_s"]
        per = {}
        for group in SKEW_GROUPS:
            g = rows[test & _group_rows(rows, group)]
            if not len(g):
                per[group] = {"rows": 0}
                continue
            edges = np.quantile(g["len_cv"], [1 / 3, 2 / 3])
            cut = np.digitize(g["len_cv"], edges)
            out = {}
            for k, name in enumerate(("low", "middle", "high")):
                d = g[cut == k]
                entry = {"rows": int(len(d)), "len_cv": [round(float(d["len_cv"].min()), 3),
                                                         round(float(d["len_cv"].max()), 3)]}
                for pred in ("forest", "surrogate", "proxy", "roofline"):
                    entry[pred] = _acc(d[pred + "_s"], d["time_s"], 0.10)
                out[name] = entry
            per[group] = out
        result["devices"][dev] = per
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    ap.add_argument("--data", default=None, help="shared data root (default $FRONTIER_SHARED_DATA or ../shared/data)")
    ap.add_argument("--out", default=None, help="where to write the predictor sets (default: a temp folder)")
    ap.add_argument("--device", action="append",
                    help="a device folder of the Frontier profiles (a800, h800, a100, h100, rtx_pro_6000; "
                         "repeatable; 'all': every folder; default a800 and h800)")
    ap.add_argument("--quick", action="store_true", help="small surrogates (smoke run)")
    ap.add_argument("--noise-only", action="store_true",
                    help="only the data's noise figures (replicates, cross-measurement): no training")
    ap.add_argument("--width", type=int, default=None, help="surrogate width (default: train's)")
    ap.add_argument("--depth", type=int, default=None, help="surrogate depth (default: train's)")
    ap.add_argument("--seed", type=int, default=0,
                    help="split and training seed (default 0, the README's tables)")
    ap.add_argument("--group", action="append", choices=sorted(TARGETS),
                    help="score only this group (repeatable; default all; --skew and --noise-only ignore it). Fewer groups train fewer "
                         "operators, and the shared random stream then draws other augmented copies")
    ap.add_argument("--skew", action="store_true",
                    help="the skew experiment: attention error per tercile of batch length CV")
    args = ap.parse_args(argv)
    arch = {k: v for k, v in (("width", args.width), ("depth", args.depth)) if v} or None
    root = Path(args.data or os.environ.get("FRONTIER_SHARED_DATA") or REPO.parent / "shared" / "data")
    compute = root / "frontier" / "data" / "profiling" / "compute"
    if not compute.exists():
        print(json.dumps({"skipped": f"no Frontier profiles under {root}"}))
        return 0
    devices = tuple(args.device or (("a800",) if args.skew else ("a800", "h800")))
    if "all" in devices:
        devices = tuple(sorted(p.name for p in compute.iterdir() if p.is_dir()))
    groups = tuple(args.group or TARGETS)
    t0 = time.time()
    if args.noise_only:
        res = noise(root, devices)
    elif args.skew:
        with tempfile.TemporaryDirectory() as tmp:
            res = skew(root, Path(args.out or tmp), devices, args.seed, quick=args.quick)
    elif args.out:
        res = run(root, Path(args.out), devices, args.seed, quick=args.quick, surrogate=arch, only=groups)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            res = run(root, Path(tmp), devices, args.seed, quick=args.quick, surrogate=arch, only=groups)
    res["wall_seconds"] = round(time.time() - t0, 1)
    if not args.noise_only:
        res["surrogate_arch"] = arch or "train's default"
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
