"""Runtime invariants checked on every run, for both simulators (host side, O(N)).

A violation is a simulator bug or an invalid run, never a plausible number: the CLI
exits with it, a sweep marks the configuration ``invalid: ...`` and carries on.
"""

from typing import Any

import numpy as np

from frontier_jax.contract import REJECTED


class InvariantError(RuntimeError):
    """A run broke an invariant (the message lists which)."""


def violations(result: Any, arrival_s, output) -> list[str]:
    """Names of the invariants ``result`` breaks (empty when it is sound).

    Every request finishes exactly once or is rejected; a finished request emitted
    exactly its output tokens, a rejected one none; arrival <= first scheduled <=
    first token <= finish; clocks never went back; KV blocks stayed within
    [0, capacity]; no ring buffer overflowed; each instance's busy time and KV occupancy
    are finite and within the run's span (occupancy against that instance's capacity); in a
    PD run every hand-off finished, prefill end <= transfer start <= transfer end <= first
    decode step <= first token.
    """
    out = []
    if bool(np.any(result.incomplete)):
        out.append("incomplete: the event budget ran out (raise [sim] max_steps)")
    if bool(np.any(result.slots_full)):
        out.append("batch slots bound an admission (rerun with more slots)")
    if bool(np.any(result.backwards)):
        out.append("clock went backwards")
    if bool(np.any(result.overflow)):
        out.append("queue ring overflowed")
    if bool(np.any(getattr(result, "kv_out_of_range", False))):
        out.append("KV blocks left [0, capacity]")
    if out:
        return out
    arrival_s = np.asarray(arrival_s, np.float64)
    output = np.asarray(output)
    fin = np.isfinite(result.finish_s)
    rej = np.asarray(result.replica) == REJECTED
    if np.any(fin == rej):
        out.append(f"{int(np.sum(fin == rej))} requests neither finished nor rejected (or both)")
    if np.any(result.generated[fin] != output[fin]) or np.any(result.generated[rej] != 0):
        out.append("generated tokens differ from requested output tokens")
    f = fin
    if (
        np.any(result.first_sched_s[f] < arrival_s[f])
        or np.any(result.first_token_s[f] < result.first_sched_s[f])
        or np.any(result.finish_s[f] < result.first_token_s[f])
    ):
        out.append("a request's timeline is out of order")
    pd = getattr(result, "pd", None)
    if pd is not None:
        out += _pd_violations(result, pd, fin)
    span = (float(np.max(result.finish_s[f])) - float(np.min(arrival_s))) if f.any() else 0.0
    busy = np.asarray(result.busy_s)
    block_s = np.asarray(result.block_s)
    capacity = np.asarray(result.kv_blocks, np.float64)  # per instance
    if not (np.all(np.isfinite(busy)) and np.all(np.isfinite(block_s))):
        out.append("non-finite replica accounting")
    elif np.any(busy > span * (1 + 1e-9) + 1e-12) or np.any(
        block_s > capacity * span * (1 + 1e-9) + 1e-9
    ):
        out.append("replica busy time or KV occupancy exceeds the run's span")
    return out


def _pd_violations(result: Any, pd: Any, fin) -> list[str]:
    """A finished request that was handed off went prefill -> link -> decode, in time order,
    and none is left in between (every hand-off reached its decode instance)."""
    handed = np.asarray(pd.decode_replica) >= 0
    chain = [np.asarray(x, np.float64) for x in (result.first_sched_s, pd.prefill_end_s,
                                                   pd.transfer_start_s, pd.transfer_end_s,
                                                   pd.decode_sched_s, result.first_token_s)]
    h = handed & fin
    out = []
    if np.any(handed & ~fin):
        out.append(f"{int(np.sum(handed & ~fin))} handed-off requests never finished")
    if any(np.any(~(a[h] <= b[h])) for a, b in zip(chain, chain[1:], strict=False)):
        out.append("a handed-off request's prefill -> transfer -> decode timeline is out of order")
    return out


def check(result: Any, arrival_s, output, what: str = "run") -> None:
    """Raise :class:`InvariantError` naming ``what`` if ``result`` breaks an invariant."""
    bad = violations(result, arrival_s, output)
    if bad:
        raise InvariantError(f"{what}: " + "; ".join(bad))
