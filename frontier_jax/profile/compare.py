"""Run-to-run noise of two profiling runs of the same model and device.

Configurations present in both runs (same ``op`` and ``config_key``, i.e. same operator and
shape) are paired; per operator and overall: pairs, median ``|t1 - t2| / t2`` and the share
of pairs within 5% / 10%. No torch needed::

    python -m frontier_jax.profile.compare profiling/cpu/llama-512/run1 profiling/cpu/llama-512/run2
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from frontier_jax.predict.importers import load_profiles


def _stats(r: np.ndarray) -> dict:
    return {"pairs": int(len(r)), "median_rel_diff": float(np.median(r)) if len(r) else None,
            "within_5": float(np.mean(r <= 0.05)) if len(r) else None,
            "within_10": float(np.mean(r <= 0.10)) if len(r) else None}


def _why_unpaired(a: dict, b: dict) -> str:
    """A hint for two runs that share no configuration key (different dtype, device, model)."""
    for col in ("dtype_bytes", "device", "model"):
        va = {str(v) for df in a.values() if col in df.columns for v in df[col].unique()}
        vb = {str(v) for df in b.values() if col in df.columns for v in df[col].unique()}
        if va and vb and not va & vb:
            return f" ({col}: {sorted(va)} vs {sorted(vb)}; profile both with the same --dtype / device / model)"
    return ""


def compare_runs(run1, run2, stat: str = "time_s") -> dict:
    """``{"ops": {op: stats}, "all": stats}`` over the configurations both runs measured;
    ``stat``: the column compared (``time_s`` = median, ``min_s`` = fastest repetition)."""
    a, b = load_profiles(run1, "native"), load_profiles(run2, "native")
    parts = []
    for fam in sorted(set(a) & set(b)):
        if stat not in a[fam].columns or stat not in b[fam].columns:
            raise ValueError(f"{run1} / {run2}: column {stat}: missing in the {fam} profiles")
        m = a[fam][["op", "config_key", stat]].rename(columns={stat: "time_s"}).merge(
            b[fam][["op", "config_key", stat]].rename(columns={stat: "time_s"}), on=["op", "config_key"],
            suffixes=("_1", "_2"))
        parts.append(m)
    m = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["op", "time_s_1", "time_s_2"])
    if m.empty:
        raise ValueError(f"{run1} / {run2}: no configuration measured in both runs{_why_unpaired(a, b)}")
    r = (m["time_s_1"] - m["time_s_2"]).abs().to_numpy(float) / m["time_s_2"].to_numpy(float)
    ops = {op: _stats(r[(m["op"] == op).to_numpy()]) for op in sorted(m["op"].unique())}
    lr = np.log(m["time_s_1"].to_numpy(float) / m["time_s_2"].to_numpy(float))
    return {"run1": str(run1), "run2": str(run2), "stat": stat, "ops": ops, "all": _stats(r),
            "median_log_ratio_run1_run2": float(np.median(lr)) if len(lr) else None}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="run-to-run noise of two profiling runs")
    ap.add_argument("run1")
    ap.add_argument("run2")
    ap.add_argument("--stat", default="time_s", help="column to compare: time_s (median) or min_s")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    res = compare_runs(a.run1, a.run2, a.stat)
    if a.json:
        print(json.dumps(res, indent=1))
        return
    print(f"{'operator':28s} {'pairs':>5s} {'median':>8s} {'<=5%':>6s} {'<=10%':>6s}")
    for op, s in [*res["ops"].items(), ("ALL", res["all"])]:
        if s["pairs"]:
            print(f"{op:28s} {s['pairs']:5d} {100 * s['median_rel_diff']:7.1f}% "
                  f"{100 * s['within_5']:5.1f}% {100 * s['within_10']:5.1f}%")


if __name__ == "__main__":
    main()
