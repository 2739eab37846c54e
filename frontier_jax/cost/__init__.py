"""Cost model: iteration time of one engine step from the batch's slot arrays.

One interface for every tier: ``iteration_time(batch, params, xp)`` with ``batch`` a
:class:`BatchSlots` and ``params`` a :class:`CostParams`; ``xp`` is ``numpy`` (the
reference simulator) or ``jax.numpy`` (the vectorized simulator). The same
expressions run in both, so the two simulators see identical costs.
"""

from collections.abc import Callable
from typing import NamedTuple

from frontier_jax.cost.batch import BatchSlots, batch_totals
from frontier_jax.cost.params import CostParams, cost_params_from_scenario
from frontier_jax.cost.roofline import (
    decode_window_times,
    iteration_time,
    layer_time,
    op_times,
    totals_time,
)


class CostModel(NamedTuple):
    """One cost-model tier: pure functions of (batch, params, xp).

    iteration_time(batch, params, xp) -> seconds of one iteration;
    decode_window_times(batch, params, xp, k) -> [k] seconds of k successive
    iterations of a decode-only batch whose contexts grow by one token each;
    step_times(batch, params, xp, k) -> (iteration_time, decode_window_times with its
    first entry replaced by the iteration time), optional: one pass that shares the work
    of both (the simulator's engine step uses it when given).
    prepare(params, max_tokens, max_seqs) -> params, optional, host side: called once per
    configuration when its params are built (:func:`frontier_jax.sim.build.sim_params`),
    returns the :class:`CostParams` with the tier's precomputed ``tables`` attached (an
    iteration has at most ``max_tokens`` tokens and ``max_seqs`` sequences). Prices are the
    same with or without them; tables only make the step cheaper.
    Hashable, so it can be a static argument of jit.
    """

    iteration_time: Callable
    decode_window_times: Callable
    step_times: Callable | None = None
    prepare: Callable | None = None


ROOFLINE = CostModel(iteration_time, decode_window_times)

__all__ = [
    "ROOFLINE",
    "BatchSlots",
    "CostModel",
    "decode_window_times",
    "totals_time",
    "CostParams",
    "batch_totals",
    "cost_params_from_scenario",
    "iteration_time",
    "layer_time",
    "op_times",
]
