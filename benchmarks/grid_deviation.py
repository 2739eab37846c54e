"""How far the surrogate tier's 32-token decode grid moves a price from the raw surrogate.

The tier prices decode attention by interpolating between anchor batches whose shortest
decoding context sits on a multiple of ``ANCHOR_TOKENS`` (see ``frontier_jax.cost.surrogate``).
This draws random decode-only batches (24 slots, 1-23 sequences, contexts up to 4,000
tokens, 30% of them short), prices their decode attention both ways and prints the relative
deviation by the batch's shortest context.

    python benchmarks/grid_deviation.py [--predictor predictors/cpu-llama-512]
        [--scenario scenarios/cpu_tiny_llama.toml] [--batches 1500] [--json]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from frontier_jax.cost import cost_params_from_scenario
from frontier_jax.cost.surrogate import grid_deviations
from frontier_jax.cost.tiers import cost_model
from frontier_jax.spec import load_scenario, with_overrides

REPO = Path(__file__).resolve().parents[1]
BANDS = ((0, 32), (32, 64), (64, 128), (128, 256), (256, 1 << 30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictor", default=str(REPO / "predictors" / "cpu-llama-512"))
    ap.add_argument("--scenario", default=str(REPO / "scenarios" / "cpu_tiny_llama.toml"))
    ap.add_argument("--batches", type=int, default=1500)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    s = with_overrides(load_scenario(a.scenario), {"cost.kind": "surrogate",
                                                   "cost.predictor": str(Path(a.predictor).resolve())})
    sc = cost_model(s).step_times.__self__
    if "attn_decode" not in sc.w:
        raise SystemExit(f"{a.predictor}: no attn_decode surrogate to compare")
    d = grid_deviations(sc, cost_params_from_scenario(s), a.batches, short_share=0.3)
    out = []
    for lo, hi in BANDS:
        e = d[(d[:, 0] >= lo) & (d[:, 0] < hi), 1]
        if len(e):
            out.append({"shortest_context": f"{lo}-{hi if hi < 1 << 30 else 'max'}", "batches": len(e),
                        "median": float(np.median(e)), "p99": float(np.quantile(e, 0.99)),
                        "max": float(e.max())})
    if a.json:
        print(json.dumps({"predictor": a.predictor, "scenario": a.scenario, "bands": out}, indent=2))
    else:
        for r in out:
            print(f"shortest context {r['shortest_context']:>9}: {r['batches']:5d} batches  "
                  f"median {100 * r['median']:.2f}%  p99 {100 * r['p99']:.2f}%  max {100 * r['max']:.2f}%")


if __name__ == "__main__":
    main()
