"""The event kinds of the vectorized simulator: where each comes from and who handles it.

Each kind of :data:`frontier_jax.contract.EVENT_KINDS` that has a source here is an
:class:`EventSource`: ``next(shape, params, state) -> (time, index)`` finds its earliest
pending event (``inf`` when none), ``handle(shape, params, state, index, time, active,
cost) -> state`` processes it as a masked, branch-free update. :func:`next_event` takes the
minimum over the sources by the contract's key ``(time, kind, index)``, exactly as the
reference simulator's heap does, and :func:`step` runs every handler masked by whether its
kind won. The PD kinds (DISPATCH, TRANSFER: :mod:`frontier_jax.sim.pd`) are compiled only for
a disaggregated shape. Adding an event kind is one more source in :data:`SOURCES`, in kind
order, plus its horizon in :mod:`frontier_jax.sim.horizon`.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp

from frontier_jax.contract import ARRIVAL, DISPATCH, STEP, TRANSFER, SimParams, SimShape
from frontier_jax.cost import ROOFLINE, CostModel
from frontier_jax.sim._ops import I32
from frontier_jax.sim.engine import instance_step, next_step
from frontier_jax.sim.pd import dispatch, next_dispatch, next_transfer, transfer_done
from frontier_jax.sim.route import next_arrival, route
from frontier_jax.sim.types import SimState


class EventSource(NamedTuple):
    """One event kind: its number (the tie-break rank), where its next event is, its handler."""

    kind: int
    next: Callable
    handle: Callable


def _route(shape, p, s, i, t, active, cost):
    return route(shape, p, s, i, t, active)


def _dispatch(shape, p, s, i, t, active, cost):
    return dispatch(shape, p, s, i, t, active)


def _transfer(shape, p, s, i, t, active, cost):
    return transfer_done(shape, p, s, i, t, active)


SOURCES = (
    EventSource(ARRIVAL, next_arrival, _route),
    EventSource(DISPATCH, next_dispatch, _dispatch),
    EventSource(TRANSFER, next_transfer, _transfer),
    EventSource(STEP, next_step, instance_step),
)
assert [src.kind for src in SOURCES] == sorted(src.kind for src in SOURCES)
_PD_ONLY = (DISPATCH, TRANSFER)


def sources(shape: SimShape) -> tuple[EventSource, ...]:
    """The event sources a shape compiles: every kind in a PD layout, arrivals and steps in a
    co-located one (no hand-offs there)."""
    return SOURCES if shape.disaggregated else tuple(s for s in SOURCES if s.kind not in _PD_ONLY)


class Event(NamedTuple):
    """The next event: its kind and time (``found`` is False when none is pending: time
    inf), and each source's own candidate index (``indices[k]`` for ``sources(shape)[k]``:
    the request or instance its handler would process)."""

    kind: Any
    time: Any
    found: Any
    indices: tuple


def next_event(shape: SimShape, p: SimParams, s: SimState) -> Event:
    """The earliest pending event by ``(time, kind, index)``: sources are visited in kind
    order and a later one wins only with a strictly earlier time (each source breaks its own
    ties by index)."""
    srcs = sources(shape)
    t, i = srcs[0].next(shape, p, s)
    kind = jnp.asarray(srcs[0].kind, I32)
    indices = [i]
    for src in srcs[1:]:
        t_k, i_k = src.next(shape, p, s)
        later_wins = t_k < t
        t = jnp.where(later_wins, t_k, t)
        kind = jnp.where(later_wins, src.kind, kind)
        indices.append(i_k)
    return Event(kind, t, jnp.isfinite(t), tuple(indices))


def step(shape: SimShape, p: SimParams, s: SimState, cost: CostModel = ROOFLINE) -> SimState:
    """Process one event: every handler runs, masked by whether its kind won (what ``vmap``
    makes of a switch anyway). Also for one configuration: a ``lax.switch`` there made XLA
    copy the per-request [N] arrays each step (measured: 39 -> 76 us/step co-located and
    145 -> 521 PD at N = 100k, ``benchmarks/speed.py`` step scaling), an O(N) step."""
    ev = next_event(shape, p, s)
    for src, i in zip(sources(shape), ev.indices, strict=True):
        s = src.handle(shape, p, s, i, ev.time, ev.found & (ev.kind == src.kind), cost)
    return s._replace(
        steps=s.steps + ev.found.astype(I32),
        backwards=s.backwards | (ev.found & (ev.time < s.last_t)),
        last_t=jnp.where(ev.found, ev.time, s.last_t),
    )


def pending(shape: SimShape, p: SimParams, s: SimState):
    """True while any source has a pending event."""
    return jnp.isfinite(next_event(shape, p, s).time)
