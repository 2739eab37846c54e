"""Pytrees of the vectorized simulator: static shape, swept params, scan state.

Three kinds of data, never mixed: :class:`SimShape` (static, hashable: fixes the
compiled shapes), :class:`SimParams` (array leaves: what ``vmap`` sweeps) and
:class:`SimState` (carried by the event loop).
"""

from dataclasses import dataclass
from typing import Any, NamedTuple

ROUND_ROBIN = 0
LEAST_OUTSTANDING = 1
ROUTERS = {"round_robin": ROUND_ROBIN, "least_outstanding": LEAST_OUTSTANDING}

UNROUTED = -1
REJECTED = -2


@dataclass(frozen=True)
class SimShape:
    """Static sizes of one compiled simulator.

    num_requests: N, requests per configuration (arrival-sorted).
    max_replicas: R, replica slots; a configuration uses the first ``num_replicas``.
    max_batch: B, running-request slots per replica. Exact when >= max_num_seqs; a
      smaller B (faster) stays exact until the slots bind, which the run flags.
    queue_capacity: Q, per-replica ring buffer of routed, never-admitted requests.
    decode_window: longest run of identical decode-only iterations jumped in one
      event (1 = off; see :mod:`frontier_jax.sim.fast_forward`).
    """

    num_requests: int
    max_replicas: int
    max_batch: int
    queue_capacity: int
    decode_window: int = 32


class EngineParams(NamedTuple):
    """Scheduler and cluster knobs (int32/bool scalars, or [C] when vmapped).

    num_replicas: active replica slots; router: ROUND_ROBIN or LEAST_OUTSTANDING;
    max_num_seqs: running-request cap per replica; max_batched_tokens: token budget
    per iteration; chunked_prefill: split prompts to fit the budget; block_size:
    tokens per KV block; kv_blocks: KV blocks per replica (capacity); reserve_full_isl:
    admit a waiting request only if its whole sequence fits the free blocks; max_steps: event
    budget, a run that exhausts it is flagged incomplete (traced, so it never recompiles).
    """

    num_replicas: Any
    router: Any
    max_num_seqs: Any
    max_batched_tokens: Any
    chunked_prefill: Any
    block_size: Any
    kv_blocks: Any
    reserve_full_isl: Any
    max_steps: Any


class WorkloadArrays(NamedTuple):
    """Requests sorted by arrival: arrival_s f64 [N] (s), prompt i32 [N], output i32 [N] (tokens)."""

    arrival_s: Any
    prompt: Any
    output: Any


class SimParams(NamedTuple):
    """Everything a configuration may vary: engine knobs, cost model, workload."""

    engine: EngineParams
    cost: Any
    workload: WorkloadArrays


class SimState(NamedTuple):
    """Event-loop state of one configuration (N requests, R replicas, B slots, Q ring).

    computed: i32 [N] tokens whose KV is computed (reset to 0 on preemption).
    generated: i32 [N] output tokens emitted so far.
    first_sched_s: f64 [N] time first scheduled (inf before).
    first_token_s: f64 [N] time the first output token was emitted (inf before).
    finish_s: f64 [N] time the last output token was emitted (inf before).
    preemptions: i32 [N] times the request was preempted (recompute).
    replica: i32 [N] replica the request was routed to; UNROUTED or REJECTED.
    next_arrival: i32 [] index of the next request to route.
    rr_counter: i32 [] round-robin position.
    clock: f64 [R] time of the replica's next event (end of its running iteration); inf when idle.
    outstanding: i32 [R] routed and unfinished requests.
    free_blocks: i32 [R] free KV blocks.
    run_ids: i32 [R, B] running requests in admission order (-1 pads).
    n_run: i32 [R] running requests.
    sched: i32 [R, B] tokens scheduled per running slot in the in-flight iteration.
    pre_ids: i32 [R, B] preempted requests waiting at the front of the queue (-1 pads).
    n_pre: i32 [R] preempted waiting requests.
    queue: i32 [R, Q] ring of routed requests never admitted yet.
    q_head: i32 [R] ring head; q_len: i32 [R] ring length.
    busy_s: f64 [R] summed iteration time (s).
    block_s: f64 [R] integral of used KV blocks over time (block-seconds).
    iterations: i32 [R] iterations run.
    steps: i32 [] events processed.
    last_t: f64 [] time of the last event (s).
    overflow: bool [] a ring buffer overflowed (results invalid).
    slots_full: bool [] the B batch slots bound an admission (rerun with more slots).
    kv_out_of_range: bool [] a replica's free KV blocks left [0, capacity] (a bug).
    backwards: bool [] an event went back in time (invariant violation).
    """

    computed: Any
    generated: Any
    first_sched_s: Any
    first_token_s: Any
    finish_s: Any
    preemptions: Any
    replica: Any
    next_arrival: Any
    rr_counter: Any
    clock: Any
    outstanding: Any
    free_blocks: Any
    run_ids: Any
    n_run: Any
    sched: Any
    pre_ids: Any
    n_pre: Any
    queue: Any
    q_head: Any
    q_len: Any
    busy_s: Any
    block_s: Any
    iterations: Any
    steps: Any
    last_t: Any
    overflow: Any
    slots_full: Any
    kv_out_of_range: Any
    backwards: Any


class SimResult(NamedTuple):
    """Outputs of one run (add a leading [C] axis when vmapped).

    Per request [N]: first_sched_s, first_token_s, finish_s (s, inf if never),
    generated (tokens), preemptions, replica (index, or REJECTED).
    Per replica [R]: busy_s, block_s (block-seconds), iterations, kv_blocks (capacity).
    Scalars: steps, end_s (time of the last event), incomplete (step budget ran out),
    overflow (queue ring overflowed), slots_full (max_batch < max_num_seqs bound an
    admission: the run stopped early, rerun with more slots), kv_out_of_range (free KV
    blocks left [0, capacity]: a bug), backwards (clock went
    back: a bug).
    """

    first_sched_s: Any
    first_token_s: Any
    finish_s: Any
    generated: Any
    preemptions: Any
    replica: Any
    busy_s: Any
    block_s: Any
    iterations: Any
    kv_blocks: Any
    steps: Any
    end_s: Any
    incomplete: Any
    overflow: Any
    slots_full: Any
    kv_out_of_range: Any
    backwards: Any
