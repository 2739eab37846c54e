"""Event handler (ARRIVAL): the global router hands the next arriving request to an instance."""

import jax.numpy as jnp

from frontier_jax.contract import (
    ARRIVAL_ROLES,
    PREFILL,
    REJECTED,
    ROUND_ROBIN,
    SimParams,
    SimShape,
    instance_params,
    instance_roles,
    live_instances,
)
from frontier_jax.sim._ops import I32, ceil_div, put
from frontier_jax.sim.pd import capacity_ok
from frontier_jax.sim.types import SimState


def next_arrival(shape: SimShape, p: SimParams, s: SimState):
    """(time, request index) of the next arrival (inf when none is left)."""
    N = shape.num_requests
    i = jnp.minimum(s.next_arrival, N - 1)
    return jnp.where(s.next_arrival < N, p.workload.arrival_s[i], jnp.inf), i


def receivers(shape: SimShape, p: SimParams):
    """bool [R]: the instances the arrival router sends requests to (a prefix of the slots):
    every live one in a co-located layout, the prefill instances in a PD layout."""
    if not shape.disaggregated:
        return live_instances(p, jnp)
    return jnp.isin(instance_roles(p, jnp), jnp.asarray(ARRIVAL_ROLES))


def route(shape: SimShape, p: SimParams, s: SimState, i, t, active) -> SimState:
    """Route request ``i`` (``s.next_arrival``, arriving at ``t``) if ``active``.

    Round robin takes the receiving instances (:func:`receivers`) in turn; least outstanding
    the one with the fewest routed, unfinished requests (lowest index on a tie). A request
    whose prompt + output can never fit its instance's KV blocks (or, without chunked
    prefill, the token budget) is rejected instead; in a PD layout its prompt must fit the
    prefill instance and its whole sequence every decode instance. An idle instance that
    receives a request wakes at ``t``.
    """
    wl = p.workload
    tokens = wl.prompt[i] + wl.output[i]
    recv = receivers(shape, p)
    n_recv = jnp.sum(recv, dtype=I32)
    lor = jnp.argmin(jnp.where(recv, s.outstanding, jnp.iinfo(I32).max))
    tgt = jnp.where(p.engine.router == ROUND_ROBIN, s.rr_counter % n_recv, lor).astype(I32)
    e, _ = instance_params(p, tgt)
    if shape.disaggregated:  # a prefill instance holds the prompt; decode instances the rest
        held = jnp.where(e.role == PREFILL, wl.prompt[i], tokens)
        reject = (ceil_div(held, e.block_size) > e.kv_blocks) | (
            ~e.chunked_prefill & (held > e.max_batched_tokens)
        ) | ((e.role == PREFILL) & ~capacity_ok(p, tokens, wl.prompt[i]))
    else:
        reject = (ceil_div(tokens, e.block_size) > e.kv_blocks) | (
            ~e.chunked_prefill & (tokens > e.max_batched_tokens)
        )
    ok = active & ~reject
    tail = (s.q_head[tgt] + s.q_len[tgt]) % shape.queue_capacity
    queue = s.queue.at[tgt, tail].set(jnp.where(ok, i, s.queue[tgt, tail]).astype(I32))
    wake = ok & jnp.isinf(s.clock[tgt])
    return s._replace(
        queue=queue,
        q_len=put(s.q_len, tgt, s.q_len[tgt] + 1, ok),
        overflow=s.overflow | (ok & (s.q_len[tgt] >= shape.queue_capacity)),
        outstanding=put(s.outstanding, tgt, s.outstanding[tgt] + 1, ok),
        clock=put(s.clock, tgt, t, wake),
        replica=put(s.replica, i, jnp.where(reject, REJECTED, tgt), active),
        rr_counter=s.rr_counter + ok.astype(I32),
        next_arrival=s.next_arrival + active.astype(I32),
    )
