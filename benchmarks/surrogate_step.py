"""Cost of the surrogate tier inside the compiled step, against the roofline, in one run.

Runs the same configurations (a scenario at C arrival rates) through the vectorized
simulator twice, once priced by the roofline and once by a predictor set's MLP
surrogates, and prints the time per simulator event (step) of each and their ratio.
Both runs take the same events when the costs are equal; they are not (the tiers price
differently), so the comparison is per event: wall time / events, after compilation.

The predictor set defaults to one trained here on synthetic profiles with the training
pipeline's default architecture (attention networks width 32 / depth 2, the rest
128 / 3; ``--width/--depth`` set every family; weights do not change the cost of
evaluating them); ``--predictor DIR`` uses any set profiled on the scenario's hardware.
Surrogate-priced configurations carry their host-side tables (``sim_params``), as in
any run.

It also reports the XLA fusions (kernels) in the compiled event loop's body per tier:
what each simulated event launches, the cost that dominates on a GPU.

    python benchmarks/surrogate_step.py --json [--configs 1 64] [--requests 2000]
"""

import argparse
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from frontier_jax.cost import ROOFLINE
from frontier_jax.cost.tiers import cost_model
from frontier_jax.params import INITIAL_SLOTS
from frontier_jax.runner import simulate_sized
from frontier_jax.sim import sim_params, sim_shape, simulate_batch, stack
from frontier_jax.spec import load_scenario, with_overrides
from frontier_jax.workload import make_workload

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def _synthetic_set(out: Path, width: int | None = None, depth: int | None = None) -> Path:
    from synthetic_predictors import make_predictor_set  # tests/: the tests' synthetic set

    arch = {k: v for k, v in (("width", width), ("depth", depth)) if v}
    return make_predictor_set(out, surrogate={**arch, "steps": 100})


def _loop_kernels(shape, params, cost) -> int:
    """XLA fusions (kernels) in the compiled event loop's body: what every simulated event
    launches, the cost that dominates on a GPU."""
    hlo = simulate_batch.lower(shape, params, cost).compile().as_text()
    comps = {c.split(" ", 1)[0].lstrip("%"): c for c in re.split(r"\n(?=\S)", hlo)}
    bodies = [comps.get(b, "") for b in re.findall(r"body=%?([\w.\-]+)", hlo)]
    return max(len(re.findall(r"= \S+ fusion\(", b)) for b in bodies)


def _run(scenario, cost, c: int, n: int, repeats: int = 3) -> dict:
    """Best of ``repeats`` timed runs (after compilation) of C variants of the scenario."""
    rng = np.random.default_rng(0)
    cfgs = []
    for i in range(c):
        s = with_overrides(scenario, {"workload.num_requests": n, "seed": i,
                                      "workload.arrival.rate": float(scenario.workload.arrival.rate
                                                                     * rng.uniform(0.5, 1.5))})
        cfgs.append(sim_params(s, make_workload(s.workload, s.seed)))
    params = stack(cfgs)
    # batch slots as the runner sizes them (32, doubled while they bind)
    t0 = time.perf_counter()
    _, shape = simulate_sized(sim_shape(params, max_batch=INITIAL_SLOTS), params, cost)
    compile_s = time.perf_counter() - t0
    best = None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        res = jax.block_until_ready(simulate_batch(shape, params, cost))
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        best = (wall, cpu) if best is None or wall < best[0] else best
    wall, cpu = best
    steps = int(np.max(np.asarray(res.steps)))  # the loop runs until the longest config ends
    return {"configs": c, "requests": n, "batch_slots": shape.max_batch, "wall_s": wall,
            "loop_kernels": _loop_kernels(shape, params, cost),
            "cpu_s": cpu, "compile_s": compile_s, "loop_steps": steps,
            "us_per_step": 1e6 * wall / steps, "cpu_us_per_step": 1e6 * cpu / steps,
            "incomplete": int(np.sum(np.asarray(res.incomplete)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(REPO / "scenarios" / "light.toml"))
    ap.add_argument("--predictor", default=None, help="predictor set folder [synthetic, trained here]")
    ap.add_argument("--configs", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--width", type=int, default=None,
                    help="synthetic set's surrogate width, every family [per-family defaults]")
    ap.add_argument("--depth", type=int, default=None,
                    help="synthetic set's surrogate depth, every family [per-family defaults]")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pset = Path(a.predictor) if a.predictor else _synthetic_set(Path(tmp), a.width, a.depth)
        base = load_scenario(a.scenario)
        sur = with_overrides(base, {"cost.kind": "surrogate", "cost.predictor": str(pset.resolve())})
        cost = cost_model(sur)
        rows = []
        for c in a.configs:
            r = _run(base, ROOFLINE, c, a.requests)
            s = _run(sur, cost, c, a.requests)
            rows.append({"configs": c, "roofline": r, "surrogate": s,
                         "step_cost_ratio": s["us_per_step"] / r["us_per_step"],
                         "step_cpu_ratio": s["cpu_us_per_step"] / r["cpu_us_per_step"]})
    out = {"scenario": a.scenario,
           "predictor": a.predictor or ("synthetic (width {}, depth {})".format(
               a.width or "per family", a.depth or "per family")),
           "machine": platform.machine(), "cpus": jax.device_count(), "backend": jax.default_backend(),
           "results": rows}
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        for r in rows:
            print(f"C={r['configs']:4d}  roofline {r['roofline']['us_per_step']:9.1f} us/step  "
                  f"surrogate {r['surrogate']['us_per_step']:9.1f} us/step  "
                  f"ratio {r['step_cost_ratio']:.2f}x (CPU time {r['step_cpu_ratio']:.2f}x)  "
                  f"loop kernels {r['roofline']['loop_kernels']} / {r['surrogate']['loop_kernels']}")


if __name__ == "__main__":
    main()
