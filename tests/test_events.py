"""The vectorized simulator picks the next event by the contract's (time, kind, index) key."""

import itertools

import jax.numpy as jnp
import numpy as np
from helpers import make_params

from frontier_jax.contract import ARRIVAL, EVENT_KINDS, STEP, event_key
from frontier_jax.sim import init_state, sim_shape
from frontier_jax.sim.events import next_event, sources


def test_next_event_is_the_least_event_key():
    p = make_params(n=4, replicas=3)
    shape = sim_shape(p)
    p = p._replace(workload=p.workload._replace(arrival_s=np.array([0.5, 1.0, 1.0, 2.0])))
    assert [s.kind for s in sources(shape)] == sorted(s.kind for s in sources(shape))
    assert ARRIVAL < EVENT_KINDS["dispatch"] < EVENT_KINDS["transfer"] < STEP
    times = (0.5, 1.0, 2.0, np.inf)
    for nxt, clocks in itertools.product(range(5), itertools.product(times, repeat=3)):
        s = init_state(shape, p)._replace(next_arrival=jnp.int32(nxt), clock=jnp.asarray(clocks))
        keys = [event_key(float(p.workload.arrival_s[nxt]), ARRIVAL, nxt)] if nxt < 4 else []
        keys += [event_key(c, STEP, r) for r, c in enumerate(clocks) if np.isfinite(c)]
        ev = next_event(shape, p, s)
        if not keys:
            assert not bool(ev.found)
            continue
        want = min(keys)
        chosen = [i for src, i in zip(sources(shape), ev.indices, strict=True) if src.kind == int(ev.kind)][0]
        assert (float(ev.time), int(ev.kind), int(chosen)) == want
