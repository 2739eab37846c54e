"""Every prefill:decode split of 16 GPUs, one compiled call per bisection round: which split
sustains the most requests per second per GPU under the SLOs?

    python examples/pd_splits.py [--spec sweeps/pd_splits.toml] [--out results/pd_splits] [--json]

Runs the sweep spec (its [maxqps] table: the highest arrival rate whose steady-state SLO
attainment reaches the target, found by a bisection over all splits at once) and prints the
best split and the whole table (metrics at each split's max rate).
"""

import argparse
import json
import time
from pathlib import Path

from frontier_jax.sweep import load_sweep, run_sweep

REPO = Path(__file__).resolve().parents[1]
COLUMNS = {
    "layout": "layout", "max_qps": "max req/s", "max_qps_per_gpu": "req/s/GPU",
    "ttft_p90": "TTFT p90 s", "tpot_p90": "TPOT p90 ms", "transfer_wait_p90": "xfer wait p90 s",
    "prefill_busy_frac": "P busy", "decode_busy_frac": "D busy", "slo_attainment": "SLO att.",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(REPO / "sweeps" / "pd_splits.toml"))
    ap.add_argument("--out", default=str(REPO / "results" / "pd_splits"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    spec = load_sweep(a.spec)
    t0 = time.perf_counter()
    df = run_sweep(spec, a.out, progress=not a.json)
    wall = time.perf_counter() - t0
    ok = df[df["status"] == "ok"].sort_values("prefill_instances")
    best = ok.loc[ok["max_qps_per_gpu"].idxmax()]
    table = ok[list(COLUMNS)].copy()
    table["tpot_p90"] *= 1e3
    if a.json:
        print(json.dumps({"wall_s": wall, "best": best["layout"],
                          "best_req_s_per_gpu": float(best["max_qps_per_gpu"]),
                          "table": table.to_dict(orient="records")}, indent=1, default=float))
        return
    print(f"{spec.name}: {len(ok)} splits, {spec.base.workload.num_requests} requests each, "
          f"SLOs TTFT {spec.base.slo.ttft_s:g} s / TPOT {spec.base.slo.tpot_s * 1e3:g} ms, "
          f"{wall:.0f} s")
    print(f"best: {best['layout'].split(' rate')[0]} at {best['max_qps']:.1f} req/s "
          f"({best['max_qps_per_gpu']:.2f} req/s per GPU)")
    print(table.rename(columns=COLUMNS).to_string(index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()
