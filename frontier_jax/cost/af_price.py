"""Attention/FFN disaggregation, roofline tier: the durations of an AF group's task graph.

An AF group (``[af]``, :class:`frontier_jax.cost.params.AFParams`) is ``M`` attention
instances of ``tp`` GPUs each (they hold the KV cache and run attention) and ``N`` FFN
instances of ``ffn_tp`` GPUs each (the MLP, or the MoE experts), stepping together. The
engine sees one instance per group with the attention instances' summed scheduler caps and KV
(like attention DP, :mod:`frontier_jax.cost.dp`); request ``i`` runs on attention instance
:func:`frontier_jax.cost.dp.dp_rank` (a hash of its id).

Per iteration every attention instance cuts its sequences, in batch order, into ``m``
contiguous micro-batches of about equal tokens (:func:`micro_totals`). For micro-batch
``i`` of every layer (:mod:`frontier_jax.cost.af` times the graph):

* ``attn``: the slowest attention instance's part of the layer for its share of micro-batch
  ``i`` (QKV and O projections, prefill and decode attention, the norms and element-wise
  passes, one TP all-reduce): :func:`frontier_jax.cost.roofline.op_times` at ``tp``;
* ``send A->F`` and ``send F->A``: ``latency + bytes / bandwidth`` of the per-GPU bytes, the
  larger of a sender's (its instance's tokens x hidden / tp) and a receiver's (a dense FFN
  instance's tokens x hidden; with MoE an FFN GPU's routed rows x hidden, balanced); NVLink
  when the whole group fits a node, the network otherwise;
* ``ffn``: the micro-batch's tokens of all attention instances: a dense MLP with the tokens
  split over the ``N`` FFN instances, each TP-sharded over ``ffn_tp`` (plus its all-reduce);
  MoE experts spread over all ``N x ffn_tp`` FFN GPUs at the mean load (router, shared expert,
  routed experts, as balanced routing prices them co-located). With sampled routing
  (``[moe]`` uniform / zipf / dirichlet / trace, ``ep`` = the FFN GPUs) each micro-batch of
  each sampled layer draws its own map of routed rows onto the EP ranks (its own key:
  :func:`micro_keys`), and the task takes the slowest rank's GroupedGEMM
  (:func:`frontier_jax.cost.roofline._expert_rank_seconds`) plus the router and shared
  expert; the links then carry that rank's rows. Each sampled layer is a group of its own.

A micro-batch with no sequences takes no time. The model's dense first layers (an MoE
model's ``dense_layers``) are a group of their own. The iteration is the graph's makespan plus
the attention side's LM head, embedding and host overhead
(:func:`frontier_jax.cost.compose.iteration_seconds`). The compiled step evaluates the graph
by max-plus matrix powers, the reference simulator (``xp`` numpy) by walking its tasks one by
one (:func:`frontier_jax.cost.af.graph_makespan`).
"""

from typing import Any

import numpy as np

from frontier_jax.cost.af import graph_makespan, makespan
from frontier_jax.cost.batch import BatchSlots, BatchTotals, batch_totals, grow_decode
from frontier_jax.cost.compose import iteration_seconds
from frontier_jax.cost.dp import dp_rank
from frontier_jax.cost.params import CostParams
from frontier_jax.cost.roofline import _expert_rank_seconds, _gemm, op_times
from frontier_jax.cost.routing import routed_loads, routing_key

ATTENTION_OPS = ("qkv_proj", "o_proj", "attn_prefill", "attn_decode", "elementwise")


def micro_totals(batch: BatchSlots, p: CostParams, xp: Any) -> BatchTotals:
    """Totals of each (attention instance, micro-batch): [M, MB] leaves. Each instance cuts its
    live sequences, in batch order (the running requests in admission order, the same in both
    simulators), into m contiguous runs of about equal tokens: a sequence goes to micro-batch
    floor(m x (its instance's tokens before it + half its own) / the instance's tokens). One
    cumulative sum per instance, O(M x B)."""
    ranks = p.af.ranks
    M, MB = ranks.shape[-1], p.af.micro.shape[-1]
    B = batch.mask.shape[-1]
    ids = batch.ids if batch.ids is not None else xp.arange(B)
    rank = dp_rank(ids, xp.maximum(xp.sum(ranks, axis=-1), 1.0), xp)
    live = batch.mask
    onehot = (rank[None, :] == xp.arange(M)[:, None]) & live[None, :]  # [M, B]
    q = xp.where(onehot, batch.q_tokens.astype(xp.float64)[None, :], 0.0)
    cum = xp.cumsum(q, axis=-1)
    mid = xp.sum(xp.where(onehot, cum - 0.5 * q, 0.0), axis=0)  # its instance's tokens before it + half its own
    total = xp.sum(xp.where(onehot, cum[:, -1:], 0.0), axis=0)
    m = xp.maximum(xp.sum(p.af.micro, axis=-1), 1.0)
    mb = xp.minimum(xp.floor(m * mid / xp.maximum(total, 1.0)), m - 1.0)
    on = ((rank[None, None, :] == xp.arange(M)[:, None, None])
          & (mb[None, None, :] == xp.arange(MB)[None, :, None]))
    return batch_totals(batch._replace(mask=live & on), xp)


def layer_groups(t: BatchTotals, p: CostParams, xp: Any, keys: list | None = None) -> list:
    """The graph's groups of identical layers from micro-batch totals ``t`` ([..., M, MB]
    leaves): ``[(layers, A, S, F, R), ...]`` with per-layer task durations [..., MB] (attention,
    send A->F, FFN, send F->A), an MoE model's dense first layers first when it has them (a
    static shape of ``p.af.groups``; only then are their dense FFN tasks priced).

    With sampled MoE routing (``p.moe``) every sampled layer is a group of its own
    (``p.af.groups`` = [dense layers, then each sampled layer's share of the MoE layers]):
    each micro-batch's routed rows are drawn onto the FFN side's EP ranks from its own key
    (``keys``: one :class:`RoutingKey` per micro-batch, :func:`micro_keys`), the FFN task
    waits for the slowest rank's GroupedGEMM, and the links carry that rank's rows."""
    af = p.af
    live_rank = af.ranks[..., :, None] > 0  # [M, 1]
    seqs = xp.sum(xp.where(live_rank, t.num_seqs, 0.0), axis=-2)
    live_mb = (seqs > 0) & (af.micro > 0)  # [..., MB]
    on = lambda x: xp.where(live_mb, x, 0.0)  # noqa: E731
    ops = op_times(t, p, xp)
    attn = ops["tp_allreduce"] * 0.5  # the attention block's all-reduce (the FFN has the other)
    for name in ATTENTION_OPS:
        attn = attn + ops[name]
    A = on(xp.max(xp.where(live_rank, attn, 0.0), axis=-2))
    T = xp.sum(xp.where(live_rank, t.num_tokens, 0.0), axis=-2)  # the micro-batch's tokens
    h, b = p.hidden, p.dtype_bytes
    moe = p.num_experts > 0
    ffn_gpus = af.ffn * af.ffn_tp
    # FFN side, on its own GPU: dense tokens split over the FFN instances; MoE experts over
    # every FFN GPU
    ph = p._replace(peak_flops=af.ffn_flops, hbm_bw=af.ffn_hbm_bw, nvlink_bw=af.ffn_nvlink_bw,
                    nvlink_lat_s=af.ffn_nvlink_lat_s)
    pf = ph._replace(tp=xp.where(moe, ffn_gpus, af.ffn_tp))
    zero = T * 0.0
    fops = op_times(BatchTotals(zero, xp.where(moe, T, T / af.ffn), zero, zero, zero, zero, zero, zero),
                    pf, xp)
    half_ar = fops["tp_allreduce"] * 0.5
    sender = xp.max(xp.where(live_rank, t.num_tokens, 0.0), axis=-2) * h * b / p.tp

    def link(receiver_bytes):  # per GPU: the larger of a sender's and a receiver's bytes
        return on(af.link_lat_s + xp.maximum(sender, receiver_bytes) / af.link_bw)

    g = af.groups
    dense_tokens = T / af.ffn

    def dense_group(count):
        F_dense = (_gemm(dense_tokens, (1.0 + p.gated) * p.ffn / af.ffn_tp, h, ph, xp)
                   + _gemm(dense_tokens, h, p.ffn / af.ffn_tp, ph, xp) + half_ar)
        S_dense = link(dense_tokens * h * b)
        return (count, A, S_dense, on(F_dense), S_dense)

    if p.moe is not None:  # static: sampled routing maps, a group per sampled layer
        mp = p.moe
        rows = T * p.top_k  # [..., MB]
        loads = xp.stack([routed_loads(mp, rows[..., i], keys[i], xp)
                          for i in range(rows.shape[-1])], axis=-3)  # [..., MB, L, S]
        x = xp.where(mp.wait_for_slowest > 0, xp.max(loads, axis=-1), (rows / mp.ep)[..., None])
        experts = _expert_rank_seconds(x, pf, xp)  # [..., MB, L]
        base = fops["mlp_up"] + fops["mlp_down"] + fops["moe_router"] + half_ar
        groups = []
        for j in range(x.shape[-1]):
            S_j = link(x[..., j] * h * b)
            groups.append((g[1 + j], A, S_j, on(base + experts[..., j]), S_j))
        return [dense_group(g[0]), *groups]
    F = fops["mlp_up"] + fops["mlp_down"] + fops["moe_router"] + fops["moe_experts"] + half_ar
    S = link(xp.where(moe, T * p.top_k / ffn_gpus, T / af.ffn) * h * b)
    groups = [(g[-1], A, S, on(F), S)]
    if g.shape[-1] == 2:  # static: the model's dense first layers come first
        groups = [dense_group(g[0]), *groups]
    return groups


MICRO_STREAM = 1 << 20  # micro-batch i's routing stream: the instance's, offset by (i + 1) x this


def micro_keys(p: CostParams, xp: Any, ctx: Any, k: int | None) -> list | None:
    """One routing key per micro-batch slot (None without sampled routing): micro-batch
    ``i`` of iteration ``ctx.iteration`` (+ j for the [k] window) draws from the stream of
    instance ``ctx.instance + (i + 1) x MICRO_STREAM``, so every (iteration, micro-batch) has
    its own map and both simulators draw the same."""
    if p.moe is None:
        return None
    if ctx is None:
        raise ValueError("sampled MoE routing needs the iteration context (ctx) for its key")
    offset = 0 if k is None else xp.arange(k)
    base = xp.asarray(ctx.instance).astype(xp.int64)
    return [routing_key(ctx._replace(instance=base + (i + 1) * MICRO_STREAM), p.moe, xp, offset)
            for i in range(p.af.micro.shape[-1])]


def _graph(groups: list, xp: Any):
    """Makespan of :func:`layer_groups`' groups: the compiled max-plus evaluation, or in the
    reference (``xp`` numpy) the task walk of each leading index."""
    if xp is np:
        lead = np.shape(groups[0][1])[:-1]
        out = np.empty(lead)
        for idx in np.ndindex(*lead):
            out[idx] = graph_makespan([(c, *(np.asarray(v)[idx] for v in d)) for c, *d in groups])
        return out
    return makespan(groups, xp)


def resource_times(batch: BatchSlots, p: CostParams, xp: Any, k: int, ctx: Any = None):
    """[k, 4] seconds each resource of the group works in each of ``k`` successive iterations
    of ``batch`` (entry 0 the batch itself, like :func:`decode_window_times`): the attention
    side, the A->F link, the FFN side and the F->A link (``contract.AF_RESOURCES``), each
    the sum of its graph tasks over every layer and micro-batch. The rest of the iteration
    is that resource's bubble (waiting on the others, and for the attention side the LM head
    and host overhead outside the graph). With one micro-batch the graph is one chain, so
    the four sum to its makespan."""
    tm = grow_decode(micro_totals(batch, p, xp), k, xp)
    busy = 0.0
    for layers, *tasks in layer_groups(tm, p, xp, micro_keys(p, xp, ctx, k)):
        busy = busy + layers * xp.stack([xp.sum(d, axis=-1) for d in tasks], axis=-1)
    return busy


def _times(batch: BatchSlots, p: CostParams, xp: Any, k: int | None, ctx: Any = None):
    """Iteration seconds (``k`` None) or the [k] seconds of a decode window."""
    tm = micro_totals(batch, p, xp)
    if k is not None:
        tm = grow_decode(tm, k, xp)
    t = BatchTotals(*[xp.sum(v, axis=(-2, -1)) for v in tm])  # every live sequence is in one cell
    graph = _graph(layer_groups(tm, p, xp, micro_keys(p, xp, ctx, k)), xp)
    lm_head = _gemm(t.num_sampled, p.vocab / p.tp, p.hidden, p, xp)
    return iteration_seconds(0.0, lm_head, t, p, xp, graph)


def iteration_time(batch: BatchSlots, p: CostParams, xp: Any, ctx: Any = None):
    """Seconds of one AF group iteration over ``batch`` (0 when it is empty)."""
    return _times(batch, p, xp, None, ctx)


def decode_window_times(batch: BatchSlots, p: CostParams, xp: Any, k: int, ctx: Any = None):
    """Seconds of ``k`` successive iterations of a decode-only ``batch`` ([k])."""
    return _times(batch, p, xp, k, ctx)


def step_times(batch: BatchSlots, p: CostParams, xp: Any, k: int, ctx: Any = None):
    """(iteration time, decode window times) in one pass (the window's first entry is the
    iteration: its totals are the batch's)."""
    times = _times(batch, p, xp, k, ctx)
    return times[0], times


__all__ = ["decode_window_times", "iteration_time", "layer_groups", "micro_totals",
           "resource_times", "step_times"]
