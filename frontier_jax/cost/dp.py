"""Attention data parallelism with expert parallelism (DP + EP), roofline tier.

An instance of ``dp`` attention data-parallel ranks (each ``tp`` x ``pp`` GPUs) serves an
MoE model as vLLM's and SGLang's DP-attention + EP deployments do: every DP rank runs the
attention, projections, shared expert and dense layers of its own requests, and the routed
experts are spread over all ``dp x tp`` GPUs (``ep`` = dp x tp, whole experts per GPU; or
``ep`` = 1, every expert sharded over them). The ranks step together: per layer,

    layer = max over DP ranks (their non-expert time)
            + the slowest EP rank's GroupedGEMM over the rows of every DP rank
            + dispatch and combine (all-to-all, :func:`a2a_seconds`)

and an idle DP rank joins with an empty batch (it still reads its weights). Request ``i``
runs on DP rank :func:`dp_rank` (a hash of its id: a random DP router, ``BatchSlots.ids``), and
nothing else limits a rank: the instance has
one scheduler whose caps, token budget and KV blocks are the ranks' summed
(:func:`frontier_jax.params.engine_pools`), so a rank is never refused work another rank's
queue would have taken (optimistic against independent per-rank queues).

The sampled-MoE roofline tier (``cost.ROOFLINE_MOE``) prices through :func:`iteration_time`,
:func:`decode_window_times` and :func:`step_times` here: the roofline's own when the MoE params
carry one DP rank slot (``MoEParams.dp_ranks``, a static shape), this module's otherwise; a
configuration with dp = 1 stacked with wider ones gets the same prices either way (to
rounding; no all-to-all).
"""

from typing import Any

from frontier_jax.cost import roofline
from frontier_jax.cost.batch import BatchSlots, BatchTotals, batch_totals, grow_decode
from frontier_jax.cost.compose import iteration_seconds, link
from frontier_jax.cost.params import CostParams
from frontier_jax.cost.roofline import _expert_rank_seconds, _gemm, _keys, op_times
from frontier_jax.cost.routing import routed_loads


def uses_dp(p: CostParams) -> bool:
    """Static: whether ``p`` prices attention DP ranks (more than one DP rank slot)."""
    return p.moe is not None and p.moe.dp_ranks.shape[-1] > 1


def dp_rank(ids, dp, xp: Any):
    """The DP rank of request ``ids`` among ``dp``: a multiplicative (Fibonacci) hash of the id,
    so the DP router is independent of the replica router (request i mod dp would put every
    request of an instance behind a round-robin router of as many replicas on one rank)."""
    h = xp.asarray(ids).astype(xp.uint32) * xp.uint32(0x9E3779B1)
    return (xp.right_shift(h, xp.uint32(16)) % xp.asarray(dp).astype(xp.uint32)).astype(xp.int32)


def rank_totals(batch: BatchSlots, p: CostParams, xp: Any) -> BatchTotals:
    """Batch totals of each DP rank ([D] leaves): request ``i`` on rank :func:`dp_rank` (slot
    positions stand for ids when the batch carries none). O(D x B)."""
    live = p.moe.dp_ranks
    D = live.shape[-1]
    dp = xp.maximum(xp.sum(live, axis=-1), 1.0)
    ids = batch.ids if batch.ids is not None else xp.arange(batch.mask.shape[-1])
    on = dp_rank(ids, dp, xp)[None, :] == xp.arange(D)[:, None]  # [D, B]
    return batch_totals(batch._replace(mask=batch.mask & on), xp)


def a2a_seconds(t_rank: BatchTotals, t_all: BatchTotals, x, p: CostParams, xp: Any):
    """Seconds of one MoE layer's dispatch + combine ([..., G]; 0 with one DP rank).

    EP (ep > 1): each GPU sends the routed rows of its DP rank's tokens (its 1/tp slice of
    the busiest rank's tokens x top_k) and receives the rows of its own experts (``x``, the
    slowest EP rank's rows), the (ep - 1)/ep that cross GPUs, over NVLink within a node and
    the network across nodes; combine moves the same bytes back. ep = 1 (experts sharded over
    all dp x tp GPUs): an all-gather of every rank's tokens and a reduce-scatter back."""
    live = p.moe.dp_ranks
    dp = xp.sum(live, axis=-1)
    ep = p.moe.ep
    hb = p.hidden * p.dtype_bytes
    bw, lat = link(dp * p.tp, p, xp)
    busiest = xp.max(xp.where(live > 0, t_rank.num_tokens, 0.0), axis=-1)
    send = (busiest * p.top_k / p.tp)[..., None]
    ep_bytes = xp.maximum(send, x) * (1.0 - 1.0 / ep) * hb
    ag_bytes = (t_all.num_tokens * (1.0 - 1.0 / xp.maximum(dp, 1.0)) * hb)[..., None]
    nbytes = xp.where(ep > 1, ep_bytes, ag_bytes)
    return xp.where(dp > 1, 2.0 * (lat + nbytes / bw), 0.0)


def totals_time(t_all: BatchTotals, t_rank: BatchTotals, p: CostParams, xp: Any, key):
    """Seconds of one iteration from the whole batch's totals ``t_all`` ([...] leaves) and
    each DP rank's ``t_rank`` ([..., D]); ``key`` [..., 2] the iteration's routing key."""
    live = p.moe.dp_ranks > 0

    def slowest_rank(v):  # max over the live DP ranks
        return xp.max(xp.where(live, v, 0.0), axis=-1)

    ops = op_times(t_rank, p, xp)
    moe_layer = 0.0
    for name in sorted(ops):
        if name != "moe_experts":
            moe_layer = moe_layer + ops[name]
    T = t_rank.num_tokens
    width = 1.0 + p.gated
    dense_mlp = _gemm(T, width * p.ffn / p.tp, p.hidden, p, xp) + _gemm(T, p.hidden, p.ffn / p.tp, p, xp)
    shared = ops["moe_router"] + ops["mlp_up"] + ops["mlp_down"]
    dense_layer = moe_layer - shared + dense_mlp
    lm_head = _gemm(t_rank.num_sampled, p.vocab / p.tp, p.hidden, p, xp)
    tail = iteration_seconds(0.0, lm_head, t_rank, p, xp)  # pp sends, LM head, embedding, host

    moe = p.moe
    rows = t_all.num_tokens * p.top_k
    loads = routed_loads(moe, rows, key, xp)  # [..., G, S]
    x = xp.where(moe.wait_for_slowest > 0, xp.max(loads, axis=-1), (rows / moe.ep)[..., None])
    per_map = _expert_rank_seconds(x, p, xp) + a2a_seconds(t_rank, t_all, x, p, xp)
    experts = moe.layers_per_map * xp.sum(per_map, axis=-1)
    moe_layers = p.layers - p.dense_layers
    total = (p.dense_layers * slowest_rank(dense_layer) + moe_layers * slowest_rank(moe_layer)
             + experts + slowest_rank(tail))
    return xp.where(t_all.num_seqs > 0, total, 0.0)


def _window(batch: BatchSlots, p: CostParams, xp: Any, k: int | None, ctx):
    """Seconds of the iteration (``k`` None) or of a ``k``-iteration decode window ([k])."""
    t_all, t_rank = batch_totals(batch, xp), rank_totals(batch, p, xp)
    if k is not None:
        t_all, t_rank = grow_decode(t_all, k, xp), grow_decode(t_rank, k, xp)
    return totals_time(t_all, t_rank, p, xp, _keys(ctx, p, xp, k))


def iteration_time(batch: BatchSlots, p: CostParams, xp: Any, ctx: Any = None):
    """:func:`frontier_jax.cost.roofline.iteration_time`, with attention DP ranks."""
    if not uses_dp(p):
        return roofline.iteration_time(batch, p, xp, ctx)
    return _window(batch, p, xp, None, ctx)


def decode_window_times(batch: BatchSlots, p: CostParams, xp: Any, k: int, ctx: Any = None):
    """:func:`frontier_jax.cost.roofline.decode_window_times`, with attention DP ranks."""
    if not uses_dp(p):
        return roofline.decode_window_times(batch, p, xp, k, ctx)
    return _window(batch, p, xp, k, ctx)


def step_times(batch: BatchSlots, p: CostParams, xp: Any, k: int, ctx: Any = None):
    """:func:`frontier_jax.cost.roofline.step_times`, with attention DP ranks: the iteration
    is the window's first entry."""
    times = decode_window_times(batch, p, xp, k, ctx)
    return times[0], times


__all__ = ["a2a_seconds", "decode_window_times", "iteration_time", "rank_totals", "step_times",
           "totals_time", "uses_dp"]
