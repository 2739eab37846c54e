"""Chrome/Perfetto trace of one run: one track per instance, one slice per iteration."""

import json
from pathlib import Path
from typing import Any

import numpy as np

from frontier_jax.contract import is_live
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
    for r, pool in enumerate(np.asarray(params.engine.pool).tolist()):
        if not is_live(pool):
            continue
        events.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": r,
                       "args": {"name": f"replica {r}" + (f" (pool {pool})" if pool else "")}})

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

    simulate_reference(params, max_instances, cost, on_iteration=on_iteration)
    return events


def write_trace(path: str | Path, events: list[dict]) -> Path:
    """Write ``events`` as a Chrome trace JSON file (open in ui.perfetto.dev); returns the path."""
    path = Path(path)
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}))
    return path
