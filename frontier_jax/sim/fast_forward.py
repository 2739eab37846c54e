"""Stage: fast-forward a replica through a run of identical decode-only iterations.

At low load a replica iterates once per output token with nothing else changing.
When its batch is decode-only, every running request is scheduled and nothing
waits, the next L iterations are the same batch with contexts one token longer
each, until (a) a request emits its last token, (b) new work may reach the instance
(:func:`frontier_jax.sim.horizon.work_horizon`: the next arrival the router may send it),
or (c) a sequence needs a KV block that is not free. This
stage finds the longest such window (at most ``shape.decode_window`` iterations)
and jumps it in one step. The reference simulator
runs the same iterations one by one; results agree (only the event count differs).
"""

from typing import Any, NamedTuple

import jax.numpy as jnp

from frontier_jax.contract import PoolParams, SimShape
from frontier_jax.cost import BatchSlots, CostModel, CostParams, IterationContext
from frontier_jax.sim._ops import I32, cumsum, excl_cumsum


class Window(NamedTuple):
    """Outcome: iterations covered (>= 1), end time, and sums to add to the accounting."""

    length: Any  # L iterations jumped (1 = an ordinary step)
    end_s: Any  # clock after the L-th iteration (s)
    busy_s: Any  # sum of the L iteration times (s)
    block_s: Any  # sum of used blocks x iteration time (block-seconds)
    new_blocks: Any  # KV blocks allocated by iterations 1..L-1
    bounds: Any  # [K + 1] iteration boundaries b_0 = t .. b_K (s); the window is b_0 .. b_L
    extra: Any  # [K] KV blocks allocated by iterations 1..j (extra[0] = 0)


def decode_window(
    shape: SimShape,
    eng: PoolParams,
    cost_params: CostParams,
    cost: CostModel,
    batch: BatchSlots,
    remaining,
    free,
    used,
    t,
    dur,
    t_next_work,
    eligible,
    window_times=None,
    ctx: IterationContext | None = None,
) -> Window:
    """Longest window of identical decode iterations starting at ``t`` (see module doc).

    ``eng``/``cost_params``: the instance's engine knobs and cost params; ``remaining``: [B]
    tokens each scheduled request has yet to emit (>= 1); ``free``/``used``: KV blocks after
    this iteration's allocation; ``dur``: this iteration's time; ``t_next_work``: the earliest
    time new work may reach the instance (:func:`frontier_jax.sim.horizon.work_horizon`);
    ``eligible``: decode-only batch, all running scheduled, nothing waiting;
    ``window_times``: the [K] iteration times if the caller priced them already
    (``CostModel.step_times``); ``ctx``: the first iteration's context (iteration j of the
    window is ``ctx``'s iteration + j).
    """
    K = shape.decode_window
    if K <= 1:
        return Window(jnp.ones((), I32), t + dur, dur, used * dur, jnp.zeros((), I32),
                      jnp.stack([t, t + dur]), jnp.zeros((1,), I32))
    bs = eng.block_size
    if window_times is None:
        window_times = cost.decode_window_times(batch, cost_params, jnp, K, ctx)
    d = window_times.at[0].set(dur)
    bounds = cumsum(jnp.concatenate([jnp.reshape(t, (1,)), d]))  # b_0 = t .. b_K
    # A sequence with context c = bs * m + r holds m + 1 + floor((r + j) / bs) blocks in
    # iteration j: floor(j / bs) more than in iteration 0, plus one once j mod bs > s,
    # with s = bs - 1 - r. Summed: extra[j] = n * floor(j / bs) + #{s < j mod bs}.
    s = bs - 1 - batch.ctx_tokens % bs
    hist = jnp.zeros(K, I32).at[jnp.where(batch.mask, s, K)].add(1, mode="drop")
    below = excl_cumsum(hist)  # below[v] = #{s < v}, v < K
    j = jnp.arange(K)
    n = jnp.sum(batch.mask, dtype=I32)
    extra = n * (j // bs) + below[j % bs]  # blocks allocated by iterations 1..j
    L = jnp.arange(1, K + 1)
    min_remaining = jnp.min(jnp.where(batch.mask, remaining, jnp.iinfo(I32).max))
    ok = (L == 1) | (
        eligible
        & (L <= min_remaining)
        & (extra <= free)
        & (bounds[:K] < t_next_work)
    )
    length = jnp.sum(ok, dtype=I32)  # ok is a prefix: every condition is monotone in L
    within = L <= length
    return Window(
        length=length,
        end_s=bounds[length],
        busy_s=jnp.sum(jnp.where(within, d, 0.0)),
        block_s=jnp.sum(jnp.where(within, (used + extra) * d, 0.0)),
        new_blocks=extra[length - 1],
        bounds=bounds,
        extra=extra,
    )
