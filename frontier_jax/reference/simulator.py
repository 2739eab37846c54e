"""The exact reference simulator: a heapq event loop in plain Python and numpy.

Same policies, same cost model (the tiers' expressions evaluated with numpy), same event
order as the vectorized simulator: events are keyed ``(time, kind, index)``
(:data:`frontier_jax.contract.EVENT_ORDER`: arrivals before instance steps on a tie, then
the lower index), so ties break identically. One handler per event kind
(:meth:`_Reference.on_arrival`, :meth:`_Reference.on_step`). It is written as the greedy
loops of a vLLM-v1-like scheduler, so it doubles as the readable specification of what
:mod:`frontier_jax.sim.engine` computes in closed form. It imports nothing from
:mod:`frontier_jax.sim`: the two simulators share only :mod:`frontier_jax.contract` and
:mod:`frontier_jax.cost`.
"""

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from frontier_jax.contract import (
    AF_RESOURCES,
    ARRIVAL,
    ARRIVAL_ROLES,
    DECODE,
    DISPATCH,
    INACTIVE,
    LEAST_OUTSTANDING,
    PREFILL,
    REJECTED,
    ROUND_ROBIN,
    STEP,
    TRANSFER,
    UNROUTED,
    PDTimes,
    SimParams,
    SimResult,
    event_key,
    instance_params,
    is_live,
    with_instances,
)
from frontier_jax.cost import ROOFLINE, BatchSlots, CostModel, IterationContext


@dataclass
class _Instance:
    pool: int  # pool index, or INACTIVE
    role: int = INACTIVE
    max_seqs: int = 0
    max_tokens: int = 0
    chunked: bool = True
    max_chunk: int = 0
    block_size: int = 1
    kv_blocks: int = 0
    reserve_full: bool = True
    cost: object = None  # the pool's cost params (numpy scalars)
    clock: float = math.inf
    running: list = field(default_factory=list)  # request ids in admission order
    sched: dict = field(default_factory=dict)  # id -> tokens in the in-flight iteration
    waiting: deque = field(default_factory=deque)  # preempted first, then arrivals
    free_blocks: int = 0
    outstanding: int = 0
    busy_s: float = 0.0
    af_busy_s: object = 0.0  # AF tiers: [4] seconds each resource worked (AF_RESOURCES)
    block_s: float = 0.0
    iterations: int = 0
    outbox: deque = field(default_factory=deque)  # PD prefill: finished prompts to dispatch
    link: deque = field(default_factory=deque)  # PD decode: dispatched requests awaiting transfer
    x_req: int = -1  # PD decode: the request whose KV is on the link


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _fits(inst: _Instance, tokens: int) -> bool:
    """Whether ``tokens`` of one sequence can ever fit the instance: its KV blocks, and without
    chunked prefill its token budget."""
    return _cdiv(tokens, inst.block_size) <= inst.kv_blocks and (inst.chunked or tokens <= inst.max_tokens)


def _kv_bytes_per_token(c) -> float:
    """KV bytes per token per GPU of an instance with cost params ``c`` (as sim.pd)."""
    return (2.0 * math.ceil(float(c.layers) / float(c.pp)) * math.ceil(float(c.kv_heads) / float(c.tp))
            * float(c.head_dim) * float(c.dtype_bytes))


class _Reference:
    """One run's state and its event handlers (see the module doc)."""

    def __init__(self, params: SimParams, max_instances: int, cost: CostModel, on_iteration,
                 on_transfer=None):
        params = with_instances(params, max_instances, np)
        self.params, self.cost, self.on_iteration = params, cost, on_iteration
        self.transfer_hook = on_transfer
        e, wl = params.engine, params.workload
        self.router = int(e.router)
        self.arrival = [float(x) for x in np.asarray(wl.arrival_s)]
        self.prompt = [int(x) for x in np.asarray(wl.prompt)]
        self.output = [int(x) for x in np.asarray(wl.output)]
        N = self.N = len(self.arrival)
        self.computed, self.generated, self.preempts = [0] * N, [0] * N, [0] * N
        self.first_sched, self.first_token, self.finish = [math.inf] * N, [math.inf] * N, [math.inf] * N
        self.replica_of = [UNROUTED] * N
        self.instances = []
        for r, pool in enumerate(np.asarray(e.pool).tolist()):
            inst = _Instance(int(pool))
            if is_live(pool):
                eng, cp = instance_params(params, r)
                inst.max_seqs, inst.max_tokens = int(eng.max_num_seqs), int(eng.max_batched_tokens)
                inst.chunked, inst.block_size = bool(eng.chunked_prefill), int(eng.block_size)
                inst.kv_blocks = inst.free_blocks = int(eng.kv_blocks)
                inst.reserve_full, inst.cost = bool(eng.reserve_full_isl), cp
                inst.max_chunk = int(eng.max_chunk)
                inst.role = int(eng.role)
            self.instances.append(inst)
        self.live = [i for i, inst in enumerate(self.instances) if is_live(inst.pool)]
        self.receivers = [i for i in self.live if self.instances[i].role in ARRIVAL_ROLES]
        self.decoders = [i for i in self.live if self.instances[i].role == DECODE]
        self.pd = bool(self.decoders)
        self.decode_router = int(e.decode_router)
        self.link_bw, self.link_lat = float(e.link_bw), float(e.link_lat_s)
        self.decode_of = [-1] * N
        self.prefill_end, self.xfer_start = [math.inf] * N, [math.inf] * N
        self.xfer_end, self.decode_sched = [math.inf] * N, [math.inf] * N
        self.rr = self.handoff_rr = 0
        self.heap: list = []
        self.kv_bad = False

    def push(self, t: float, kind: int, index: int) -> None:
        heapq.heappush(self.heap, event_key(t, kind, index))

    # ---- ARRIVAL: the global router
    def on_arrival(self, t: float, idx: int) -> None:
        if idx + 1 < self.N:
            self.push(self.arrival[idx + 1], ARRIVAL, idx + 1)
        if self.router == ROUND_ROBIN:
            tgt = self.receivers[self.rr % len(self.receivers)]
        else:
            tgt = min(self.receivers, key=lambda j: (self.instances[j].outstanding, j))
        inst = self.instances[tgt]
        tokens = self.prompt[idx] + self.output[idx]
        # a prefill instance holds the prompt; every decode instance must hold the sequence
        held = self.prompt[idx] if inst.role == PREFILL else tokens
        if not (_fits(inst, held) and all(_fits(self.instances[d], tokens) for d in self.decoders)):
            self.replica_of[idx] = REJECTED
            return
        self.rr += 1
        self.replica_of[idx] = tgt
        inst.waiting.append(idx)
        inst.outstanding += 1
        if math.isinf(inst.clock):
            inst.clock = t
            self.push(t, STEP, tgt)

    # ---- STEP: one instance's engine step
    def on_step(self, t: float, idx: int) -> None:
        inst = self.instances[idx]
        prompt, output, computed, generated = self.prompt, self.output, self.computed, self.generated
        bs = inst.block_size
        # 1. Complete the in-flight iteration.
        still = []
        for rid in inst.running:
            n = inst.sched.get(rid, 0)
            computed[rid] += n
            if n and computed[rid] == prompt[rid] + generated[rid]:
                if inst.role == PREFILL and generated[rid] == 0 and output[rid] > 1:
                    # the prompt is done: hand it on, its KV blocks stay until transferred
                    self.prefill_end[rid] = t
                    inst.outstanding -= 1
                    inst.outbox.append(rid)
                    self.push(t, DISPATCH, idx)
                    continue
                generated[rid] += 1
                if generated[rid] == 1:
                    self.first_token[rid] = t
                if generated[rid] == output[rid]:
                    self.finish[rid] = t
                    inst.free_blocks += _cdiv(computed[rid], bs)
                    inst.outstanding -= 1
                    continue
            still.append(rid)
        inst.running = still
        # 2. Running requests, in admission order, under the token budget.
        budget, sched, preempted = inst.max_tokens, {}, False
        i = 0
        while i < len(inst.running) and budget > 0:
            rid = inst.running[i]
            n = prompt[rid] + generated[rid] - computed[rid]
            n = min(n, inst.max_chunk, budget) if inst.chunked else min(n, budget)
            new_blocks = _cdiv(computed[rid] + n, bs) - _cdiv(computed[rid], bs)
            self_preempted = False
            while new_blocks > inst.free_blocks:
                victim = inst.running.pop()
                inst.free_blocks += _cdiv(computed[victim], bs)
                computed[victim] = 0
                self.preempts[victim] += 1
                inst.waiting.appendleft(victim)
                preempted = True
                if victim == rid:
                    self_preempted = True
                    break
            if self_preempted:
                break
            inst.free_blocks -= new_blocks
            sched[rid] = n
            budget -= n
            i += 1
        # 3. Admit waiting requests FIFO, unless someone was preempted (a transfer on a decode
        #    instance's link holds a sequence slot).
        seqs = inst.max_seqs - (inst.x_req >= 0)
        while not preempted and inst.waiting and len(inst.running) < seqs and budget > 0:
            rid = inst.waiting[0]
            need = prompt[rid] + generated[rid]
            if not inst.chunked and need > budget:
                break
            n = min(need, inst.max_chunk, budget) if inst.chunked else min(need, budget)
            blocks = _cdiv(n, bs)
            if (_cdiv(need, bs) if inst.reserve_full else blocks) > inst.free_blocks:
                break
            inst.waiting.popleft()
            inst.running.append(rid)
            inst.free_blocks -= blocks
            sched[rid] = n
            budget -= n
            if math.isinf(self.first_sched[rid]):
                self.first_sched[rid] = t
        # 4. A decode instance starts its next transfer if it now can.
        rows = [r for r in inst.running if sched.get(r, 0) > 0]
        inst.sched = sched
        if inst.role == DECODE:
            for r in rows:
                if math.isinf(self.decode_sched[r]):
                    self.decode_sched[r] = t
            self.start_transfer(idx, t)
        # 5. Price the batch and schedule the instance's next step.
        if not rows:
            inst.clock = math.inf
            return
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
            ids=np.array(rows),
        )
        it_ctx = IterationContext(self.params.seed, np.int32(idx), np.int32(inst.iterations))
        dur = float(self.cost.iteration_time(batch, inst.cost, np, it_ctx))
        if self.on_iteration is not None:
            self.on_iteration(idx, t, dur, batch, inst.free_blocks)
        self.kv_bad |= not 0 <= inst.free_blocks <= inst.kv_blocks
        inst.busy_s += dur
        if self.cost.resource_times is not None:
            inst.af_busy_s = inst.af_busy_s + self.cost.resource_times(batch, inst.cost, np, 1, it_ctx)[0]
        inst.block_s += (inst.kv_blocks - inst.free_blocks) * dur
        inst.iterations += 1
        inst.clock = t + dur
        self.push(inst.clock, STEP, idx)

    # ---- DISPATCH: a prefill instance hands a finished prompt to a decode instance
    def on_dispatch(self, t: float, idx: int) -> None:
        rid = self.instances[idx].outbox.popleft()
        if self.decode_router == ROUND_ROBIN:
            d = self.decoders[self.handoff_rr % len(self.decoders)]
        elif self.decode_router == LEAST_OUTSTANDING:
            d = min(self.decoders, key=lambda j: (self.instances[j].outstanding, j))
        else:  # MOST_FREE_KV
            d = min(self.decoders, key=lambda j: (-self.instances[j].free_blocks, j))
        self.handoff_rr += 1
        self.decode_of[rid] = d
        dec = self.instances[d]
        dec.outstanding += 1
        dec.link.append(rid)
        self.start_transfer(d, t)

    def start_transfer(self, d: int, t: float) -> None:
        """Decode instance ``d`` pulls the head of its link queue when its link is idle, no
        preempted request waits on it (first come, first served), and it can hold the
        prompt's KV (less the last token) in a free sequence slot."""
        dec = self.instances[d]
        if dec.x_req >= 0 or not dec.link or dec.waiting:
            return
        rid = dec.link[0]
        blocks = _cdiv(max(self.prompt[rid] - 1, 0), dec.block_size)
        if blocks > dec.free_blocks or len(dec.running) >= dec.max_seqs:
            return
        dec.link.popleft()
        dec.free_blocks -= blocks
        dec.x_req = rid
        self.xfer_start[rid] = t
        src = self.instances[self.replica_of[rid]].cost
        per_gpu = max(_kv_bytes_per_token(src), _kv_bytes_per_token(dec.cost))
        end = t + (self.link_lat + self.prompt[rid] * per_gpu / self.link_bw)
        if self.transfer_hook is not None:
            self.transfer_hook(d, t, end, rid, self.prompt[rid] * per_gpu)
        self.push(end, TRANSFER, d)

    # ---- TRANSFER: the prompt's KV has reached its decode instance
    def on_transfer(self, t: float, d: int) -> None:
        dec = self.instances[d]
        rid, dec.x_req = dec.x_req, -1
        self.xfer_end[rid] = t
        pre = self.instances[self.replica_of[rid]]
        pre.free_blocks += _cdiv(self.prompt[rid], pre.block_size)
        if math.isinf(pre.clock) and pre.waiting:
            pre.clock = t
            self.push(t, STEP, self.replica_of[rid])
        self.computed[rid] = max(self.prompt[rid] - 1, 0)
        dec.running.append(rid)
        if math.isinf(dec.clock):
            dec.clock = t
            self.push(t, STEP, d)
        self.start_transfer(d, t)

    def run(self) -> SimResult:
        handlers = {ARRIVAL: self.on_arrival, DISPATCH: self.on_dispatch,
                    TRANSFER: self.on_transfer, STEP: self.on_step}
        if self.N:
            self.push(self.arrival[0], ARRIVAL, 0)
        steps, last_t, backwards = 0, 0.0, False
        max_steps = int(self.params.engine.max_steps)
        while self.heap and steps < max_steps:
            t, kind, idx = heapq.heappop(self.heap)
            steps += 1
            backwards |= t < last_t
            last_t = t
            handlers[kind](t, idx)
        f64, insts = np.float64, self.instances
        return SimResult(
            first_sched_s=np.array(self.first_sched, f64),
            first_token_s=np.array(self.first_token, f64),
            finish_s=np.array(self.finish, f64),
            generated=np.array(self.generated, np.int32),
            preemptions=np.array(self.preempts, np.int32),
            replica=np.array(self.replica_of, np.int32),
            pool=np.array([r.pool for r in insts], np.int32),
            kv_blocks=np.array([r.kv_blocks for r in insts], np.int32),
            busy_s=np.array([r.busy_s for r in insts], f64),
            block_s=np.array([r.block_s for r in insts], f64),
            iterations=np.array([r.iterations for r in insts], np.int32),
            steps=np.int32(steps),
            end_s=f64(last_t),
            incomplete=bool(self.heap),
            overflow=False,
            slots_full=False,
            kv_out_of_range=self.kv_bad,
            backwards=backwards,
            pd=PDTimes(np.array(self.decode_of, np.int32), np.array(self.prefill_end, f64),
                       np.array(self.xfer_start, f64), np.array(self.xfer_end, f64),
                       np.array(self.decode_sched, f64)) if self.pd else None,
            af_busy_s=None if self.cost.resource_times is None else np.array(
                [np.broadcast_to(r.af_busy_s, (len(AF_RESOURCES),)) for r in insts], f64),
        )


def simulate_reference(
    params: SimParams,
    max_instances: int,
    cost: CostModel = ROOFLINE,
    on_iteration=None,
    on_transfer=None,
) -> SimResult:
    """Run one configuration event by event; returns a :class:`SimResult` of numpy arrays.

    ``params`` holds one configuration (no batch axis); ``max_instances``: instance slots of
    the result (at least the params' own). ``cost`` prices each iteration with numpy
    (default: the roofline tier). ``on_iteration(instance, start_s, dur_s, batch,
    free_blocks)``, if given, is called for every iteration; ``on_transfer(decode_instance,
    start_s, end_s, request, bytes_per_gpu)`` for every KV transfer of a PD layout.
    """
    return _Reference(params, max_instances, cost, on_iteration, on_transfer).run()
