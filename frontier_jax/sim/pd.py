"""Prefill/decode disaggregation: hand-offs, KV transfers and backpressure (vectorized).

A request's path in a PD layout:

    arrival -> prefill instance (route.py)      the arrival router, over prefill instances
    prefill done -> outbox (engine.complete)    the prompt's KV stays on the prefill instance
    DISPATCH (dispatch)                         a decode instance is chosen and the request
                                                joins its link queue (FIFO)
    transfer start (transfer_start)             when the link is free and the decode
                                                instance can hold the KV (and has a
                                                sequence slot): its blocks are taken there
    TRANSFER (transfer_done)                    the prefill instance frees its blocks; the
                                                request joins the decode instance's running
                                                set with the prompt less its last token
                                                computed (as vLLM's connectors leave it)
    decode instance steps (engine.py)           its first step recomputes the last prompt
                                                token and samples the first output token

Every handler is a masked, branch-free update of O(1) or O(R) work. Only compiled when
``SimShape.disaggregated``; :mod:`frontier_jax.reference.simulator` is the same path as
plain event handlers.
"""

from typing import Any, NamedTuple

import jax.numpy as jnp

from frontier_jax.contract import (
    DECODE,
    LEAST_OUTSTANDING,
    MOST_FREE_KV,
    SimParams,
    SimShape,
    instance_kv_blocks,
    instance_params,
    instance_roles,
)
from frontier_jax.sim._ops import I32, ceil_div, put, put_drop
from frontier_jax.sim.types import PDState, SimState


def init_pd(shape: SimShape, p: SimParams) -> PDState:
    """Nothing handed off, every outbox and link queue empty."""
    N, R, B, Q = shape.num_requests, shape.max_instances, shape.max_batch, shape.queue_capacity
    inf_n = jnp.full((N,), jnp.inf)
    zeros_r = jnp.zeros((R,), I32)
    return PDState(
        decode_replica=jnp.full((N,), -1, I32),
        prefill_end_s=inf_n,
        transfer_start_s=inf_n,
        transfer_end_s=inf_n,
        decode_sched_s=inf_n,
        outbox=jnp.full((R, B), -1, I32),
        o_head=zeros_r,
        o_len=zeros_r,
        o_time=jnp.full((R,), jnp.inf),
        xq=jnp.full((R, Q), -1, I32),
        xq_head=zeros_r,
        xq_len=zeros_r,
        x_req=jnp.full((R,), -1, I32),
        x_end=jnp.full((R,), jnp.inf),
        handoff_rr=jnp.zeros((), I32),
        win_b=jnp.zeros((R, max(shape.decode_window, 1) + 1)),
        win_x=jnp.zeros((R, max(shape.decode_window, 1)), I32),
        win_len=jnp.ones((R,), I32),
        win_used=zeros_r,
    )


def kv_bytes_per_token(cost) -> Any:
    """KV bytes one token takes on one GPU of an instance with cost params ``cost``:
    2 x ceil(layers / pp) x ceil(kv_heads / tp) x head_dim x dtype bytes (as
    :func:`frontier_jax.spec.kv_bytes_per_token_per_gpu`)."""
    return (2.0 * jnp.ceil(cost.layers / cost.pp) * jnp.ceil(cost.kv_heads / cost.tp)
            * cost.head_dim * cost.dtype_bytes)


def transfer_seconds(p: SimParams, prompt, src: Any, dst: Any):
    """Seconds to move a prompt's KV from a prefill instance (cost params ``src``) to a decode
    instance (``dst``): latency + prompt tokens x the larger per-GPU share / bandwidth. Every
    GPU of each side moves its own share of the KV (KV heads over TP, layers over PP) in
    parallel over its own link, so the side with the larger share per GPU sets the time
    (with equal TP and PP: the whole KV / (TP x PP x bandwidth))."""
    per_gpu = jnp.maximum(kv_bytes_per_token(src), kv_bytes_per_token(dst))
    return p.engine.link_lat_s + prompt * per_gpu / p.engine.link_bw


class Start(NamedTuple):
    """A transfer that may start at a decode instance (``ok``): its request, the KV blocks it
    takes there and when it ends."""

    ok: Any
    rid: Any
    blocks: Any
    end_s: Any


def transfer_start(shape: SimShape, p: SimParams, s: SimState, d, t, free, n_run,
                   n_waiting) -> Start:
    """Whether decode instance ``d``'s next transfer can start at ``t``, given its free KV
    blocks, running requests and requests waiting to be (re)admitted (preempted ones): its
    link is idle, a request waits in its link queue, nothing waits ahead of it on the
    instance (first come, first served: a preempted request is admitted before a new pull
    starts, as in vLLM's waiting queue), the instance can hold the request's KV (the prompt
    less its last token) and has a sequence slot for it (``n_run < max_num_seqs``). The pull
    model: until then the KV stays on the prefill instance."""
    pd, wl = s.pd, p.workload
    eng, dst = instance_params(p, d)
    rid = pd.xq[d, pd.xq_head[d] % shape.queue_capacity]
    safe = jnp.maximum(rid, 0)
    prompt = wl.prompt[safe]
    blocks = ceil_div(jnp.maximum(prompt - 1, 0), eng.block_size)
    ok = ((pd.x_req[d] < 0) & (pd.xq_len[d] > 0) & (blocks <= free) & (n_waiting == 0)
          & (n_run < eng.max_num_seqs) & (eng.role == DECODE))
    _, src = instance_params(p, jnp.maximum(s.replica[safe], 0))
    return Start(ok, rid, jnp.where(ok, blocks, 0), t + transfer_seconds(p, prompt, src, dst))


def apply_start(shape: SimShape, s: SimState, d, t, st: Start, active) -> SimState:
    """Start transfer ``st`` at decode instance ``d`` when ``active & st.ok``: the request
    leaves the link queue and its KV blocks are taken (``free_blocks`` is the caller's)."""
    pd = s.pd
    on = active & st.ok
    return s._replace(pd=pd._replace(
        xq_head=put(pd.xq_head, d, (pd.xq_head[d] + 1) % shape.queue_capacity, on),
        xq_len=put(pd.xq_len, d, pd.xq_len[d] - 1, on),
        x_req=put(pd.x_req, d, st.rid, on),
        x_end=put(pd.x_end, d, st.end_s, on),
        transfer_start_s=put_drop(pd.transfer_start_s, jnp.maximum(st.rid, 0), t, on),
    ))


def start_next(shape: SimShape, p: SimParams, s: SimState, d, t, active) -> SimState:
    """Start decode instance ``d``'s next transfer at ``t`` if it can (its free blocks as of
    ``t`` and its running requests). A start in the middle of a decode window of ``d`` cuts
    the window at ``t`` first (:func:`truncate`): the reserved blocks change what follows."""
    free = free_as_of(shape, s, t, d)
    st = transfer_start(shape, p, s, d, t, free, s.n_run[d], s.n_pre[d] + s.q_len[d])
    s = truncate(shape, s, d, t, active & st.ok)
    s = apply_start(shape, s, d, t, st, active)
    return s._replace(free_blocks=put(s.free_blocks, d, s.free_blocks[d] - st.blocks, active & st.ok))


# ---- decode windows seen from outside: as of a time inside them, and cut short
def _kept(win_b, win_len, y):
    """Iterations of a window (boundaries ``win_b`` [..., K + 1], length ``win_len``) that
    start before ``y`` (at least 1)."""
    K = win_b.shape[-1] - 1
    starts = (jnp.arange(K) < win_len[..., None]) & (win_b[..., :K] < y)
    return jnp.maximum(jnp.sum(starts, axis=-1, dtype=I32), 1)


def free_as_of(shape: SimShape, s: SimState, y, d=None):
    """Free KV blocks at time ``y`` of every instance ([R]), or of instance ``d``: a decode
    window allocates its iterations' blocks at once, so an instance in the middle of one has
    only allocated those of the iterations that started before ``y``."""
    pd = s.pd
    if d is not None:
        kept = _kept(pd.win_b[d], pd.win_len[d], y)
        return s.free_blocks[d] + pd.win_x[d, pd.win_len[d] - 1] - pd.win_x[d, kept - 1]
    rows = jnp.arange(pd.win_x.shape[0])
    kept = _kept(pd.win_b, pd.win_len, y)
    return s.free_blocks + pd.win_x[rows, pd.win_len - 1] - pd.win_x[rows, kept - 1]


def truncate(shape: SimShape, s: SimState, d, y, active) -> SimState:
    """Cut instance ``d``'s decode window at ``y`` (when ``active`` and ``y`` falls inside it):
    the iterations that start at or after ``y`` are undone, so the state is the one the
    reference simulator has at ``y`` (tokens, KV blocks, busy time, block-seconds,
    iterations) with the last kept iteration in flight. Windows are decode-only and stop
    before any request finishes, so undoing is subtracting. O(B + K)."""
    pd, B = s.pd, shape.max_batch
    L = pd.win_len[d]
    kept = _kept(pd.win_b[d], L, y)
    cut = active & (kept < L)
    drop = jnp.where(cut, L - kept, 0)
    b, x = pd.win_b[d], pd.win_x[d]
    K = x.shape[0]
    j = jnp.arange(K)
    gone = (j >= kept) & (j < L)
    dur = b[1:] - b[:K]
    ids = s.run_ids[d]
    rows = (jnp.arange(B) < s.n_run[d]) & cut
    return s._replace(
        computed=s.computed.at[jnp.where(rows, ids, s.computed.shape[0])].add(-drop, mode="drop"),
        generated=s.generated.at[jnp.where(rows, ids, s.generated.shape[0])].add(-drop, mode="drop"),
        clock=put(s.clock, d, b[kept], cut),
        free_blocks=put(s.free_blocks, d, s.free_blocks[d] + x[L - 1] - x[kept - 1], cut),
        busy_s=put(s.busy_s, d, s.busy_s[d] - jnp.sum(jnp.where(gone, dur, 0.0)), cut),
        block_s=put(s.block_s, d, s.block_s[d]
                    - jnp.sum(jnp.where(gone, (pd.win_used[d] + x) * dur, 0.0)), cut),
        iterations=put(s.iterations, d, s.iterations[d] - drop, cut),
        pd=pd._replace(win_len=put(pd.win_len, d, kept, cut)),
    )


# ---- DISPATCH: a finished prompt is handed to a decode instance
def next_dispatch(shape: SimShape, p: SimParams, s: SimState):
    """(time, prefill instance) of the earliest outbox with prompts waiting (inf when none)."""
    ready = jnp.where(s.pd.o_len > 0, s.pd.o_time, jnp.inf)
    r = jnp.argmin(ready).astype(I32)
    return ready[r], r


def choose_decode(shape: SimShape, p: SimParams, s: SimState, t):
    """The decode instance a hand-off at ``t`` goes to: round robin over the decode instances
    (the slots after the arrival receivers), the one with the fewest outstanding requests, or
    the one with the most free KV blocks at ``t`` (lowest index on a tie)."""
    roles = instance_roles(p, jnp)
    dec = roles == DECODE
    first = jnp.argmax(dec).astype(I32)
    n_dec = jnp.maximum(jnp.sum(dec, dtype=I32), 1)
    rr = first + s.pd.handoff_rr % n_dec
    lor = jnp.argmin(jnp.where(dec, s.outstanding, jnp.iinfo(I32).max))
    mfk = jnp.argmax(jnp.where(dec, free_as_of(shape, s, t), -1))
    router = p.engine.decode_router
    return jnp.where(router == LEAST_OUTSTANDING, lor,
                     jnp.where(router == MOST_FREE_KV, mfk, rr)).astype(I32)


def dispatch(shape: SimShape, p: SimParams, s: SimState, r, t, active) -> SimState:
    """Hand the head of prefill instance ``r``'s outbox to a decode instance: it joins that
    instance's link queue, whose next transfer starts if it can."""
    pd = s.pd
    rid = pd.outbox[r, jnp.minimum(pd.o_head[r], shape.max_batch - 1)]
    d = choose_decode(shape, p, s, t)
    Q = shape.queue_capacity
    tail = (pd.xq_head[d] + pd.xq_len[d]) % Q
    pd = pd._replace(
        o_head=put(pd.o_head, r, pd.o_head[r] + 1, active),
        o_len=put(pd.o_len, r, pd.o_len[r] - 1, active),
        xq=pd.xq.at[d, tail].set(jnp.where(active, rid, pd.xq[d, tail]).astype(I32)),
        xq_len=put(pd.xq_len, d, pd.xq_len[d] + 1, active),
        decode_replica=put_drop(pd.decode_replica, jnp.maximum(rid, 0), d, active),
        handoff_rr=pd.handoff_rr + active.astype(I32),
    )
    s = s._replace(pd=pd, outstanding=put(s.outstanding, d, s.outstanding[d] + 1, active),
                   overflow=s.overflow | (active & (s.pd.xq_len[d] >= Q)))
    return start_next(shape, p, s, d, t, active)


# ---- TRANSFER: a prompt's KV has reached its decode instance
def next_transfer(shape: SimShape, p: SimParams, s: SimState):
    """(time, decode instance) of the earliest transfer to end (inf when none is on a link)."""
    d = jnp.argmin(s.pd.x_end).astype(I32)
    return s.pd.x_end[d], d


def transfer_done(shape: SimShape, p: SimParams, s: SimState, d, t, active) -> SimState:
    """End decode instance ``d``'s transfer at ``t``: the prefill instance frees the prompt's
    blocks (and wakes if work waits for them); the request joins ``d``'s running set with the
    prompt less its last token computed, nothing scheduled until ``d``'s next step (``d``
    wakes if idle); the link takes its next transfer."""
    pd, wl, B = s.pd, p.workload, shape.max_batch
    rid = jnp.maximum(pd.x_req[d], 0)
    prompt = wl.prompt[rid]
    src = jnp.maximum(s.replica[rid], 0)
    eng_src, _ = instance_params(p, src)
    freed = ceil_div(prompt, eng_src.block_size)
    waiting = (s.q_len[src] + s.n_pre[src]) > 0
    n = s.n_run[d]
    slot = jnp.minimum(n, B - 1)
    s = s._replace(
        free_blocks=put(s.free_blocks, src, s.free_blocks[src] + freed, active),
        clock=put(s.clock, src, t, active & waiting & jnp.isinf(s.clock[src])),
        computed=put_drop(s.computed, rid, jnp.maximum(prompt - 1, 0), active),
        run_ids=s.run_ids.at[d, slot].set(jnp.where(active, rid, s.run_ids[d, slot])),
        sched=s.sched.at[d, slot].set(jnp.where(active, 0, s.sched[d, slot])),
        n_run=put(s.n_run, d, n + 1, active),
        slots_full=s.slots_full | (active & (n >= B)),
        pd=pd._replace(x_req=put(pd.x_req, d, -1, active), x_end=put(pd.x_end, d, jnp.inf, active),
                       transfer_end_s=put_drop(pd.transfer_end_s, rid, t, active)),
    )
    s = s._replace(clock=put(s.clock, d, t, active & jnp.isinf(s.clock[d])))
    return start_next(shape, p, s, d, t, active)


# ---- horizons (decode fast-forward)
def transfer_horizon(shape: SimShape, p: SimParams, s: SimState, r):
    """The end of the transfer on instance ``r``'s link (it then joins ``r``'s running set)."""
    return s.pd.x_end[r]


def capacity_ok(p: SimParams, tokens, prompt):
    """Whether a request of ``prompt`` / ``tokens`` (prompt + output) tokens fits every decode
    instance: its whole sequence in KV blocks, and (without chunked prefill) in the token
    budget, for the recompute that a preemption there would need."""
    roles = instance_roles(p, jnp)
    pools = p.engine.pools
    k = jnp.maximum(p.engine.pool, 0)
    bs, budget, chunked = pools.block_size[k], pools.max_batched_tokens[k], pools.chunked_prefill[k]
    bad = (ceil_div(tokens, bs) > instance_kv_blocks(p, jnp)) | (~chunked & (tokens > budget))
    return ~jnp.any((roles == DECODE) & bad)
