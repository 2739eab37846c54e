"""Sweeps: specs with axes and constraints, chunked vmapped execution, resume, max-QPS."""

from frontier_jax.sweep.execute import run_sweep
from frontier_jax.sweep.expand import Config, expand
from frontier_jax.sweep.plan import plan
from frontier_jax.sweep.spec import Axis, MaxQPS, SweepSpec, load_sweep, sweep_from_dict

__all__ = [
    "Axis",
    "Config",
    "MaxQPS",
    "SweepSpec",
    "expand",
    "load_sweep",
    "plan",
    "run_sweep",
    "sweep_from_dict",
]
