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


def compare_runs(run1, run2) -> dict:
    """``{"ops": {op: stats}, "all": stats}`` over the configurations both runs measured."""
    a, b = load_profiles(run1, "native"), load_profiles(run2, "native")
    parts = []
    for fam in sorted(set(a) & set(b)):
        m = a[fam][["op", "config_key", "time_s"]].merge(
            b[fam][["op", "config_key", "time_s"]], on=["op", "config_key"], suffixes=("_1", "_2"))
        parts.append(m)
    m = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["op", "time_s_1", "time_s_2"])
    r = (m["time_s_1"] - m["time_s_2"]).abs().to_numpy(float) / m["time_s_2"].to_numpy(float)
    ops = {op: _stats(r[(m["op"] == op).to_numpy()]) for op in sorted(m["op"].unique())}
    return {"run1": str(run1), "run2": str(run2), "ops": ops, "all": _stats(r)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="run-to-run noise of two profiling runs")
    ap.add_argument("run1")
    ap.add_argument("run2")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    res = compare_runs(a.run1, a.run2)
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
