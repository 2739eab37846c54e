"""When new work can next reach an instance: one function per event source.

Decode fast-forward (:mod:`frontier_jax.sim.fast_forward`) jumps a run of identical decode
iterations only up to the first time something could change the instance's batch from
outside: a new request routed to it. Each source of outside work has one horizon function
here, ``(shape, params, state, instance) -> seconds`` (``inf`` when the source can bring
it nothing more); :func:`work_horizon` is their minimum over :func:`horizons`: arrivals, and
in a PD layout the KV transfer on a decode instance's link.
"""

import jax.numpy as jnp

from frontier_jax.contract import ROUND_ROBIN, SimParams, SimShape
from frontier_jax.sim.pd import transfer_horizon
from frontier_jax.sim.route import receivers
from frontier_jax.sim.types import SimState


def arrival_horizon(shape: SimShape, p: SimParams, s: SimState, r):
    """Arrival time of the next request the router may send to instance ``r`` (inf for an
    instance that receives no arrivals: a decode instance).

    Under round robin the router's counter says which one: the receiving instances are a
    prefix of the slots and the counter skips rejected requests, so instance r's next request
    is at least ``(r - counter) mod receivers`` arrivals ahead (a rejection in between only
    delays it). Under least-outstanding routing any arrival may reach it.
    """
    N = shape.num_requests
    recv = receivers(shape, p)
    n_recv = jnp.sum(recv, dtype=jnp.int32)
    ahead = jnp.where(p.engine.router == ROUND_ROBIN, (r - s.rr_counter) % n_recv, 0)
    nxt = s.next_arrival + ahead
    t = jnp.where(nxt < N, p.workload.arrival_s[jnp.minimum(nxt, N - 1)], jnp.inf)
    return jnp.where(recv[r], t, jnp.inf) if shape.disaggregated else t


def horizons(shape: SimShape) -> tuple:
    """The horizon functions of the event sources a shape compiles: arrivals, and in a PD
    layout the end of a decode instance's transfer in flight (:mod:`frontier_jax.sim.pd`).
    A transfer that starts at a decode instance later, in the middle of its window, cuts
    the window there instead (:func:`frontier_jax.sim.pd.truncate`): bounding windows by
    every prefill instance's next step would cut them at every prefill iteration."""
    if not shape.disaggregated:
        return (arrival_horizon,)
    return (arrival_horizon, transfer_horizon)


def work_horizon(shape: SimShape, p: SimParams, s: SimState, r):
    """The earliest time any source can bring instance ``r`` new work (s)."""
    fns = horizons(shape)
    t = fns[0](shape, p, s, r)
    for h in fns[1:]:
        t = jnp.minimum(t, h(shape, p, s, r))
    return t
