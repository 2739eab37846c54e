"""Cost model: iteration time of one engine step from the batch's slot arrays.

One interface for every tier: ``iteration_time(batch, params, xp)`` with ``batch`` a
:class:`BatchSlots` and ``params`` a :class:`CostParams`; ``xp`` is ``numpy`` (the
reference simulator) or ``jax.numpy`` (the vectorized simulator). The same
expressions run in both, so the two simulators see identical costs.
"""

from frontier_jax.cost.batch import BatchSlots, batch_totals
from frontier_jax.cost.params import CostParams, cost_params_from_scenario
from frontier_jax.cost.roofline import iteration_time, layer_time, op_times

__all__ = [
    "BatchSlots",
    "CostParams",
    "batch_totals",
    "cost_params_from_scenario",
    "iteration_time",
    "layer_time",
    "op_times",
]
