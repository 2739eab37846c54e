"""Prefill/decode disaggregation against co-located replicas on the same 16 GPUs, two workloads.

    python benchmarks/pd_vs_colocated.py [--json] [--out DIR]

Runs the shipped sweeps ``sweeps/pd_vs_colocated_pd.toml`` (every P:D split) and
``sweeps/pd_vs_colocated_colocated.toml`` (replicas x TP, two token budgets) on the two
workloads they share (wl = 0: long prompts, short outputs; wl = 1: short prompts, long
outputs; same offered rate for both layouts) and prints, per workload, the best co-located and
the best PD layout by goodput per GPU (requests/s meeting TTFT 1 s and TPOT 15 ms, per GPU;
ties broken by TPOT p90), with their TTFT and TPOT percentiles.
"""

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from frontier_jax.sweep import load_sweep, run_sweep

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = {0: "long prompts (median 2,048), short outputs (128), 140 req/s",
             1: "short prompts (median 256), long outputs (1,024), 60 req/s"}
COLS = ["layout", "goodput_rps_per_gpu", "slo_attainment", "ttft_p90", "tpot_p50", "tpot_p90",
        "mean_busy_frac"]


def best(df: pd.DataFrame) -> pd.Series:
    ok = df[df["status"] == "ok"]
    return ok.sort_values(["goodput_rps_per_gpu", "tpot_p90"], ascending=[False, True]).iloc[0]


def table_text(df: pd.DataFrame) -> str:
    """A best-layouts table as text: TTFT in s, TPOT in ms, the rest to 3 significant digits."""
    show = df.copy()
    show["ttft_p90"] = show["ttft_p90"].map(lambda x: f"{x:.3f} s")
    for c in ("tpot_p50", "tpot_p90"):
        show[c] = show[c].map(lambda x: f"{1e3 * x:.1f} ms")
    return show.to_string(index=False, float_format=lambda x: f"{x:.3g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "results" / "pd_vs_colocated"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    t0 = time.perf_counter()
    frames = {}
    for kind in ("colocated", "pd"):
        spec = load_sweep(REPO / "sweeps" / f"pd_vs_colocated_{kind}.toml")
        frames[kind] = run_sweep(spec, Path(a.out) / kind, progress=not a.json)
    rows = []
    for wl, what in WORKLOADS.items():
        for kind, df in frames.items():
            b = best(df[df["wl"] == wl])
            rows.append({"workload": what, "kind": kind, **{c: b[c] for c in COLS},
                         "rate": float(b["rate"])})
    out = pd.DataFrame(rows)
    if a.json:
        print(json.dumps({"wall_s": time.perf_counter() - t0, "rows": out.to_dict(orient="records")},
                         indent=1, default=float))
        return
    print(table_text(out))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
