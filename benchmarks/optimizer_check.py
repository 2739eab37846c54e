"""The optimiser against the real simulator's goodput landscape.

Enumerates a few hundred layouts (replicas x TP under a 16-GPU budget, token budgets,
batch caps), computes each one's goodput per GPU (max QPS meeting the SLOs / GPUs,
vectorized bisection) exhaustively as one sweep, then runs the CMA-ES optimiser with
25% of the layouts as its budget for several seeds. The simulator is deterministic,
so the optimiser reads each layout's value from the exhaustive table: the same number
a fresh simulation gives. Prints the gap to the exhaustive best per seed.

    python benchmarks/optimizer_check.py --json [--requests-per-gpu 50 | --requests 800]
        [--seeds 5] [--rounds 8] [--table-out T.csv | --table-in T.csv] [--spec SPEC.toml]

``--spec`` checks a shipped sweep spec's space instead (its list axes, constraints, derived
values and [maxqps] table, its base scenario's SLOs), e.g. ``sweeps/pd_16gpus.toml`` (PD:
prefill and decode counts, TPs, the decode batch cap).

Runs have 50 requests per GPU of the layout by default (each GPU sees as many requests
whatever the replica count); --requests N gives every run N instead. Max QPS is the
steady-state one of frontier_jax.sweep.maxqps. The budget is floor(25% x layouts); the
optimiser counts distinct evaluated layouts. The same budget with uniform random search is
reported alongside, as a baseline. ~13 min on 2 busy CPU cores (--table-in: seconds).
"""

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from frontier_jax.optimize import optimize
from frontier_jax.sweep import load_sweep, run_sweep, sweep_from_dict
from frontier_jax.sweep.search import search_space, with_budget_and_slo

REPO = Path(__file__).resolve().parents[1]
AXES = ("cluster.replicas", "parallel.tp", "scheduler.max_num_batched_tokens",
        "scheduler.max_num_seqs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests-per-gpu", type=int, default=50,
                    help="requests per run = this x the layout's GPUs (default)")
    ap.add_argument("--requests", type=int, help="a fixed number of requests per run instead")
    ap.add_argument("--slo-ttft", type=float, default=1.0)
    ap.add_argument("--slo-tpot", type=float, default=0.015)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--fraction", type=float, default=0.25)
    ap.add_argument("--popsize", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--table-out", help="write the exhaustive table (CSV) here")
    ap.add_argument("--table-in", help="reuse a table written by --table-out (no simulation)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--spec", help="a sweep spec whose list axes form the space")
    a = ap.parse_args()
    if a.spec:
        spec = load_sweep(a.spec)
        axes = tuple(ax.name for ax in spec.axes)
        spec = with_budget_and_slo(spec, None, None, None)
    else:
        spec, axes = _demo_spec(a), AXES
    run(a, spec, axes)


def _demo_spec(a):
    spec = sweep_from_dict({
        "name": "optimizer-check",
        "base": str(REPO / "scenarios" / "demo.toml"),
        "chunk_size": 64,
        "axes": {
            "cluster.replicas": [1, 2, 4, 8, 16],
            "parallel.tp": [1, 2, 4, 8],
            "scheduler.max_num_batched_tokens": [512, 1024, 2048, 4096, 8192],
            "scheduler.max_num_seqs": [16, 32, 64, 128, 256],
        },
        "derived": {"workload.num_requests": str(a.requests) if a.requests
                    else f"{a.requests_per_gpu} * replicas * tp"},
        "constraints": {"expressions": ["gpus <= 16", "max_num_batched_tokens >= max_num_seqs"]},
        "maxqps": {"target": 0.9, "low": 0.5, "high": 1024.0, "rounds": a.rounds},
    })
    return with_budget_and_slo(spec, None, a.slo_ttft, a.slo_tpot)


def run(a, spec, AXES) -> None:
    t0 = time.perf_counter()
    if a.table_in:
        ok = pd.read_csv(a.table_in)
    else:
        df = run_sweep(spec, tempfile.mkdtemp(prefix="optcheck_"), progress=not a.json)
        ok = df[df["status"] == "ok"]
    sweep_s = time.perf_counter() - t0
    table = {tuple(r[k] for k in AXES): float(r["max_qps_per_gpu"]) for _, r in ok.iterrows()}
    spec_name = spec.name
    space = search_space(spec)
    size = space.size()
    best = max(table.values())
    budget = math.floor(a.fraction * size)  # at most the fraction, never above
    def objective(lays):
        return np.array([table.get(tuple(x[k] for k in AXES), np.nan) for x in lays])

    runs, random_gaps = [], []
    for seed in range(a.seeds):
        res = optimize(space, objective, budget=budget, popsize=a.popsize, seed=seed,
                       maximize=True)
        runs.append({"seed": seed, "best": res.best_value, "gap": 1 - res.best_value / best,
                     "evaluated": res.n_evaluations, "fraction": res.n_evaluations / size,
                     "layout": {k: v for k, v in res.best_layout.items()}})
        rnd = optimize(space, objective, budget=budget, popsize=a.popsize, seed=seed,
                       maximize=True, strategy="random")
        random_gaps.append(1 - rnd.best_value / best)
    saturated = int(ok["max_qps_saturated"].sum())
    near = sum(v >= 0.98 * best for v in table.values())
    vals = np.array(sorted(table.values(), reverse=True))
    if a.table_out:
        ok[[*AXES, "gpus", "max_qps", "max_qps_per_gpu", "window_attainment", "ttft_trend",
            "slo_attainment", "max_qps_saturated"]].to_csv(a.table_out, index=False)
    out = {"spec": spec_name, "layouts": size, "exhaustive_best_qps_per_gpu": best, "sweep_s": sweep_s,
           "layouts_at_upper_bound": saturated, "layouts_at_zero": int((vals == 0).sum()),
           "distinct_values": int(len(np.unique(vals))),
           "top5_qps_per_gpu": [float(v) for v in vals[:5]],
           "layouts_within_2pct_of_best": near,
           "requests_per_config": a.requests or f"{a.requests_per_gpu} x GPUs",
           "rounds": spec.maxqps.rounds, "budget": budget,
           "runs": runs, "all_within_2pct": all(r["gap"] <= 0.02 for r in runs),
           "max_gap": max(r["gap"] for r in runs),
           "max_fraction": max(r["fraction"] for r in runs),
           "random_search_gaps": random_gaps}
    print(json.dumps(out, indent=2, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


if __name__ == "__main__":
    main()
