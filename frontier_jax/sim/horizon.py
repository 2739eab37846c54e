"""When new work can next reach an instance: one function per event source.

Decode fast-forward (:mod:`frontier_jax.sim.fast_forward`) jumps a run of identical decode
iterations only up to the first time something could change the instance's batch from
outside: a new request routed to it. Each source of outside work has one horizon function
here, ``(shape, params, state, instance) -> seconds`` (``inf`` when the source can bring
it nothing more); :func:`work_horizon` is their minimum. A source added later (a KV
transfer completing at a decode instance) adds its function to :data:`HORIZONS`.
"""

import jax.numpy as jnp

from frontier_jax.contract import ROUND_ROBIN, SimParams, SimShape, live_instances
from frontier_jax.sim.types import SimState


def arrival_horizon(shape: SimShape, p: SimParams, s: SimState, r):
    """Arrival time of the next request the router may send to instance ``r``.

    Under round robin the router's counter says which one: the live instances are a prefix
    of the slots and the counter skips rejected requests, so instance r's next request is
    at least ``(r - counter) mod live`` arrivals ahead (a rejection in between only delays
    it). Under least-outstanding routing any arrival may reach it.
    """
    N = shape.num_requests
    n_live = jnp.sum(live_instances(p, jnp), dtype=jnp.int32)
    ahead = jnp.where(p.engine.router == ROUND_ROBIN, (r - s.rr_counter) % n_live, 0)
    nxt = s.next_arrival + ahead
    return jnp.where(nxt < N, p.workload.arrival_s[jnp.minimum(nxt, N - 1)], jnp.inf)


HORIZONS = (arrival_horizon,)


def work_horizon(shape: SimShape, p: SimParams, s: SimState, r):
    """The earliest time any source can bring instance ``r`` new work (s)."""
    t = HORIZONS[0](shape, p, s, r)
    for h in HORIZONS[1:]:
        t = jnp.minimum(t, h(shape, p, s, r))
    return t
