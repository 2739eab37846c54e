"""The vectorized simulator: fixed-shape event loop under jit and vmap."""

from frontier_jax.sim.build import sim_params, sim_shape, stack, unstack
from frontier_jax.sim.run import init_state, simulate, simulate_batch, step
from frontier_jax.sim.types import (
    LEAST_OUTSTANDING,
    REJECTED,
    ROUND_ROBIN,
    EngineParams,
    SimParams,
    SimResult,
    SimShape,
    SimState,
    WorkloadArrays,
)

__all__ = [
    "LEAST_OUTSTANDING",
    "REJECTED",
    "ROUND_ROBIN",
    "EngineParams",
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
