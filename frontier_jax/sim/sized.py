"""Batch slots sized by the run itself: rerun with twice the slots while they bind.

Per-step cost is linear in the batch slots B, so runs start small
(:data:`frontier_jax.params.INITIAL_SLOTS`) and a configuration whose slots bound an
admission (``SimResult.slots_full``: the run stopped early) is rerun with twice as many, up
to its largest sequence cap, where the slots can no longer bind. Results never depend on
the guess. This is the one doubling loop: the runner, the sweep, max-QPS and the optimiser
all go through :func:`simulate_sized`.
"""

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import jax
import numpy as np

from frontier_jax.contract import SimParams, SimResult, SimShape
from frontier_jax.cost import ROOFLINE, CostModel
from frontier_jax.params import pad_af, pad_moe, slot_cap, stack
from frontier_jax.sim.run import simulate, simulate_batch


def simulate_sized(
    shape: SimShape,
    configs: Sequence[SimParams],
    cost: CostModel = ROOFLINE,
    *,
    chunk_size: int | None = None,
    sharding: Any = None,
) -> tuple[list[SimResult], list[int]]:
    """Simulate configurations (one each, numpy leaves), doubling the batch slots of those
    whose slots bound (up to each one's largest ``max_num_seqs``), starting from
    ``shape.max_batch``. They share ``shape`` otherwise and the static cost model ``cost``.

    A single configuration with no ``chunk_size`` runs unbatched (``simulate``); otherwise
    every round is one ``simulate_batch`` call of ``chunk_size`` configurations (default:
    all of them), padded by repeating one, so every round reuses one executable; the
    configuration axis is placed with ``sharding`` when given.

    Returns (results as numpy, batch slots each was run with), in the order of ``configs``.
    """
    configs = pad_af(pad_moe(list(configs)))  # one MoE / AF shape for every round (reruns stack subsets)
    caps = [slot_cap(c) for c in configs]
    cap = max(caps)
    size = chunk_size or len(configs)
    todo = list(range(len(configs)))
    results: list[Any] = [None] * len(configs)
    slots = [0] * len(configs)
    b = shape.max_batch
    while todo:
        sh = replace(shape, max_batch=b)
        if chunk_size is None and len(configs) == 1:
            out = [jax.device_get(simulate(sh, configs[0], cost))]
        else:
            batch = [configs[i] for i in todo]
            batch += [batch[0]] * (size - len(batch))
            params = stack(batch, shape.max_instances)
            if sharding is not None:
                params = jax.device_put(params, sharding)
            res = jax.device_get(simulate_batch(sh, params, cost))
            out = [jax.tree.map(lambda x, j=j: x[j], res) for j in range(len(todo))]
        again = []
        for one, i in zip(out, todo, strict=True):
            if bool(one.slots_full) and b < caps[i]:
                again.append(i)
            else:
                results[i], slots[i] = one, b
        todo, b = again, min(cap, 2 * b)
    return results, slots


def stack_results(results: Sequence[SimResult]) -> SimResult:
    """Results of single configurations stacked on a leading [C] axis."""
    return jax.tree.map(lambda *xs: np.stack(xs), *results)


__all__ = ["simulate_sized", "stack_results"]
