"""Exact event-driven reference simulator (the oracle for the vectorized one)."""

from frontier_jax.reference.simulator import simulate_reference

__all__ = ["simulate_reference"]
