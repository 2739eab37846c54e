"""The vectorized simulator's loop state.

Three kinds of data, never mixed: ``SimShape`` (static, hashable: fixes the compiled
shapes), ``SimParams`` (array leaves: what ``vmap`` sweeps) and :class:`SimState` (carried
by the event loop). The first two, and ``SimResult``, are the contract both simulators share
(:mod:`frontier_jax.contract`); :class:`SimState` is this simulator's own.
"""

from typing import Any, NamedTuple


class SimState(NamedTuple):
    """Event-loop state of one configuration (N requests, R instance slots, B batch slots, Q ring).

    computed: i32 [N] tokens whose KV is computed (reset to 0 on preemption).
    generated: i32 [N] output tokens emitted so far.
    first_sched_s: f64 [N] time first scheduled (inf before).
    first_token_s: f64 [N] time the first output token was emitted (inf before).
    finish_s: f64 [N] time the last output token was emitted (inf before).
    preemptions: i32 [N] times the request was preempted (recompute).
    replica: i32 [N] instance the request was routed to; UNROUTED or REJECTED.
    next_arrival: i32 [] index of the next request to route.
    rr_counter: i32 [] round-robin position.
    clock: f64 [R] time of the instance's next step (end of its running iteration); inf when idle.
    outstanding: i32 [R] routed and unfinished requests.
    free_blocks: i32 [R] free KV blocks.
    run_ids: i32 [R, B] running requests in admission order (-1 pads).
    n_run: i32 [R] running requests.
    sched: i32 [R, B] tokens scheduled per running slot in the in-flight iteration.
    pre_ids: i32 [R, B] preempted requests waiting at the front of the queue (-1 pads).
    n_pre: i32 [R] preempted waiting requests.
    queue: i32 [R, Q] ring of routed requests never admitted yet.
    q_head: i32 [R] ring head; q_len: i32 [R] ring length.
    busy_s: f64 [R] summed iteration time (s). af_busy_s: f64 [R, 4] summed busy time of
    each AF resource (AF tiers only, else None).
    block_s: f64 [R] integral of used KV blocks over time (block-seconds).
    iterations: i32 [R] iterations run.
    steps: i32 [] events processed.
    last_t: f64 [] time of the last event (s).
    overflow: bool [] a ring buffer overflowed (results invalid).
    slots_full: bool [] the B batch slots bound an admission (rerun with more slots).
    kv_out_of_range: bool [] an instance's free KV blocks left [0, capacity] (a bug).
    backwards: bool [] an event went back in time (invariant violation).
    pd: :class:`PDState` when ``SimShape.disaggregated``, else None.
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
    pd: Any = None
    af_busy_s: Any = None


class PDState(NamedTuple):
    """The prefill/decode paths (only in a ``SimShape.disaggregated`` loop).

    Per request [N]: decode_replica i32 (decode instance it was handed to, -1 before);
    prefill_end_s, transfer_start_s, transfer_end_s, decode_sched_s f64 (inf before).
    Per instance [R]: outbox i32 [R, B] prompts a prefill instance finished at its last step,
    waiting to be dispatched (o_head, o_len i32 [R]; o_time f64 [R] when they finished);
    xq i32 [R, Q] a decode instance's link queue of dispatched requests waiting for their
    transfer (xq_head, xq_len i32 [R]); x_req i32 [R] the request whose KV is on the link
    (-1 none); x_end f64 [R] when that transfer ends (inf none).
    handoff_rr: i32 [] the decode chooser's round-robin position.
    The instance's last step's window (a decode window may be cut short when a transfer
    starts at a decode instance in the middle of it: :func:`frontier_jax.sim.pd.truncate`):
    win_b f64 [R, K + 1] iteration boundaries, win_x i32 [R, K] KV blocks allocated by
    iterations 1..j, win_len i32 [R] iterations, win_used i32 [R] used blocks in iteration 0.
    """

    decode_replica: Any
    prefill_end_s: Any
    transfer_start_s: Any
    transfer_end_s: Any
    decode_sched_s: Any
    outbox: Any
    o_head: Any
    o_len: Any
    o_time: Any
    xq: Any
    xq_head: Any
    xq_len: Any
    x_req: Any
    x_end: Any
    handoff_rr: Any
    win_b: Any
    win_x: Any
    win_len: Any
    win_used: Any
