"""GEMM surrogate distillation probes (issue 18 item 1; the README's table "The H800 GEMM gap").

The surrogate of a GEMM is a network distilled from the operator's forest. This script
refits only the networks, on each operator's own distillation set, and scores them on the
test rows of the predictor split (share within 5% of the measurement, CUDA events and
kernel-only apart), beside the forest and the shipped network:

    python benchmarks/gemm_distillation_probe.py --device h800 [--ops OP,...] [--augment JSON]
        [--variant JSON] [--work DIR]
    python benchmarks/gemm_distillation_probe.py --device h800 --interpolate

1. Once per device and ``--augment`` (cached under ``--work``; ~870 s for H800 here), the
   device's GEMM-family predictor set is trained as ``predictors train`` does, every operator
   of the family in one pass (``--augment``: overrides of
   ``frontier_jax.predict.train.AUGMENT``), keeping each operator's distillation set.
   Without ``--variant`` the script scores that set's networks.
2. ``--variant`` refits the networks on the kept sets: ``fit_surrogate`` settings (``width``,
   ``depth``, ``steps``, ...) and ``seeds`` (a list: the mean of their log times),
   ``teacher`` (``measured``: the training rows as measured, nothing else; ``mixed``: the
   training rows as measured, the forest's labels on the augmented copies), ``redraw``
   (true: a new draw of the augmented copies, labelled by the forest) and ``align`` (with
   ``redraw``: the share of copies snapped to their row's token alignment, the profile's grid).

``--interpolate`` scores a model-free baseline on every GEMM test row instead: each operator
and shape interpolated along the token count (log-log) between its training rows.

The data root is ``--data``, ``$FRONTIER_SHARED_DATA`` or ``../shared/data``; the script
prints ``{"skipped": ...}`` when the profiles are absent.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from predictor_accuracy import GEMM_OPS  # noqa: E402

from frontier_jax.predict import features as F  # noqa: E402
from frontier_jax.predict import train as T  # noqa: E402
from frontier_jax.predict.importers import load_profiles  # noqa: E402
from frontier_jax.predict.surrogate import fit_surrogate, predict_np  # noqa: E402

DEFAULT_OPS = ("attn_pre_proj", "mlp_up_proj", "attn_post_proj@kernel_only", "mlp_down_proj@kernel_only")
THRESHOLD = 0.05
SEED = 0


def _within(pred, true) -> np.ndarray:
    return np.abs(np.asarray(pred) / np.asarray(true) - 1.0) <= THRESHOLD


def _timing(op: str) -> str:
    return "kernel_only" if op.endswith("@kernel_only") else "cuda_event"


def dump(frames: dict, augment: dict | None, work: Path) -> Path:
    """Trains the family's set once (cached) and keeps each operator's distillation set."""
    if (work / "rows.pkl").exists():
        return work
    orig = T.fit_surrogate

    def keep(op, family, X, y, **kw):
        np.savez(work / f"distil_{T.safe_name(op)}.npz", X=X, y=y)
        return orig(op, family, X, y, **kw)

    work.mkdir(parents=True, exist_ok=True)
    T.fit_surrogate = keep
    try:  # progress on stderr: stdout is the JSON
        with contextlib.redirect_stdout(sys.stderr):
            T.train_predictors(frames, "auto", work / "set", seed=SEED, augment=augment, verbose=True)
    finally:
        T.fit_surrogate = orig
    ev = T.eval_predictors(work / "set", frames, split="test", return_rows=True)
    ev["_rows"].to_pickle(work / "rows.pkl")
    return work


def _redraw(op, z, train: pd.DataFrame, X_train, augment: dict, align: float, work: Path):
    """The distillation set with a new draw of its augmented copies (labelled by the forest);
    the training rows and the scale-up anchors stay."""
    names = F.FEATURE_NAMES["linear"]
    ap = {**T.AUGMENT, **augment}
    m = (train["op"] == op).to_numpy()
    ntr = int(m.sum())
    copies = int(max(1, min(ap["copies"], ap["max_points"] // ntr)))
    anchors = slice(ntr + ntr * copies, None)  # dump layout: training rows, copies, scale-ups
    rng = np.random.default_rng(SEED)
    sub = train.loc[m]
    aug = T.augment_rows("linear", sub, copies, ap["sigma"], rng)
    if align > 0:
        step = np.gcd(np.maximum(np.tile(sub["m"].to_numpy(int), copies), 1), 256)
        snapped = np.maximum(step, np.round(aug["m"].to_numpy() / step) * step).astype(int)
        aug["m"] = np.where(rng.random(len(aug)) < align, snapped, aug["m"].to_numpy())
    cols = T.op_inputs("linear", op, names)
    X = np.concatenate([T._inputs(X_train[m], cols), T._inputs(F.frame_features("linear", aug), cols)])
    forest, _ = T._load_forests(work / "set", op)
    return {"X": np.concatenate([X, z["X"][anchors]]),
            "y": np.concatenate([forest.predict_log(X), z["y"][anchors]])}


def probe(df: pd.DataFrame, ops: list[str], work: Path, variant: dict, augment: dict) -> dict:
    """Per timing: test rows, share within 5% of the refit (``variant``) or shipped networks,
    of the shipped networks and of the forest, and the networks' median fidelity to the
    forest on the test rows and on the distillation set."""
    variant = dict(variant)
    seeds = variant.pop("seeds", [SEED])
    teacher = variant.pop("teacher", "forest")
    redraw, align = variant.pop("redraw", False), variant.pop("align", 0.0)
    te = T.holdout_mask(df["config_key"], SEED, 0.2)
    test, train = df.loc[te].reset_index(drop=True), df.loc[~te].reset_index(drop=True)
    X_test, X_train = F.frame_features("linear", test), F.frame_features("linear", train)
    names = F.FEATURE_NAMES["linear"]
    rows = pd.read_pickle(work / "rows.pkl")
    weights = T.load_predictor_set(work / "set")["weights"] if not variant and teacher == "forest" and not redraw else None
    acc: dict = {}
    for op in ops:
        z = dict(np.load(work / f"distil_{T.safe_name(op)}.npz"))
        if redraw:
            z = _redraw(op, z, train, X_train, augment, align, work)
        if teacher != "forest":
            mt = (train["op"] == op).to_numpy()
            measured = np.log(train.loc[mt, "time_s"].to_numpy(float))
            z = ({"X": z["X"][: mt.sum()], "y": measured} if teacher == "measured"
                 else {"X": z["X"], "y": np.concatenate([measured, z["y"][mt.sum():]])})
        m = (test["op"] == op).to_numpy()
        Xo = T._inputs(X_test[m], T.op_inputs("linear", op, names))
        if weights is not None:
            nets = [weights[op]]
        else:
            ri = names.index(T.ratio_feature("linear", op))
            sp = {**T.surrogate_settings("linear"), **variant}
            nets = [fit_surrogate(op, "linear", z["X"], z["y"], feature_names=names, ratio_index=ri,
                                  seed=s, **sp).weights for s in seeds]
        pred = np.exp(np.mean([np.log(predict_np(w, Xo)) for w in nets], 0))
        fit = np.mean([np.log(predict_np(w, z["X"])) for w in nets], 0)
        r = rows[rows["op"] == op]
        t = test.loc[m, "time_s"].to_numpy()
        if not np.allclose(r["time_s"].to_numpy(), t):
            raise SystemExit(f"{op}: the cached rows are not this split's (delete {work})")
        a = acc.setdefault(_timing(op), {"rows": 0, "probe": 0, "shipped": 0, "forest": 0, "fid": [], "fit": []})
        a["rows"] += len(t)
        a["probe"] += int(_within(pred, t).sum())
        a["shipped"] += int(_within(r["surrogate_s"], t).sum())
        a["forest"] += int(_within(r["forest_s"], t).sum())
        a["fid"].extend(np.abs(pred / r["forest_s"].to_numpy() - 1.0))
        a["fit"].extend(np.abs(np.exp(fit - z["y"]) - 1.0))
    return {k: {"test_rows": a["rows"], "probe_within_5": round(a["probe"] / a["rows"], 4),
                "shipped_within_5": round(a["shipped"] / a["rows"], 4),
                "forest_within_5": round(a["forest"] / a["rows"], 4),
                "fidelity_median": round(float(np.median(a["fid"])), 4),
                "distillation_fit_median": round(float(np.median(a["fit"])), 4)} for k, a in acc.items()}


def interpolate(df: pd.DataFrame) -> dict:
    """Model-free baseline: every GEMM test row from its operator and shape's training rows,
    interpolated in (log tokens, log time); shapes with fewer than two training rows are left
    out."""
    g = df[df["op"].str.split("@").str[0].isin(GEMM_OPS)].assign(test=T.holdout_mask(df["config_key"], SEED, 0.2)[
        df["op"].str.split("@").str[0].isin(GEMM_OPS).to_numpy()])
    pred = pd.Series(np.nan, index=g.index)
    for _, s in g.groupby(["model", "op", "tp", "n", "k", "dtype_bytes"]):
        tr, ts = s[~s["test"]].sort_values("m"), s[s["test"]]
        if len(tr) >= 2 and len(ts):
            pred[ts.index] = np.exp(np.interp(np.log(ts["m"].to_numpy(float)), np.log(tr["m"].to_numpy(float)),
                                              np.log(tr["time_s"].to_numpy(float))))
    out = {}
    ts = g[g["test"] & pred.notna()]
    for k, d in ts.groupby(ts["op"].map(_timing)):
        out[k] = {"test_rows": len(d), "interpolation_within_5": round(float(_within(pred[d.index], d["time_s"]).mean()), 4),
                  "left_out": int((g["test"] & pred.isna() & (g["op"].map(_timing) == k)).sum())}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="h800", help="a device folder of the Frontier profiles")
    ap.add_argument("--ops", default=",".join(DEFAULT_OPS),
                    help="GEMM operator keys to score, comma-separated ('gemm': every GEMM operator)")
    ap.add_argument("--augment", default="{}", help="JSON overrides of train.AUGMENT for the trained set")
    ap.add_argument("--variant", default="{}", help="JSON: how to refit the networks (see the module doc)")
    ap.add_argument("--interpolate", action="store_true", help="the model-free baseline instead")
    ap.add_argument("--data", default=None, help="shared data root (default $FRONTIER_SHARED_DATA or ../shared/data)")
    ap.add_argument("--work", default=None, help="cache of trained sets (default: $TMPDIR/gemm_distillation_probe)")
    args = ap.parse_args(argv)
    root = Path(args.data or os.environ.get("FRONTIER_SHARED_DATA") or REPO.parent / "shared" / "data")
    path = root / "frontier" / "data" / "profiling" / "compute" / args.device
    if not path.exists():
        print(json.dumps({"skipped": f"{path} not found"}))
        return 0
    t0 = time.time()
    df = load_profiles(path)["linear"]
    if args.interpolate:
        res = {"interpolation": interpolate(df)}
    else:
        ops, augment, variant = args.ops.split(","), json.loads(args.augment), json.loads(args.variant)
        if ops == ["gemm"]:
            ops = sorted(o for o in df["op"].unique() if o.split("@")[0] in GEMM_OPS)
        unknown = sorted(set(ops) - set(df["op"]))
        if unknown:
            raise SystemExit(f"--ops: no rows for {unknown} on {args.device}")
        key = hashlib.sha1(json.dumps([args.device, augment], sort_keys=True).encode()).hexdigest()[:10]
        work = Path(args.work or Path(os.environ.get("TMPDIR", "/tmp")) / "gemm_distillation_probe") / key
        dump({"linear": df}, augment, work)
        res = {"ops": ops, "augment": augment, "variant": variant, "by_timing": probe(df, ops, work, variant, augment)}
    res["device"], res["wall_seconds"] = args.device, round(time.time() - t0, 1)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
