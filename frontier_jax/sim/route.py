"""Stage: the global router hands the next arriving request to a replica."""

import jax.numpy as jnp

from frontier_jax.sim._ops import I32, ceil_div, put
from frontier_jax.sim.types import REJECTED, ROUND_ROBIN, SimParams, SimShape, SimState


def route(shape: SimShape, p: SimParams, s: SimState, active) -> SimState:
    """Route request ``s.next_arrival`` if ``active`` (its arrival is the next event).

    A request whose prompt + output can never fit a replica's KV blocks (or, without
    chunked prefill, the token budget) is rejected instead. An idle replica that
    receives a request wakes at the arrival time.
    """
    e, wl = p.engine, p.workload
    i = jnp.minimum(s.next_arrival, shape.num_requests - 1)
    t = wl.arrival_s[i]
    tokens = wl.prompt[i] + wl.output[i]
    reject = (ceil_div(tokens, e.block_size) > e.kv_blocks) | (
        ~e.chunked_prefill & (tokens > e.max_batched_tokens)
    )
    live = jnp.arange(shape.max_replicas) < e.num_replicas
    lor = jnp.argmin(jnp.where(live, s.outstanding, jnp.iinfo(I32).max))
    tgt = jnp.where(e.router == ROUND_ROBIN, s.rr_counter % e.num_replicas, lor).astype(I32)
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
