"""A large sweep on this machine: wall time, simulated requests per second, peak memory.

Default: 1,024 configurations x 10,000 requests (Llama-3-8B on 8 H100s: 4 replica x TP
layouts x 4 token budgets x 4 batch caps x 16 arrival rates), chunks of 64.

    python benchmarks/sweep_scale.py --json [--requests 10000] [--rates 16] [--out DIR]
        [--predictor DIR | --synthetic-predictor]

``--predictor DIR`` prices the sweep with a predictor set profiled on H100 (the surrogate
tier, host tables included in the wall time); ``--synthetic-predictor`` trains the tests'
synthetic H100 set first (its prices are made up; its cost is that of a real set).
"""

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import jax

from frontier_jax.sweep import run_sweep, sweep_from_dict

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--rates", type=int, default=16, help="arrival rates per layout")
    ap.add_argument("--chunk-size", type=int, default=64)
    ap.add_argument("--out", help="output folder [a temporary one]")
    ap.add_argument("--predictor", help="price with this predictor set (surrogate tier)")
    ap.add_argument("--synthetic-predictor", action="store_true",
                    help="train the tests' synthetic H100 set and price with it")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    cost = {}
    if a.synthetic_predictor:
        import sys

        sys.path.insert(0, str(REPO / "tests"))
        from synthetic_predictors import make_predictor_set

        a.predictor = str(make_predictor_set(Path(tempfile.mkdtemp(prefix="sweep_scale_set_")),
                                             surrogate={"steps": 100}))
    if a.predictor:
        cost = {"cost.kind": ["surrogate"], "cost.predictor": [str(Path(a.predictor).resolve())]}
    spec = sweep_from_dict(
        {
            "name": "scale",
            "base": str(REPO / "scenarios" / "demo.toml"),
            "chunk_size": a.chunk_size,
            "axes": {
                "parallel.tp": [1, 2, 4, 8],
                "scheduler.max_num_batched_tokens": [1024, 2048, 4096, 8192],
                "scheduler.max_num_seqs": [32, 64, 128, 256],
                "workload.arrival.rate": {"log_range": [8.0, 256.0], "num": a.rates},
                **cost,  # one-value axes: the cost tier
            },
            "derived": {"cluster.replicas": "8 // tp", "workload.num_requests": str(a.requests)},
        }
    )
    out = Path(a.out or tempfile.mkdtemp(prefix="sweep_scale_"))
    t0 = time.perf_counter()
    df = run_sweep(spec, out, progress=not a.json)
    wall = time.perf_counter() - t0
    n_ok = int((df["status"] == "ok").sum())
    report = {
        "cost": "surrogate: " + a.predictor if a.predictor else "roofline",
        "configs": len(df),
        "ok": n_ok,
        "requests_per_config": a.requests,
        "simulated_requests": n_ok * a.requests,
        "wall_s": wall,
        "simulated_requests_per_s": n_ok * a.requests / wall,
        "configs_per_s": len(df) / wall,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "slots_used": {str(k): int(v) for k, v in df["max_batch"].value_counts().items()},
        "device": jax.devices()[0].device_kind,
        "devices": len(jax.local_devices()),
        "out": str(out),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
