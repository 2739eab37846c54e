"""The exact reference simulator: a heapq event loop in plain Python and numpy.

Same policies, same cost model (the roofline expressions evaluated with numpy), same
event order as the vectorized simulator: events are keyed (time, kind, index) with
arrivals (kind 0) before replica events (kind 1), so ties break identically. It is
written as the greedy loops of a vLLM-v1-like scheduler, so it doubles as the
readable specification of what :mod:`frontier_jax.sim.engine` computes in closed form.
"""

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from frontier_jax.cost import ROOFLINE, BatchSlots, CostModel
from frontier_jax.sim.types import (
    REJECTED,
    ROUND_ROBIN,
    UNROUTED,
    SimParams,
    SimResult,
)

ARRIVAL, REPLICA = 0, 1


@dataclass
class _Replica:
    clock: float = math.inf
    running: list = field(default_factory=list)  # request ids in admission order
    sched: dict = field(default_factory=dict)  # id -> tokens in the in-flight iteration
    waiting: deque = field(default_factory=deque)  # preempted first, then arrivals
    free_blocks: int = 0
    outstanding: int = 0
    busy_s: float = 0.0
    block_s: float = 0.0
    iterations: int = 0


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def simulate_reference(
    params: SimParams,
    max_replicas: int,
    cost: CostModel = ROOFLINE,
    on_iteration=None,
) -> SimResult:
    """Run one configuration event by event; returns a :class:`SimResult` of numpy arrays.

    ``params`` holds scalars (not batched). ``cost`` prices each iteration with numpy
    (default: the roofline tier). ``on_iteration(replica,
    start_s, dur_s, batch, free_blocks)``, if given, is called for every iteration.
    """
    e, wl = params.engine, params.workload
    n_rep, router = int(e.num_replicas), int(e.router)
    max_seqs, max_tokens = int(e.max_num_seqs), int(e.max_batched_tokens)
    chunked, bs, kv_blocks = bool(e.chunked_prefill), int(e.block_size), int(e.kv_blocks)
    reserve_full = bool(e.reserve_full_isl)
    arrival = [float(x) for x in np.asarray(wl.arrival_s)]
    prompt = [int(x) for x in np.asarray(wl.prompt)]
    output = [int(x) for x in np.asarray(wl.output)]
    N = len(arrival)
    max_steps = int(e.max_steps)

    computed, generated, preempts = [0] * N, [0] * N, [0] * N
    first_sched, first_token, finish = [math.inf] * N, [math.inf] * N, [math.inf] * N
    replica_of = [UNROUTED] * N
    reps = [_Replica(free_blocks=kv_blocks) for _ in range(max_replicas)]
    rr = 0
    heap: list = []
    if N:
        heapq.heappush(heap, (arrival[0], ARRIVAL, 0))
    steps, last_t, backwards, kv_bad = 0, 0.0, False, False

    while heap and steps < max_steps:
        t, kind, idx = heapq.heappop(heap)
        steps += 1
        backwards |= t < last_t
        last_t = t
        if kind == ARRIVAL:
            if idx + 1 < N:
                heapq.heappush(heap, (arrival[idx + 1], ARRIVAL, idx + 1))
            tokens = prompt[idx] + output[idx]
            if _cdiv(tokens, bs) > kv_blocks or (not chunked and tokens > max_tokens):
                replica_of[idx] = REJECTED
                continue
            if router == ROUND_ROBIN:
                tgt = rr % n_rep
            else:
                tgt = min(range(n_rep), key=lambda j: (reps[j].outstanding, j))
            rr += 1
            rep = reps[tgt]
            replica_of[idx] = tgt
            rep.waiting.append(idx)
            rep.outstanding += 1
            if math.isinf(rep.clock):
                rep.clock = t
                heapq.heappush(heap, (t, REPLICA, tgt))
            continue

        rep = reps[idx]
        # 1. Complete the in-flight iteration.
        still = []
        for rid in rep.running:
            n = rep.sched.get(rid, 0)
            computed[rid] += n
            if n and computed[rid] == prompt[rid] + generated[rid]:
                generated[rid] += 1
                if generated[rid] == 1:
                    first_token[rid] = t
                if generated[rid] == output[rid]:
                    finish[rid] = t
                    rep.free_blocks += _cdiv(computed[rid], bs)
                    rep.outstanding -= 1
                    continue
            still.append(rid)
        rep.running = still
        # 2. Running requests, in admission order, under the token budget.
        budget, sched, preempted = max_tokens, {}, False
        i = 0
        while i < len(rep.running) and budget > 0:
            rid = rep.running[i]
            n = min(prompt[rid] + generated[rid] - computed[rid], budget)
            new_blocks = _cdiv(computed[rid] + n, bs) - _cdiv(computed[rid], bs)
            self_preempted = False
            while new_blocks > rep.free_blocks:
                victim = rep.running.pop()
                rep.free_blocks += _cdiv(computed[victim], bs)
                computed[victim] = 0
                preempts[victim] += 1
                rep.waiting.appendleft(victim)
                preempted = True
                if victim == rid:
                    self_preempted = True
                    break
            if self_preempted:
                break
            rep.free_blocks -= new_blocks
            sched[rid] = n
            budget -= n
            i += 1
        # 3. Admit waiting requests FIFO, unless someone was preempted.
        while not preempted and rep.waiting and len(rep.running) < max_seqs and budget > 0:
            rid = rep.waiting[0]
            need = prompt[rid] + generated[rid]
            if not chunked and need > budget:
                break
            n = min(need, budget)
            blocks = _cdiv(n, bs)
            if (_cdiv(need, bs) if reserve_full else blocks) > rep.free_blocks:
                break
            rep.waiting.popleft()
            rep.running.append(rid)
            rep.free_blocks -= blocks
            sched[rid] = n
            budget -= n
            if math.isinf(first_sched[rid]):
                first_sched[rid] = t
        # 4. Price the batch and schedule the replica's next event.
        rows = [r for r in rep.running if sched.get(r, 0) > 0]
        rep.sched = sched
        if not rows:
            rep.clock = math.inf
            continue
        q = np.array([sched[r] for r in rows])
        ctx = np.array([computed[r] for r in rows])
        gen = np.array([generated[r] for r in rows])
        pr = np.array([prompt[r] for r in rows])
        batch = BatchSlots(
            q_tokens=q,
            ctx_tokens=ctx,
            is_decode=(gen > 0) & (pr + gen - ctx == 1),
            samples=ctx + q == pr + gen,
            mask=np.ones(len(rows), bool),
        )
        dur = float(cost.iteration_time(batch, params.cost, np))
        if on_iteration is not None:
            on_iteration(idx, t, dur, batch, rep.free_blocks)
        kv_bad |= not 0 <= rep.free_blocks <= kv_blocks
        rep.busy_s += dur
        rep.block_s += (kv_blocks - rep.free_blocks) * dur
        rep.iterations += 1
        rep.clock = t + dur
        heapq.heappush(heap, (rep.clock, REPLICA, idx))

    f64 = np.float64
    return SimResult(
        first_sched_s=np.array(first_sched, f64),
        first_token_s=np.array(first_token, f64),
        finish_s=np.array(finish, f64),
        generated=np.array(generated, np.int32),
        preemptions=np.array(preempts, np.int32),
        replica=np.array(replica_of, np.int32),
        busy_s=np.array([r.busy_s for r in reps], f64),
        block_s=np.array([r.block_s for r in reps], f64),
        iterations=np.array([r.iterations for r in reps], np.int32),
        kv_blocks=np.int32(kv_blocks),
        steps=np.int32(steps),
        end_s=f64(last_t),
        incomplete=bool(heap),
        overflow=False,
        slots_full=False,
        kv_out_of_range=kv_bad,
        backwards=backwards,
    )
