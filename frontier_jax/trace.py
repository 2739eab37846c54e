"""Chrome/Perfetto trace of one run: one track per instance (one slice per iteration) and, in a
PD layout, one per decode instance's KV link (one slice per transfer)."""

import json
from pathlib import Path
from typing import Any

import numpy as np

from frontier_jax.contract import DECODE, PREFILL, is_live
from frontier_jax.cost import ROOFLINE, CostModel
from frontier_jax.reference import simulate_reference


def iteration_trace(params: Any, max_instances: int, cost: CostModel = ROOFLINE) -> list[dict]:
    """Trace events (Chrome JSON format, microseconds) of every engine iteration.

    The timeline comes from the exact reference simulator, which agrees with the
    vectorized one request by request (tests hold that), so no per-iteration buffer
    is carried through the compiled loop. ``cost`` is the run's cost-model tier.
    """
    events: list[dict] = [
        {"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "frontier-jax"}}
    ]
    roles = np.asarray(params.engine.pools.role)
    pools = np.asarray(params.engine.pool).tolist()
    n_slots = max(len(pools), max_instances)
    for r, pool in enumerate(pools):
        if not is_live(pool):
            continue
        role = {PREFILL: "prefill", DECODE: "decode"}.get(int(roles[pool]), "replica")
        events.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": r,
                       "args": {"name": f"{role} {r}" + (f" (pool {pool})" if pool and role == "replica" else "")}})
        if role == "decode":
            events.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": n_slots + r,
                           "args": {"name": f"KV link -> decode {r}"}})

    def on_transfer(d, start_s, end_s, rid, nbytes):
        events.append({"name": "kv transfer", "ph": "X", "pid": 0, "tid": n_slots + int(d),
                       "ts": start_s * 1e6, "dur": (end_s - start_s) * 1e6,
                       "args": {"request": int(rid), "bytes_per_gpu": float(nbytes)}})

    def on_iteration(r, start_s, dur_s, batch, free_blocks):
        q = np.asarray(batch.q_tokens)
        dec = np.asarray(batch.is_decode)
        events.append(
            {
                "name": "decode" if dec.all() else ("prefill" if not dec.any() else "mixed"),
                "ph": "X",
                "pid": 0,
                "tid": int(r),
                "ts": start_s * 1e6,
                "dur": dur_s * 1e6,
                "args": {
                    "seqs": int(q.size),
                    "tokens": int(q.sum()),
                    "decode_seqs": int(dec.sum()),
                    "prefill_tokens": int(q[~dec].sum()),
                    "free_kv_blocks": int(free_blocks),
                },
            }
        )

    simulate_reference(params, max_instances, cost, on_iteration=on_iteration,
                       on_transfer=on_transfer)
    return events


def write_trace(path: str | Path, events: list[dict]) -> Path:
    """Write ``events`` as a Chrome trace JSON file (open in ui.perfetto.dev); returns the path."""
    path = Path(path)
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}))
    return path
