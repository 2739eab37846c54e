"""The optimiser against the real simulator's goodput landscape.

Enumerates a few hundred layouts (replicas x TP under a 16-GPU budget, token budgets,
batch caps), computes each one's goodput per GPU (max QPS meeting the SLOs / GPUs,
vectorized bisection) exhaustively as one sweep, then runs the CMA-ES optimiser with
25% of the layouts as its budget for several seeds. The simulator is deterministic,
so the optimiser reads each layout's value from the exhaustive table: the same number
a fresh simulation gives. Prints the gap to the exhaustive best per seed.

    python benchmarks/optimizer_check.py --json [--requests 300] [--seeds 5]
"""

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from frontier_jax.optimize import optimize
from frontier_jax.sweep import run_sweep, sweep_from_dict
from frontier_jax.sweep.search import search_space, with_budget_and_slo

REPO = Path(__file__).resolve().parents[1]
AXES = ("cluster.replicas", "parallel.tp", "scheduler.max_num_batched_tokens",
        "scheduler.max_num_seqs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=800)
    ap.add_argument("--slo-ttft", type=float, default=1.0)
    ap.add_argument("--slo-tpot", type=float, default=0.015)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--fraction", type=float, default=0.25)
    ap.add_argument("--popsize", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
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
        "derived": {"workload.num_requests": str(a.requests)},
        "constraints": {"expressions": ["gpus <= 16", "max_num_batched_tokens >= max_num_seqs"]},
        "maxqps": {"target": 0.9, "low": 0.5, "high": 1024.0, "rounds": 8},
    })
    spec = with_budget_and_slo(spec, None, a.slo_ttft, a.slo_tpot)
    t0 = time.perf_counter()
    df = run_sweep(spec, tempfile.mkdtemp(prefix="optcheck_"), progress=not a.json)
    sweep_s = time.perf_counter() - t0
    ok = df[df["status"] == "ok"]
    table = {tuple(r[k] for k in AXES): float(r["max_qps_per_gpu"]) for _, r in ok.iterrows()}
    space = search_space(spec)
    size = space.size()
    best = max(table.values())
    budget = math.ceil(a.fraction * size)
    runs = []
    for seed in range(a.seeds):
        res = optimize(space, lambda lays: np.array([table.get(tuple(x[k] for k in AXES),
                                                               np.nan) for x in lays]),
                       budget=budget, popsize=a.popsize, seed=seed, maximize=True)
        runs.append({"seed": seed, "best": res.best_value, "gap": 1 - res.best_value / best,
                     "evaluated": res.n_evaluations, "fraction": res.n_evaluations / size,
                     "layout": {k: int(v) for k, v in res.best_layout.items()}})
    saturated = int(ok["max_qps_saturated"].sum())
    near = sum(v >= 0.98 * best for v in table.values())
    out = {"layouts": size, "exhaustive_best_qps_per_gpu": best, "sweep_s": sweep_s,
           "layouts_at_upper_bound": saturated, "layouts_within_2pct_of_best": near,
           "requests_per_config": a.requests, "budget": budget, "runs": runs,
           "all_within_2pct": all(r["gap"] <= 0.02 for r in runs)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
