"""Every prefill:decode split of 16 GPUs in one compiled call: which split serves the most
requests per second per GPU within the SLOs?

    python examples/pd_splits.py [--spec sweeps/pd_splits.toml] [--out DIR] [--maxqps] [--json]

Runs the sweep spec (fifteen splits of Llama-3-8B on 16 H100s, 10,000 requests each, as one
vmapped batch) and prints the best split by goodput per GPU (requests/s meeting the base
scenario's TTFT and TPOT SLOs, per GPU) at the offered load, and the whole table. With
``--maxqps`` it searches each split's highest sustainable arrival rate instead (the
vectorized bisection of ``frontier_jax.sweep.maxqps``: one call per round).
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

from frontier_jax.sweep import MaxQPS, load_sweep, run_sweep

REPO = Path(__file__).resolve().parents[1]
COLUMNS = {
    "layout": "layout", "goodput_rps_per_gpu": "goodput/GPU", "slo_attainment": "SLO att.",
    "ttft_p90": "TTFT p90 s", "tpot_p90": "TPOT p90 ms", "transfer_wait_p90": "xfer wait p90 s",
    "prefill_busy_frac": "P busy", "decode_busy_frac": "D busy",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(REPO / "sweeps" / "pd_splits.toml"))
    ap.add_argument("--out", default=str(REPO / "results" / "pd_splits"))
    ap.add_argument("--maxqps", action="store_true", help="search each split's max rate")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    spec = load_sweep(a.spec)
    key = "goodput_rps_per_gpu"
    cols = dict(COLUMNS)
    if a.maxqps:
        spec = dataclasses.replace(spec, maxqps=MaxQPS(target=0.9, low=1.0, high=512.0, rounds=10))
        key = "max_qps_per_gpu"
        cols = {"layout": "layout", "max_qps": "max req/s", key: "max req/s/GPU", **{
            k: v for k, v in COLUMNS.items() if k not in ("layout", "goodput_rps_per_gpu")}}
    t0 = time.perf_counter()
    df = run_sweep(spec, a.out, progress=not a.json)
    wall = time.perf_counter() - t0
    ok = df[df["status"] == "ok"].sort_values("prefill_instances")
    best = ok.loc[ok[key].idxmax()]
    table = ok[list(cols)].copy()
    table["tpot_p90"] *= 1e3
    if a.json:
        print(json.dumps({"wall_s": wall, "best": best["layout"], key: float(best[key]),
                          "table": table.to_dict(orient="records")}, indent=1, default=float))
        return
    base = spec.base
    print(f"{spec.name}: {len(ok)} splits of {base.num_gpus} GPUs, {base.workload.num_requests} "
          f"requests each, SLOs TTFT {base.slo.ttft_s:g} s / TPOT {base.slo.tpot_s * 1e3:g} ms, "
          f"{wall:.0f} s")
    print(f"best: {best['layout']}: {best[key]:.2f} req/s per GPU")
    print(table.rename(columns=cols).to_string(index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()
