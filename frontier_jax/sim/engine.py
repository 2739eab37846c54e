"""Event handler (STEP): one instance's engine step (vLLM-v1-like), as a pipeline of stages.

At its clock the instance runs, in order::

    complete  the in-flight iteration ends: KV grows by the scheduled tokens, sequences whose
              known tokens are all computed emit a token, finished ones free their KV blocks
    schedule_running  running requests in admission order under the token budget, preempting
              the newest (recompute) when KV blocks run out
    admit     if nobody was preempted, waiting requests FIFO (preempted ones first) while the
              sequence cap, token budget and KV blocks allow
    form_batch  the new running row and the iteration's batch (:class:`BatchSlots`)
    price     the iteration's time from the cost model (and, when the tier gives them, the
              times of a decode window in the same pass)
    advance   how far the clock moves: one iteration, or a fast-forwarded window of identical
              decode iterations (:mod:`frontier_jax.sim.fast_forward`)
    commit    every write to the state, masked by ``active``

Each stage is a small function of (shape, params, state, ...) in closed form (prefix sums
instead of greedy loops), O(B) per step; every write is masked by ``active`` so the step
is branch-free under vmap. :mod:`frontier_jax.reference.simulator` is the same engine
written as the greedy loops.
"""

from typing import Any, NamedTuple

import jax.numpy as jnp

from frontier_jax.contract import (
    DECODE,
    PREFILL,
    PoolParams,
    SimParams,
    SimShape,
    instance_params,
)
from frontier_jax.cost import BatchSlots, CostModel, CostParams, IterationContext
from frontier_jax.sim._ops import (
    I32,
    ceil_div,
    compact,
    cumsum,
    excl_cumsum,
    prefix_true,
    put,
    put_row,
    scatter,
)
from frontier_jax.sim.fast_forward import Window, decode_window
from frontier_jax.sim.horizon import work_horizon
from frontier_jax.sim.pd import apply_start, transfer_start
from frontier_jax.sim.types import SimState


class At(NamedTuple):
    """The step being taken: instance ``r`` at time ``t`` (a no-op unless ``active``), with
    its pool's engine knobs and cost params (read once, :func:`instance_params`)."""

    r: Any
    t: Any
    active: Any
    eng: PoolParams
    cost: CostParams


class Running(NamedTuple):
    """The instance's running requests after completion, compacted ([B] each)."""

    n: Any
    ids: Any
    computed: Any
    generated: Any
    prompt: Any
    output: Any


def complete(shape: SimShape, p: SimParams, s: SimState, at: At):
    """Apply the end of the instance's in-flight iteration at ``at.t``.

    Returns (state, running requests still unfinished, KV blocks freed).
    """
    wl, bs, r, active = p.workload, at.eng.block_size, at.r, at.active
    slot = jnp.arange(shape.max_batch)
    ids = s.run_ids[r]
    in_run = slot < s.n_run[r]
    safe = jnp.where(in_run, ids, 0)
    prompt, out = wl.prompt[safe], wl.output[safe]
    gen = s.generated[safe]
    sched = jnp.where(in_run, s.sched[r], 0)
    comp = s.computed[safe] + sched
    ran = in_run & (sched > 0) & active
    sampled = ran & (comp == prompt + gen)
    if shape.disaggregated:  # a prefill instance hands a finished prompt on (KV kept)
        handed = sampled & (gen == 0) & (out > 1) & (at.eng.role == PREFILL)
        sampled = sampled & ~handed
    gen1 = gen + sampled.astype(I32)
    first = sampled & (gen == 0)
    done = sampled & (gen1 == out)
    left = done | handed if shape.disaggregated else done
    freed = jnp.sum(jnp.where(done, ceil_div(comp, bs), 0), dtype=I32)
    tt = jnp.full(ids.shape, at.t)
    s = s._replace(
        computed=scatter(s.computed, ids, comp, ran),
        generated=scatter(s.generated, ids, gen1, ran),
        first_token_s=scatter(s.first_token_s, ids, tt, first),
        finish_s=scatter(s.finish_s, ids, tt, done),
        outstanding=put(s.outstanding, r, s.outstanding[r] - jnp.sum(left, dtype=I32), active),
    )
    if shape.disaggregated:
        s = hand_off(shape, s, at, ids, handed)
    n, *cols = compact(in_run & ~left, ids, comp, gen1, prompt, out)
    return s, Running(n, *cols), freed


def hand_off(shape: SimShape, s: SimState, at: At, ids, handed) -> SimState:
    """A prefill instance's finished prompts (``handed``, in running order) wait in its outbox
    for their DISPATCH events at ``at.t``; their KV blocks stay taken until their transfers end."""
    pd, r, active = s.pd, at.r, at.active
    count, row = compact(handed, ids)
    return s._replace(pd=pd._replace(
        prefill_end_s=scatter(pd.prefill_end_s, ids, jnp.full(ids.shape, at.t), handed),
        outbox=put_row(pd.outbox, r, row, active),
        o_head=put(pd.o_head, r, 0, active),
        o_len=put(pd.o_len, r, count, active),
        o_time=put(pd.o_time, r, at.t, active),
    ))


class RunPlan(NamedTuple):
    """How the running requests fare this iteration ([B] arrays over running slots)."""

    kept: Any  # requests that stay running (a prefix); the rest are preempted
    alloc: Any  # tokens scheduled per slot (0 if not scheduled)
    preempted: Any  # bool per slot
    free_after: Any  # free KV blocks after allocation and preemption
    budget_left: Any  # token budget left for admissions


def schedule_running(e: PoolParams, run: Running, free0) -> RunPlan:
    """vLLM v1's running loop, closed form (``e``: the instance's engine knobs).

    Sequentially each running request takes min(need, budget left) tokens; when its
    new KV blocks do not fit, the newest running request is preempted (its blocks
    freed) until they fit or it preempts itself. The requests visited (budget left
    > 0) are a prefix [0, V). Keeping the first m requests is consistent when the
    visited ones among them fit in the free blocks plus the blocks held by requests
    m.., i.e. new_blocks(0..min(m, V) - 1) <= free0 + held(m..). The left side grows
    with m and the right side shrinks, so the consistent m form a prefix [0, m*], and
    the greedy loop keeps exactly m* requests: one O(B) pass, no loop, no search.
    """
    bs, budget = e.block_size, e.max_batched_tokens
    B = run.ids.shape[0]
    slot = jnp.arange(B)
    live = slot < run.n
    need = jnp.where(live, run.prompt + run.generated - run.computed, 0)
    need = jnp.where(e.chunked_prefill, jnp.minimum(need, e.max_chunk), need)
    alloc = jnp.clip(budget - excl_cumsum(need), 0, need)
    visited = alloc > 0
    held = jnp.where(live, ceil_div(run.computed, bs), 0)
    new_blocks = jnp.where(visited, ceil_div(run.computed + alloc, bs) - held, 0)
    # m = 0..B: blocks needed by the visited requests among the first m, and blocks
    # held from m on.
    zero = jnp.zeros(1, held.dtype)
    need_upto = jnp.concatenate([zero, cumsum(new_blocks)])
    held_from = jnp.concatenate([cumsum(held[::-1])[::-1], zero])
    m = jnp.arange(B + 1)
    consistent = (need_upto <= free0 + held_from) & (m <= run.n)
    kept = (jnp.sum(consistent) - 1).astype(I32)
    scheduled = visited & (slot < kept)
    preempted = live & (slot >= kept)
    free_after = (
        free0
        + jnp.sum(jnp.where(preempted, held, 0))
        - jnp.sum(jnp.where(scheduled, new_blocks, 0))
    )
    alloc = jnp.where(scheduled, alloc, 0)
    return RunPlan(kept, alloc, preempted, free_after.astype(I32), budget - jnp.sum(alloc))


class Admission(NamedTuple):
    """Waiting requests admitted this iteration ([B] arrays over candidates)."""

    slots_bound: Any  # the B slots, not max_num_seqs, stopped an admission
    count: Any
    ids: Any
    alloc: Any
    generated: Any
    prompt: Any
    from_pre: Any  # admitted from the preempted deque (rest from the ring)
    blocks: Any  # KV blocks they take


def admit(shape: SimShape, p: SimParams, s: SimState, at: At, plan: RunPlan, allowed) -> Admission:
    """FIFO admission from the waiting queue (preempted deque, then the arrival ring)."""
    e, wl, r = at.eng, p.workload, at.r
    B, Q = shape.max_batch, shape.queue_capacity
    j = jnp.arange(B)
    n_pre = s.n_pre[r]
    k = j - n_pre
    ring_ids = s.queue[r, (s.q_head[r] + jnp.maximum(k, 0)) % Q]
    ids = jnp.where(j < n_pre, s.pre_ids[r], ring_ids)
    valid = (j < n_pre) | (k < s.q_len[r])
    safe = jnp.where(valid, ids, 0)
    gen = s.generated[safe]
    prompt = wl.prompt[safe]
    need = jnp.where(valid, prompt + gen, 0)
    left = plan.budget_left
    piece = jnp.minimum(need, e.max_chunk)  # a chunk: at most max_chunk tokens
    chunked = jnp.clip(left - excl_cumsum(piece), 0, piece)
    alloc = jnp.where(e.chunked_prefill, chunked, need)
    ok_tokens = jnp.where(e.chunked_prefill, chunked > 0, cumsum(need) <= left)
    blocks = ceil_div(alloc, e.block_size)
    # Blocks this candidate must find free: its chunk's, or (vLLM's reserve_full_isl) its
    # whole sequence's; blocks actually taken are the chunk's.
    check_blocks = jnp.where(e.reserve_full_isl, ceil_div(need, e.block_size), blocks)
    fits = excl_cumsum(blocks) + check_blocks <= plan.free_after
    cap = e.max_num_seqs - plan.kept
    if shape.disaggregated:  # a transfer on a decode instance's link holds a sequence slot
        cap = cap - (s.pd.x_req[r] >= 0).astype(I32)
    ok = valid & (j < cap) & ok_tokens & fits
    ok = ok & allowed
    adm = prefix_true(ok & (j < B - plan.kept))
    # Fewer slots than max_num_seqs is exact as long as the slots never bind; flag it
    # when they do, so the caller reruns with more slots.
    would = jnp.sum(prefix_true(ok))
    slots_bound = (would > jnp.sum(adm)) | (
        (would == B) & (n_pre + s.q_len[r] > B) & (e.max_num_seqs > B)
    )
    return Admission(
        slots_bound,
        jnp.sum(adm, dtype=I32),
        ids,
        jnp.where(adm, alloc, 0),
        gen,
        prompt,
        adm & (j < n_pre),
        jnp.where(adm, blocks, 0),
    )


class Row(NamedTuple):
    """The instance's new running row ([B]): kept requests, then the admitted ones."""

    ids: Any
    q: Any  # tokens scheduled this iteration
    ctx: Any  # tokens already computed (the KV context)
    gen: Any  # tokens generated so far
    out: Any  # output length (admitted rows: gen + 1, they never fast-forward)
    batch: BatchSlots  # the iteration's batch, as the cost model reads it


def form_batch(shape: SimShape, run: Running, plan: RunPlan, adm: Admission) -> Row:
    """The new running row: the kept prefix, then the admitted requests."""
    B = shape.max_batch
    slot = jnp.arange(B)
    off = jnp.clip(slot - plan.kept, 0, B - 1)
    is_new = (slot >= plan.kept) & (slot < plan.kept + adm.count)
    is_old = slot < plan.kept
    ids = jnp.where(is_old, run.ids, jnp.where(is_new, adm.ids[off], -1))
    q = jnp.where(is_old, plan.alloc, jnp.where(is_new, adm.alloc[off], 0))
    ctx = jnp.where(is_old, run.computed, 0)
    gen = jnp.where(is_old, run.generated, adm.generated[off])
    prompt = jnp.where(is_old, run.prompt, adm.prompt[off])
    batch = BatchSlots(
        q_tokens=q,
        ctx_tokens=ctx,
        is_decode=(gen > 0) & (prompt + gen - ctx == 1),
        samples=ctx + q == prompt + gen,
        mask=q > 0,
        ids=ids,
    )
    out = jnp.where(is_old, run.output, gen + 1)
    return Row(ids, q, ctx, gen, out, batch)


class Price(NamedTuple):
    """The iteration's time (s), and the [K] times of a decode window when the tier prices
    both in one pass (``CostModel.step_times``; else None); ``resources``: the [K, 4] busy
    seconds of an AF group's resources over the window (``CostModel.resource_times``; else
    None)."""

    dur: Any
    window_times: Any
    resources: Any = None


def price(shape: SimShape, p: SimParams, s: SimState, at: At, row: Row, cost: CostModel):
    """Price the batch with the cost model; returns (:class:`Price`, the iteration context)."""
    ctx = IterationContext(p.seed, at.r, s.iterations[at.r])
    res = None
    if cost.resource_times is not None:
        res = cost.resource_times(row.batch, at.cost, jnp, max(shape.decode_window, 1), ctx)
    if cost.step_times is not None and shape.decode_window > 1:
        dur, window_times = cost.step_times(row.batch, at.cost, jnp, shape.decode_window, ctx)
        return Price(dur, window_times, res), ctx
    return Price(cost.iteration_time(row.batch, at.cost, jnp, ctx), None, res), ctx


class Queues(NamedTuple):
    """Waiting-queue counts after this step's preemptions and admissions."""

    n_preempted: Any  # running requests preempted now (to the front of the queue)
    n_pop_pre: Any  # admitted from the preempted deque
    n_pop_ring: Any  # admitted from the arrival ring
    n_pre_left: Any  # previously preempted requests still waiting
    n_waiting: Any  # every request still waiting


def queue_counts(s: SimState, at: At, run: Running, plan: RunPlan, adm: Admission) -> Queues:
    """How the waiting queue changes this step."""
    n_preempted = run.n - plan.kept
    n_pop_pre = jnp.sum(adm.from_pre, dtype=I32)
    n_pop_ring = adm.count - n_pop_pre
    n_pre_left = s.n_pre[at.r] - n_pop_pre
    n_waiting = n_pre_left + n_preempted + s.q_len[at.r] - n_pop_ring
    return Queues(n_preempted, n_pop_pre, n_pop_ring, n_pre_left, n_waiting)


def advance(shape: SimShape, p: SimParams, s: SimState, at: At, plan: RunPlan, adm: Admission,
            row: Row, pr: Price, ctx, qs: Queues, cost: CostModel, free, horizon) -> Window:
    """How far the instance's clock moves: the iteration, or a window of identical decode
    iterations up to ``horizon`` (the earliest time new work can reach the instance:
    :func:`frontier_jax.sim.horizon.work_horizon`), with ``free`` KV blocks after this
    iteration's allocation."""
    mask = row.batch.mask
    used = at.eng.kv_blocks - free
    eligible = (
        jnp.any(mask)
        & (qs.n_waiting == 0)
        & (adm.count == 0)
        & (jnp.sum(mask) == plan.kept)
        & jnp.all(row.batch.is_decode | ~mask)
    )
    return decode_window(
        shape, at.eng, at.cost, cost, row.batch, row.out - row.gen, free, used, at.t, pr.dur,
        horizon, eligible, pr.window_times, ctx,
    )


def commit(shape: SimShape, s: SimState, at: At, run: Running, plan: RunPlan, adm: Admission,
           row: Row, qs: Queues, win: Window, free, pr: Price | None = None) -> SimState:
    """Write the step's outcome into the state (every write masked by ``at.active``)."""
    B, r, active = shape.max_batch, at.r, at.active
    slot = jnp.arange(B)
    mask = row.batch.mask
    busy = jnp.any(mask)
    # Preempted requests go to the front of the waiting queue, in running order.
    pre_pos = jnp.where(plan.preempted, slot - plan.kept, B)
    old_pre = s.pre_ids[r]
    shifted = old_pre[jnp.clip(slot + qs.n_pop_pre, 0, B - 1)]
    pre_row = jnp.where(slot < qs.n_pre_left, shifted, -1)
    pre_row = jnp.where(slot >= qs.n_preempted, jnp.roll(pre_row, qs.n_preempted), -1)
    pre_row = pre_row.at[pre_pos].set(run.ids, mode="drop")
    skip = jnp.where(mask, win.length - 1, 0)  # iterations completed inside the window
    tt = jnp.full((B,), at.t)
    first_sched = s.first_sched_s[jnp.where(adm.ids >= 0, adm.ids, 0)]
    fresh = (jnp.arange(B) < adm.count) & jnp.isinf(first_sched)
    computed = scatter(s.computed, run.ids, jnp.zeros_like(run.ids), plan.preempted & active)
    ff = active & (win.length > 1)
    free_end = free - win.new_blocks
    if shape.disaggregated:  # the first time a decode instance schedules a request; the window
        pd = s.pd
        first_d = mask & (at.eng.role == DECODE) & jnp.isinf(pd.decode_sched_s[jnp.maximum(row.ids, 0)])
        s = s._replace(pd=pd._replace(
            decode_sched_s=scatter(pd.decode_sched_s, row.ids, tt, first_d & active),
            win_b=put_row(pd.win_b, r, win.bounds, active),
            win_x=put_row(pd.win_x, r, win.extra, active),
            win_len=put(pd.win_len, r, win.length, active),
            win_used=put(pd.win_used, r, at.eng.kv_blocks - free, active)))
    if s.af_busy_s is not None:  # an AF group: its resources' work over the window
        within = jnp.arange(pr.resources.shape[0]) < jnp.where(busy, win.length, 0)
        add = jnp.sum(jnp.where(within[:, None], pr.resources, 0.0), axis=0)
        s = s._replace(af_busy_s=put_row(s.af_busy_s, r, s.af_busy_s[r] + add, active))
    return s._replace(
        computed=scatter(computed, row.ids, row.ctx + skip, mask & ff),
        generated=scatter(s.generated, row.ids, row.gen + skip, mask & ff),
        preemptions=s.preemptions.at[
            jnp.where(plan.preempted & active, run.ids, shape.num_requests)
        ].add(1, mode="drop"),
        first_sched_s=scatter(s.first_sched_s, adm.ids, tt, fresh & active),
        run_ids=put_row(s.run_ids, r, row.ids, active),
        n_run=put(s.n_run, r, plan.kept + adm.count, active),
        sched=put_row(s.sched, r, row.q, active),
        pre_ids=put_row(s.pre_ids, r, pre_row, active),
        n_pre=put(s.n_pre, r, qs.n_pre_left + qs.n_preempted, active),
        q_head=put(s.q_head, r, (s.q_head[r] + qs.n_pop_ring) % shape.queue_capacity, active),
        q_len=put(s.q_len, r, s.q_len[r] - qs.n_pop_ring, active),
        free_blocks=put(s.free_blocks, r, free_end, active),
        clock=put(s.clock, r, jnp.where(busy, win.end_s, jnp.inf), active),
        busy_s=put(s.busy_s, r, s.busy_s[r] + win.busy_s, active),
        block_s=put(s.block_s, r, s.block_s[r] + win.block_s, active),
        iterations=put(s.iterations, r, s.iterations[r] + jnp.where(busy, win.length, 0), active),
        slots_full=s.slots_full | (active & adm.slots_bound),
        overflow=s.overflow | (active & (qs.n_pre_left + qs.n_preempted > B)),
        kv_out_of_range=s.kv_out_of_range
        | (active & ((free_end < 0) | (free_end > at.eng.kv_blocks))),
    )


def next_step(shape: SimShape, p: SimParams, s: SimState):
    """(time, instance) of the earliest instance clock (inf when every instance is idle;
    the lowest index on a tie)."""
    r = jnp.argmin(s.clock).astype(I32)
    return s.clock[r], r


def instance_step(shape: SimShape, p: SimParams, s: SimState, r, t, active,
                  cost: CostModel) -> SimState:
    """Process instance ``r``'s step at time ``t`` when ``active`` (else a no-op)."""
    eng, cp = instance_params(p, r)
    at = At(r, t, active, eng, cp)
    s, run, freed = complete(shape, p, s, at)
    plan = schedule_running(eng, run, s.free_blocks[r] + freed)
    adm = admit(shape, p, s, at, plan, run.n == plan.kept)  # no admission after a preemption
    row = form_batch(shape, run, plan, adm)
    pr, ctx = price(shape, p, s, at, row, cost)
    qs = queue_counts(s, at, run, plan, adm)
    free = plan.free_after - jnp.sum(adm.blocks, dtype=I32)
    horizon = work_horizon(shape, p, s, r)
    if shape.disaggregated:  # a decode instance starts its next transfer if it now can
        start = transfer_start(shape, p, s, r, t, free, plan.kept + adm.count, qs.n_waiting)
        free = free - start.blocks
        horizon = jnp.minimum(horizon, jnp.where(start.ok, start.end_s, jnp.inf))
    win = advance(shape, p, s, at, plan, adm, row, pr, ctx, qs, cost, free, horizon)
    s = commit(shape, s, at, run, plan, adm, row, qs, win, free, pr)
    if shape.disaggregated:
        s = apply_start(shape, s, r, t, start, active)
    return s
