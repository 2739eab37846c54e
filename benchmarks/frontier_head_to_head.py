"""Head to head with Frontier's own operator predictors, trained and scored on the same rows.

Frontier (github.com/NetX-lab/Frontier, commit a4b22df8, MIT) predicts each operator with a
scikit-learn ``RandomForestRegressor`` chosen by a grid search (``n_estimators`` 250/500/750,
``max_depth`` 8/16/32, ``min_samples_split`` 2/5/10, 10-fold unshuffled ``KFold``, 2 folds
under 10 rows, scored by its mean absolute percentage error, refit on all rows) on the raw
``time_stats.<op>.median`` (ms, no log). Its per-operator inputs, re-implemented here from its
training code (``SklearnExecutionTimePredictor._train_model``, ``_train_compute_models``,
``SklearnMoEExecutionTimePredictor._train_moe_models``):

* GEMMs (``linear_op.csv``; ``attn_pre_proj``, ``attn_post_proj``, ``mlp_up_proj``,
  ``mlp_down_proj``, ``lm_head_linear``, ...): one forest per file, operator and TP on
  ``num_tokens`` alone (whole-row duplicates dropped first);
* ``moe_grouped_gemm`` (``moe.csv``): one forest per file, TP and EP on its 14 load
  features (``total_routed_tokens``, ``num_experts_per_device``, ``hidden_dim``,
  ``expert_hidden_dim``, ``router_topk``, ``model_expansion_ratio``,
  ``tokens_per_expert_avg``, ``tokens_to_experts_ratio``, ``expert_utilization``,
  ``min_load_ratio``, ``load_imbalance_cv``, ``max_load_ratio``, ``load_entropy``,
  ``load_gini_coefficient``), every timing context pooled, repeats kept.

Kernel-only files train their own forests, as in Frontier. Frontier itself keeps no test
rows (it fits on everything); here each forest is fitted on the training rows of the
project's deterministic per-configuration 80/20 split (seed 0, ``train.holdout_mask``) and
both sides are scored on exactly the same test rows (file, row, operator). The project's
forest and surrogate are trained by ``train_predictors`` with its defaults on the same
training rows. A test row whose slice (file, operator, TP[, EP]) has no training row cannot be
priced by Frontier's scheme and is counted apart (``frontier_unpriced``).

``--grid small`` (the default, for this 2-core machine) searches ``max_depth`` x
``min_samples_split`` at ``n_estimators`` 250 (9 settings instead of 27); ``--grid full`` is
Frontier's grid. Attention is not compared: Frontier's attention models price a batch through
its simulator's query path (rounded KV sizes, a 1.1 factor for multi-request decode, the
mixed-batch features), which this script does not re-implement.

    python benchmarks/frontier_head_to_head.py [--data ROOT] [--device a800 --device h800] [--grid small|full]
        [--group gemm|moe] [--json]

prints the README's table (``--json``: everything, per model and TP too); ``table(json.load(f))``
renders a saved JSON.
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

from moe_gemm_check import score  # noqa: E402
from predictor_accuracy import GEMM_OPS, TARGETS  # noqa: E402

from frontier_jax.predict.importers import load_profiles  # noqa: E402
from frontier_jax.predict.train import eval_predictors, holdout_mask, train_predictors  # noqa: E402

MOE_OP = "moe_grouped_gemm"
# the operators and thresholds of the project's own accuracy table, so the two tables agree
THRESHOLDS = {k: TARGETS[k] for k in ("gemm", MOE_OP)}
MOE_LOAD_FEATURES = ["total_routed_tokens", "num_experts_per_device", "hidden_dim", "expert_hidden_dim",
                     "router_topk", "model_expansion_ratio", "tokens_per_expert_avg", "tokens_to_experts_ratio",
                     "expert_utilization", "min_load_ratio", "load_imbalance_cv", "max_load_ratio",
                     "load_entropy", "load_gini_coefficient"]
GRIDS = {"full": {"n_estimators": [250, 500, 750], "max_depth": [8, 16, 32], "min_samples_split": [2, 5, 10]},
         "small": {"n_estimators": [250], "max_depth": [8, 16, 32], "min_samples_split": [2, 5, 10]}}


def _frontier_mape(y_true, y_pred) -> float:
    """Frontier's grid-search score (percent; a zero truth scores 0 when predicted 0, else 100)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    nz = y_true != 0
    err = np.where(nz, np.abs((y_true - y_pred) / np.where(nz, y_true, 1.0)) * 100, np.where(y_pred == 0, 0, 100))
    return float(np.mean(err))


def frontier_forest(X: pd.DataFrame, y: pd.Series, grid: dict):
    """Frontier's ``_train_model``: NaN rows dropped, grid search over unshuffled folds (10, or
    2 under 10 rows), the best setting refit on every row."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV

    ok = ~(X.isna().any(axis=1) | y.isna())
    X, y = X[ok], y[ok]
    cv = 2 if len(X) < 10 else 10
    if len(X) < 2:
        est = RandomForestRegressor(n_estimators=grid["n_estimators"][0], random_state=0).fit(X, y)
        return est
    gs = GridSearchCV(RandomForestRegressor(random_state=0), grid, cv=cv, n_jobs=2,
                      scoring=make_scorer(_frontier_mape, greater_is_better=False))
    gs.fit(X, y)
    return gs.best_estimator_


def _test_rows(frame: pd.DataFrame, ops) -> pd.DataFrame:
    """(source, source_row, op, test) of the tidy rows of ``ops`` (base names, any timing)."""
    base = frame["op"].str.split("@").str[0]
    d = frame[base.isin(ops)]
    return d.assign(test=holdout_mask(d["config_key"], 0), base=base[base.isin(ops)])[
        ["source", "source_row", "op", "base", "test", "time_s", "tp", "model"]]


# group -> (profile family, operator base names, substring of its profile files)
FAMILY_OPS = {"gemm": ("linear", GEMM_OPS, "linear_op"), "moe": ("moe", (MOE_OP,), "moe")}


def frontier_predictions(folder: Path, frames: dict, grid: dict, log, groups=tuple(FAMILY_OPS)) -> pd.DataFrame:
    """Frontier's prediction (seconds) of every test row of the GEMM and GroupedGEMM groups,
    trained on the training rows of its own slice; NaN where the slice has no training row.
    ``folder``: the device folder the frames were loaded from (their ``source`` paths are
    relative to it). ``groups``: which of :data:`FAMILY_OPS` to price."""
    out = []
    for family, ops, _ in (FAMILY_OPS[g] for g in groups):
        if family not in frames:
            continue
        rows = _test_rows(frames[family], ops)
        for source, r in rows.groupby("source"):
            raw = pd.read_csv(folder / source, low_memory=False)
            for base, rr in r.groupby("base"):
                col = f"time_stats.{base}.median"
                test_idx = set(rr.loc[rr["test"], "source_row"])
                train_idx = rr.loc[~rr["test"], "source_row"].to_numpy()
                keys = ["num_tensor_parallel_workers"] + (["expert_parallel_size"] if family == "moe" else [])
                feats = MOE_LOAD_FEATURES if family == "moe" else ["num_tokens"]
                raw_ok = raw.assign(_row=raw.index)[raw[col].notna()]
                for slice_key, sl in raw_ok.groupby([raw_ok[k].fillna(1) for k in keys]):
                    tr = sl[sl["_row"].isin(train_idx)]
                    te = sl[sl["_row"].isin(test_idx)]
                    if not len(te):
                        continue
                    if family == "linear":  # _load_compute_df drops whole-row duplicates
                        tr = tr.drop(columns="_row").drop_duplicates().assign(_row=0)
                    if not len(tr):
                        pred = np.full(len(te), np.nan)
                    else:
                        t0 = time.perf_counter()
                        est = frontier_forest(tr[feats], tr[col], grid)
                        pred = np.maximum(0.0, est.predict(te[feats])) * 1e-3
                        log(f"  {source} {base} {dict(zip(keys, np.atleast_1d(slice_key), strict=True))}: "
                            f"{len(tr)} train, {len(te)} test rows ({time.perf_counter() - t0:.1f} s)")
                    out.append(pd.DataFrame({"source": source, "source_row": te["_row"].to_numpy(),
                                             "base": base, "frontier_s": pred}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(
        columns=["source", "source_row", "base", "frontier_s"])


def compare(root: Path, devices, grid_name: str, verbose: bool = False, only=tuple(FAMILY_OPS)) -> dict:
    compute = root / "frontier" / "data" / "profiling" / "compute"
    grid = GRIDS[grid_name]
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if verbose else (lambda s: None)
    result = {"frontier": {"repository": "https://github.com/NetX-lab/Frontier",
                           "commit": "a4b22df8211864bf229258ecdfbe680f048f2d77", "grid": grid,
                           "grid_name": grid_name},
              "split": {"seed": 0, "test_fraction": 0.2, "unit": "configuration"}, "devices": {}}
    for dev in devices:
        path = compute / dev
        if not path.exists():
            result["devices"][dev] = {"skipped": f"{path} not found"}
            continue
        t0 = time.time()
        frames = load_profiles(path, include=[FAMILY_OPS[g][2] for g in only])
        fr = frontier_predictions(path, frames, grid, log, only)
        t_frontier = time.time() - t0
        ops = [op for g in only for op in FAMILY_OPS[g][1]]
        with tempfile.TemporaryDirectory() as tmp:
            train_predictors(frames, out_dir=tmp, ops=ops, seed=0)
            rows = eval_predictors(tmp, frames, split="test", ops=ops, return_rows=True).pop("_rows")
        rows["base"] = rows["op"].str.split("@").str[0]
        rows["timing"] = np.where(rows["op"].str.contains("@kernel_only"), "kernel_only", "cuda_event")
        j = rows.merge(fr, on=["source", "source_row", "base"], how="left")
        groups = {}
        for (group, timing), g in j.groupby([np.where(j["base"] == MOE_OP, MOE_OP, "gemm"), "timing"]):
            thr = THRESHOLDS[group]
            priced = g["frontier_s"].notna()
            both = g[priced]
            entry = {"test_rows": int(len(g)), "frontier_unpriced": int((~priced).sum()), "threshold": thr,
                     "frontier": score(both["frontier_s"], both["time_s"], thr) if len(both) else None,
                     "forest": score(both["forest_s"], both["time_s"], thr) if len(both) else None,
                     "surrogate": score(both["surrogate_s"], both["time_s"], thr) if len(both) else None}
            entry["by_model_tp"] = {
                f"{m}/tp{int(tp)}": {"rows": int(len(s)), **{k: score(s[k + "_s"], s["time_s"], thr)[f"within_{round(thr * 100)}"]
                                                             for k in ("frontier", "forest", "surrogate")}}
                for (m, tp), s in both.groupby(["model", "tp"])}
            groups[f"{group}/{timing}"] = entry
        result["devices"][dev] = {"groups": groups, "frontier_seconds": round(t_frontier, 1),
                                  "total_seconds": round(time.time() - t0, 1)}
    return result


GROUP_NAMES = {"gemm/cuda_event": "GEMMs, CUDA events", "gemm/kernel_only": "GEMMs, kernel-only",
               "moe_grouped_gemm/cuda_event": "MoE GroupedGEMM, CUDA events",
               "moe_grouped_gemm/kernel_only": "MoE GroupedGEMM, kernel-only"}


def table(res: dict) -> str:
    """The README's Markdown table: share within the threshold per side, and the median / p95
    relative error of Frontier's forest against our surrogate."""
    lines = ["| device | group (threshold) | test rows | Frontier's forest | our forest | our surrogate "
             "| Frontier / surrogate median, p95 error |", "|---|---|---|---|---|---|---|"]
    for dev, d in res["devices"].items():
        for g, e in d.get("groups", {}).items():
            thr = round(e["threshold"] * 100)
            fr, fo, su = e["frontier"], e["forest"], e["surrogate"]
            if fr is None:
                continue
            rows = f"{e['test_rows']:,}" + (f" ({e['frontier_unpriced']} unpriced)" if e["frontier_unpriced"] else "")
            shares = " | ".join(f"{x[f'within_{thr}']:.1%}" for x in (fr, fo, su))
            errs = (f"{fr['median_rel_err']:.1%}/{fr['p95_rel_err']:.0%} vs "
                    f"{su['median_rel_err']:.1%}/{su['p95_rel_err']:.0%}")
            lines.append(f"| {dev.upper()} | {GROUP_NAMES.get(g, g)} ({thr}%) | {rows} | {shares} | {errs} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="shared data root (default $FRONTIER_SHARED_DATA or ../shared/data)")
    ap.add_argument("--device", action="append", help="a800 / h800 (repeatable; default both)")
    ap.add_argument("--grid", choices=sorted(GRIDS), default="small")
    ap.add_argument("--group", action="append", choices=sorted(FAMILY_OPS),
                    help="operator group to compare (repeatable; default both: gemm, moe)")
    ap.add_argument("--json", action="store_true", help="print the JSON (default: a table)")
    ap.add_argument("-v", "--verbose", action="store_true", help="progress per Frontier forest on stderr")
    a = ap.parse_args(argv)
    root = Path(a.data or os.environ.get("FRONTIER_SHARED_DATA") or REPO.parent / "shared" / "data")
    if not (root / "frontier" / "data" / "profiling" / "compute").exists():
        print(json.dumps({"skipped": f"no Frontier profiles under {root}"}))
        return 0
    t0 = time.time()
    res = compare(root, tuple(a.device or ("a800", "h800")), a.grid, a.verbose, tuple(a.group or FAMILY_OPS))
    res["wall_seconds"] = round(time.time() - t0, 1)
    if a.json:
        print(json.dumps(res, indent=1))
        return 0
    print(table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
