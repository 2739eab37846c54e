"""Attention/FFN disaggregation against PD and co-located replicas on the same 32 GPUs.

    python benchmarks/af_pd_colocated.py [--json] [--out DIR]

Runs the shipped sweeps ``sweeps/af_32gpus_{af,pd,colocated}.toml``: Qwen3-30B-A3B (experts at
the mean load) on 32 H100s, one workload (median prompt 1,024, median output 128 tokens), four
offered rates, SLOs TTFT 1 s and TPOT 40 ms. Each family is one compiled call. Prints, per rate,
the best layout of each family by goodput per GPU (requests/s meeting both SLOs, per GPU; ties
broken by TPOT p90) with its latency percentiles, and writes one frontier plot of every
configuration of the three families (``DIR/frontier.png``) and the JSON of the table.
"""

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from pd_vs_colocated import best, table_text  # benchmarks/, the script's folder

from frontier_jax.plot import plot_frontier
from frontier_jax.sweep import load_sweep, run_sweep

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("colocated", "pd", "af")
COLS = ["layout", "goodput_rps_per_gpu", "output_tok_s_per_gpu", "slo_attainment", "ttft_p90",
        "tpot_p50", "tpot_p90"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "results" / "af_pd_colocated"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out = Path(a.out)
    t0 = time.perf_counter()
    frames, walls = {}, {}
    for kind in FAMILIES:
        t = time.perf_counter()
        spec = load_sweep(REPO / "sweeps" / f"af_32gpus_{kind}.toml")
        frames[kind] = run_sweep(spec, out / kind, progress=not a.json)
        walls[kind] = round(time.perf_counter() - t, 1)
    rows = []
    for rate in sorted(frames["af"]["rate"].unique()):
        for kind, df in frames.items():
            b = best(df[df["rate"] == rate])
            rows.append({"rate": float(rate), "kind": kind, **{c: b[c] for c in COLS}})
    table = pd.DataFrame(rows)
    every = pd.concat([f[f["status"] == "ok"] for f in frames.values()], ignore_index=True)
    files = plot_frontier(every, out, title="Qwen3-30B-A3B on 32 H100s: co-located, PD and AF")
    result = {"wall_s": round(time.perf_counter() - t0, 1), "family_wall_s": walls,
              "configs": {k: int((f["status"] == "ok").sum()) for k, f in frames.items()},
              "rows": table.to_dict(orient="records"), "plot": str(files.get("png", ""))}
    (out / "table.json").write_text(json.dumps(result, indent=1, default=float))
    if a.json:
        print(json.dumps(result, indent=1, default=float))
        return
    print(table_text(table))
    print(f"configurations: {result['configs']}; seconds per family: {walls}; plot: {result['plot']}")


if __name__ == "__main__":
    main()
