"""Iteration time of an AF group against its micro-batch count, and how much of the link time
the ping-pong hides.

    python examples/af_microbatches.py [--scenario scenarios/af_llama70b_2to1.toml] [--json]

Prices one iteration of the scenario's AF group (the roofline tier, ``cost/af_price.py``) for
m = 1..4 micro-batches on two batches per attention instance: a decode batch (``--seqs``
sequences at ``--context`` tokens of context each) and a mixed one (the same plus one
``--chunk``-token prefill chunk). Beside each: the same with a free link (no latency, infinite
bandwidth) and the share of the link time that the pipeline hides,
``1 - (t - t_free_link) / (t(m=1) - t_free_link(m=1))``.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from frontier_jax.cost import ROOFLINE_AF
from frontier_jax.cost.af import MAX_MICRO_BATCHES
from frontier_jax.cost.batch import BatchSlots
from frontier_jax.cost.params import cost_params_from_scenario
from frontier_jax.spec import load_scenario

REPO = Path(__file__).resolve().parents[1]


def batch(instances: int, seqs: int, context: int, chunk: int) -> BatchSlots:
    """``seqs`` decodes per attention instance (ids spread so the hash puts about as many on
    each), plus one prefill chunk per instance when ``chunk`` > 0."""
    n = instances * seqs + (instances if chunk else 0)
    q = np.ones(n, np.int32)
    dec = np.ones(n, bool)
    if chunk:
        q[-instances:], dec[-instances:] = chunk, False
    ctx = np.full(n, context, np.int32)
    m = np.ones(n, bool)
    return BatchSlots(q, ctx, dec, m, m, np.arange(n, dtype=np.int32) * 7919)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(REPO / "scenarios" / "af_llama70b_2to1.toml"))
    ap.add_argument("--seqs", type=int, default=64)
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    s = load_scenario(a.scenario)
    p = cost_params_from_scenario(s)
    free = p._replace(af=p.af._replace(link_bw=np.float64(np.inf), link_lat_s=np.float64(0.0)))
    rows = []
    for kind, chunk in (("decode", 0), ("mixed", a.chunk)):
        b = batch(s.af.attention, a.seqs, a.context, chunk)
        base = None
        for m in range(1, MAX_MICRO_BATCHES + 1):
            micro = np.ones(m)
            t = float(ROOFLINE_AF.iteration_time(b, p._replace(af=p.af._replace(micro=micro)), np))
            tf = float(ROOFLINE_AF.iteration_time(b, free._replace(af=free.af._replace(micro=micro)), np))
            base = base or (t - tf)
            rows.append({"batch": kind, "m": m, "iteration_ms": 1e3 * t, "free_link_ms": 1e3 * tf,
                         "link_hidden": 1.0 - (t - tf) / base if base > 0 else float("nan")})
    if a.json:
        print(json.dumps({"scenario": s.name, "rows": rows}, indent=1))
        return
    print(f"{s.name}: {s.af.attention} attention instances (TP {s.parallel.tp}) : {s.af.ffn} FFN "
          f"(TP {s.af.ffn_tp}), {a.seqs} decodes at {a.context} tokens per attention instance")
    print(f"{'batch':7} {'m':>2} {'iteration':>11} {'free link':>11} {'link hidden':>12}")
    for r in rows:
        print(f"{r['batch']:7} {r['m']:>2} {r['iteration_ms']:>8.2f} ms {r['free_link_ms']:>8.2f} ms "
              f"{100 * r['link_hidden']:>11.0f}%")


if __name__ == "__main__":
    main()
