"""The event loop: init, step (one event of the earliest kind), simulate under jit/vmap."""

import jax
import jax.numpy as jnp

from frontier_jax.contract import (
    AF_RESOURCES,
    UNROUTED,
    PDTimes,
    SimParams,
    SimResult,
    SimShape,
    instance_kv_blocks,
    with_instances,
)
from frontier_jax.cost import ROOFLINE, CostModel
from frontier_jax.sim._ops import I32
from frontier_jax.sim.events import pending, step
from frontier_jax.sim.pd import init_pd
from frontier_jax.sim.types import SimState


def init_state(shape: SimShape, p: SimParams, cost: CostModel = ROOFLINE) -> SimState:
    """Empty system: nothing routed, every instance idle with all its KV blocks free
    (``p`` has ``shape.max_instances`` instance slots); ``cost`` says whether AF resources
    are accounted."""
    N, R, B, Q = shape.num_requests, shape.max_instances, shape.max_batch, shape.queue_capacity
    inf_n = jnp.full((N,), jnp.inf)
    zeros_r = jnp.zeros((R,), I32)
    return SimState(
        computed=jnp.zeros((N,), I32),
        generated=jnp.zeros((N,), I32),
        first_sched_s=inf_n,
        first_token_s=inf_n,
        finish_s=inf_n,
        preemptions=jnp.zeros((N,), I32),
        replica=jnp.full((N,), UNROUTED, I32),
        next_arrival=jnp.zeros((), I32),
        rr_counter=jnp.zeros((), I32),
        clock=jnp.full((R,), jnp.inf),
        outstanding=zeros_r,
        free_blocks=instance_kv_blocks(p, jnp).astype(I32),
        run_ids=jnp.full((R, B), -1, I32),
        n_run=zeros_r,
        sched=jnp.zeros((R, B), I32),
        pre_ids=jnp.full((R, B), -1, I32),
        n_pre=zeros_r,
        queue=jnp.full((R, Q), -1, I32),
        q_head=zeros_r,
        q_len=zeros_r,
        busy_s=jnp.zeros((R,)),
        block_s=jnp.zeros((R,)),
        iterations=zeros_r,
        steps=jnp.zeros((), I32),
        last_t=jnp.zeros(()),
        overflow=jnp.zeros((), bool),
        slots_full=jnp.zeros((), bool),
        kv_out_of_range=jnp.zeros((), bool),
        backwards=jnp.zeros((), bool),
        pd=init_pd(shape, p) if shape.disaggregated else None,
        af_busy_s=None if cost.resource_times is None else jnp.zeros((R, len(AF_RESOURCES))),
    )


def has_work(shape: SimShape, p: SimParams, s: SimState):
    """True while an event is pending and the batch slots have not bound (such a run stops
    early, to be rerun with more slots)."""
    return pending(shape, p, s) & ~s.slots_full


def _result(shape: SimShape, params: SimParams, s: SimState) -> SimResult:
    return SimResult(
        first_sched_s=s.first_sched_s,
        first_token_s=s.first_token_s,
        finish_s=s.finish_s,
        generated=s.generated,
        preemptions=s.preemptions,
        replica=s.replica,
        pool=params.engine.pool,
        kv_blocks=instance_kv_blocks(params, jnp),
        busy_s=s.busy_s,
        block_s=s.block_s,
        iterations=s.iterations,
        steps=s.steps,
        end_s=s.last_t,
        incomplete=pending(shape, params, s),
        overflow=s.overflow,
        slots_full=s.slots_full,
        kv_out_of_range=s.kv_out_of_range,
        backwards=s.backwards,
        pd=None if s.pd is None else PDTimes(s.pd.decode_replica, s.pd.prefill_end_s,
                                             s.pd.transfer_start_s, s.pd.transfer_end_s,
                                             s.pd.decode_sched_s),
        af_busy_s=s.af_busy_s,
    )


def _simulate(shape: SimShape, params: SimParams, cost: CostModel = ROOFLINE) -> SimResult:
    params = with_instances(params, shape.max_instances, jnp)
    s = jax.lax.while_loop(
        lambda s: has_work(shape, params, s) & (s.steps < params.engine.max_steps),
        lambda s: step(shape, params, s, cost),
        init_state(shape, params, cost),
    )
    return _result(shape, params, s)


def _simulate_batch(shape: SimShape, params: SimParams, cost: CostModel = ROOFLINE) -> SimResult:
    # The loop stays outside vmap: a batched while-loop predicate would make XLA select
    # between old and new state for every leaf each step, an O(N) copy per step. Here
    # the predicate is one scalar and finished configurations step as no-ops.
    params = with_instances(params, shape.max_instances, jnp)
    vstep = jax.vmap(lambda p, s: step(shape, p, s, cost))
    vwork = jax.vmap(lambda p, s: has_work(shape, p, s) & (s.steps < p.engine.max_steps))
    s = jax.lax.while_loop(
        lambda s: jnp.any(vwork(params, s)),
        lambda s: vstep(params, s),
        jax.vmap(lambda p: init_state(shape, p, cost))(params),
    )
    return jax.vmap(lambda p, s: _result(shape, p, s))(params, s)


class _Entry:
    """A compiled simulator entry point. ``cost`` is always handed to the jitted function
    explicitly: ``jax.jit`` keys its cache on how a static argument was given, so a call
    that left ``cost`` to its default and one that passed ``ROOFLINE`` would each compile."""

    def __init__(self, fn, doc: str):
        self._jit = jax.jit(fn, static_argnums=(0, 2))
        self.__doc__ = doc

    def __call__(self, shape: SimShape, params: SimParams, cost: CostModel = ROOFLINE) -> SimResult:
        return self._jit(shape, params, cost)

    def lower(self, shape: SimShape, params: SimParams, cost: CostModel = ROOFLINE):
        return self._jit.lower(shape, params, cost)

    def _cache_size(self) -> int:
        return self._jit._cache_size()


simulate = _Entry(_simulate, """Run one configuration to completion (or until ``params.engine.max_steps`` events).

Returns a :class:`SimResult`. ``shape`` and ``cost`` are static; a second call with
new params values of the same shapes does not recompile.
""")

simulate_batch = _Entry(_simulate_batch, """Run a batch of configurations (params leaves with a leading [C] axis) in one call.

Returns a :class:`SimResult` whose leaves have a leading [C] axis.
""")
