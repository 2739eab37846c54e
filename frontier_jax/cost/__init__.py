"""Cost model: iteration time of one engine step from the batch's slot arrays.

One interface for every tier (:class:`CostModel`): ``iteration_time(batch, params, xp, ctx)``
with ``batch`` a :class:`BatchSlots`, ``params`` the instance's :class:`CostParams`, ``xp``
``numpy`` (the reference simulator) or ``jax.numpy`` (the vectorized simulator) and ``ctx``
the :class:`IterationContext` (instance, iteration index, and through them a key for
stochastic costs, derived statelessly). The same expressions run in both simulators, so the
two see identical costs.

Modules: :mod:`.batch` (slot arrays and their totals), :mod:`.features` (distributional batch
features of the predictors), :mod:`.roofline` (tier 1), :mod:`.surrogate` (tier 3, trained
networks in the step; its forward pass in :mod:`.mlp`), :mod:`.compose` (an iteration from
its layer and LM head, shared by the tiers), :mod:`.context` (iteration context and
stateless draws), :mod:`.routing` (MoE expert popularity, placement on EP ranks and sampled
rank loads), :mod:`.dp` (attention data-parallel ranks stepping together with EP), :mod:`.params` (the cost params pytree), :mod:`.tiers` (which tier a scenario
selects), :mod:`.calibrate` (the roofline's rates fitted to measured steps).
"""

from collections.abc import Callable
from typing import NamedTuple

from frontier_jax.cost import af_price, dp
from frontier_jax.cost.batch import BatchSlots, batch_totals
from frontier_jax.cost.compose import iteration_seconds
from frontier_jax.cost.context import IterationContext, uniforms
from frontier_jax.cost.params import CostParams, cost_params_from_scenario
from frontier_jax.cost.roofline import (
    decode_window_times,
    iteration_time,
    layer_time,
    op_times,
    totals_time,
)


class CostModel(NamedTuple):
    """One cost-model tier: pure functions of (batch, params, xp, ctx).

    iteration_time(batch, params, xp, ctx) -> seconds of one iteration;
    decode_window_times(batch, params, xp, k, ctx) -> [k] seconds of k successive
    iterations of a decode-only batch whose contexts grow by one token each (iteration j
    is ``ctx``'s iteration + j: its key is ``ctx.key(xp, j)``);
    step_times(batch, params, xp, k, ctx) -> (iteration_time, decode_window_times with its
    first entry replaced by the iteration time), optional: one pass that shares the work
    of both (the simulator's engine step uses it when given).
    prepare(params, max_tokens, max_seqs) -> params, optional, host side: called once per
    pool when a configuration's params are built (:func:`frontier_jax.params.sim_params`),
    returns the :class:`CostParams` with the tier's precomputed ``tables`` attached (an
    iteration has at most ``max_tokens`` tokens and ``max_seqs`` sequences). Prices are the
    same with or without them; tables only make the step cheaper.
    resource_times(batch, params, xp, k, ctx) -> [k, 4], optional (AF tiers): the seconds
    each resource of ``contract.AF_RESOURCES`` works in each of the k iterations (windowed
    like decode_window_times); the simulators sum them into ``SimResult.af_busy_s``.
    Hashable, so it can be a static argument of jit.
    """

    iteration_time: Callable
    decode_window_times: Callable
    step_times: Callable | None = None
    prepare: Callable | None = None
    resource_times: Callable | None = None


ROOFLINE = CostModel(iteration_time, decode_window_times)
# sampled MoE routing: the iteration is the window's first entry, so its maps are drawn once
# (and attention data parallelism, :mod:`.dp`, which falls back to the roofline's functions)
ROOFLINE_MOE = CostModel(dp.iteration_time, dp.decode_window_times, dp.step_times)
# attention/FFN disaggregation: the makespan of each iteration's (layer, micro-batch) graph
ROOFLINE_AF = CostModel(af_price.iteration_time, af_price.decode_window_times, af_price.step_times,
                        resource_times=af_price.resource_times)

__all__ = [
    "ROOFLINE",
    "ROOFLINE_AF",
    "ROOFLINE_MOE",
    "BatchSlots",
    "CostModel",
    "CostParams",
    "IterationContext",
    "batch_totals",
    "cost_params_from_scenario",
    "decode_window_times",
    "iteration_seconds",
    "iteration_time",
    "layer_time",
    "op_times",
    "totals_time",
    "uniforms",
]
