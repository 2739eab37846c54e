"""The vectorized simulator: fixed-shape event loop under jit and vmap.

Modules: :mod:`.types` (the loop state; the types shared with the reference are in
:mod:`frontier_jax.contract`), :mod:`.events` (event kinds, their sources and handlers, the
(time, kind, index) order), :mod:`.route` (ARRIVAL: the global router), :mod:`.engine` (STEP:
an instance's engine step, as stages), :mod:`.fast_forward` (decode windows),
:mod:`.horizon` (when work can next reach an instance), :mod:`.run` (init, loop,
``simulate`` / ``simulate_batch``), :mod:`.sized` (rerun with more batch slots while they
bind).
"""

from frontier_jax.contract import (
    INACTIVE,
    LEAST_OUTSTANDING,
    REJECTED,
    ROUND_ROBIN,
    EngineParams,
    PoolParams,
    SimParams,
    SimResult,
    SimShape,
    WorkloadArrays,
)
from frontier_jax.params import sim_params, sim_shape, stack, unstack
from frontier_jax.sim.events import step
from frontier_jax.sim.run import init_state, simulate, simulate_batch
from frontier_jax.sim.types import SimState

__all__ = [
    "INACTIVE",
    "LEAST_OUTSTANDING",
    "REJECTED",
    "ROUND_ROBIN",
    "EngineParams",
    "PoolParams",
    "SimParams",
    "SimResult",
    "SimShape",
    "SimState",
    "WorkloadArrays",
    "init_state",
    "sim_params",
    "sim_shape",
    "simulate",
    "simulate_batch",
    "stack",
    "step",
    "unstack",
]
