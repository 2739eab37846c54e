"""Roofline tier of the cost model: FLOPs and bytes against the hardware spec.

Every op costs max(FLOPs / (peak * eff), bytes / (HBM bandwidth * mem_eff)); a layer
is the sum of its ops; an iteration is layers x layer time plus pipeline sends,
LM head, embedding and host overhead. All functions take the array module ``xp``
(numpy or jax.numpy) and return seconds as float64 scalars.
"""

from typing import Any

from frontier_jax.cost.batch import BatchSlots, BatchTotals, batch_totals, grow_decode
from frontier_jax.cost.compose import iteration_seconds, link
from frontier_jax.cost.params import CostParams


def _gemm(m, n, k, p: CostParams, xp):
    """Seconds for an [m, k] x [k, n] GEMM: compute- or memory-bound, whichever is slower."""
    flops = 2.0 * m * n * k
    nbytes = (n * k + m * k + m * n) * p.dtype_bytes
    return xp.maximum(flops / (p.peak_flops * p.gemm_eff), nbytes / (p.hbm_bw * p.mem_eff))


def op_times(t: BatchTotals, p: CostParams, xp: Any) -> dict:
    """Per-layer seconds of each operator for the batch totals ``t`` (one GPU's share)."""
    tp = p.tp
    tq = p.q_heads / tp
    tkv = xp.ceil(p.kv_heads / tp)
    d, h, T, b = p.head_dim, p.hidden, t.num_tokens, p.dtype_bytes
    mlp_width = 1.0 + p.gated  # up (+ gate) projections
    dense_ffn = xp.where(p.num_experts > 0, p.shared_ffn, p.ffn) / tp
    ops = {
        "qkv_proj": _gemm(T, (tq + 2.0 * tkv) * d, h, p, xp),
        "o_proj": _gemm(T, h, tq * d, p, xp),
        "mlp_up": xp.where(dense_ffn > 0, _gemm(T, mlp_width * dense_ffn, h, p, xp), 0.0),
        "mlp_down": xp.where(dense_ffn > 0, _gemm(T, h, dense_ffn, p, xp), 0.0),
    }
    # MoE: balanced routing; expected distinct experts touched by T * top_k routed rows.
    e = xp.maximum(p.num_experts, 1.0)
    rows = T * p.top_k
    active = e * (1.0 - (1.0 - 1.0 / e) ** rows)
    moe_f = p.moe_ffn / tp
    moe_flops = 2.0 * rows * (mlp_width + 1.0) * h * moe_f
    moe_bytes = (active * (mlp_width + 1.0) * h * moe_f + rows * 2.0 * (h + moe_f)) * b
    moe = xp.maximum(moe_flops / (p.peak_flops * p.gemm_eff), moe_bytes / (p.hbm_bw * p.mem_eff))
    ops["moe_router"] = xp.where(p.num_experts > 0, _gemm(T, p.num_experts, h, p, xp), 0.0)
    ops["moe_experts"] = xp.where(p.num_experts > 0, moe, 0.0)
    # Attention: causal prefill chunks over their cached context, and decodes.
    attn_peak = p.peak_flops * p.attn_eff
    bw = p.hbm_bw * p.mem_eff
    pf_flops = 4.0 * tq * d * t.prefill_attn_pairs
    pf_bytes = (t.prefill_kv_tokens * 2.0 * tkv * d + t.prefill_tokens * 2.0 * tq * d) * b
    ops["attn_prefill"] = xp.maximum(pf_flops / attn_peak, pf_bytes / bw)
    dc_flops = 4.0 * tq * d * t.decode_kv_tokens
    dc_bytes = (t.decode_kv_tokens * 2.0 * tkv * d + t.decode_seqs * 2.0 * tq * d) * b
    ops["attn_decode"] = xp.maximum(dc_flops / attn_peak, dc_bytes / bw)
    # Norms, residual adds, rope, activation: memory-bound elementwise passes.
    act_f = xp.where(p.num_experts > 0, rows / xp.maximum(T, 1.0) * moe_f, dense_ffn)
    elem = T * b * (10.0 * h + 2.0 * (tq + tkv) * d + (mlp_width + 1.0) * act_f)
    ops["elementwise"] = elem / bw
    # Two tensor-parallel all-reduces per layer (ring: 2(tp-1) hops).
    link_bw, link_lat = link(tp, p, xp)
    ar = 2.0 * (tp - 1.0) * link_lat + 2.0 * (tp - 1.0) / tp * T * h * b / link_bw
    ops["tp_allreduce"] = xp.where(tp > 1, 2.0 * ar, 0.0)
    return ops


def layer_time(t: BatchTotals, p: CostParams, xp: Any, ops: dict | None = None):
    """Seconds for one decoder layer on one GPU (``ops``: :func:`op_times` if computed)."""
    ops = op_times(t, p, xp) if ops is None else ops
    total = 0.0
    for name in sorted(ops):
        total = total + ops[name]
    return total


def _expert_rank_seconds(x, p: CostParams, xp: Any):
    """Seconds of one EP rank's GroupedGEMM over ``x`` routed rows (any shape).

    The rank holds ``p.moe.slots`` experts of width moe_ffn x ep / (tp x dp) (whole experts
    when EP spans the instance's GPUs, shards of every expert when ep = 1). Expected active experts among them for ``x``
    rows, each active expert's rows padded up to the tile; compute- or memory-bound (every
    active expert's weights are read once). Increasing in ``x``, so the slowest rank is the
    most loaded one."""
    moe = p.moe
    width = 1.0 + p.gated
    f = p.moe_ffn * moe.ep / (p.tp * xp.sum(moe.dp_ranks, axis=-1))
    m = moe.slots
    active = m * (1.0 - (1.0 - 1.0 / m) ** x)
    per_expert = x / xp.maximum(active, 1e-9)
    padded = active * moe.tile * xp.ceil(per_expert / moe.tile)
    flops = 2.0 * padded * (width + 1.0) * p.hidden * f
    nbytes = (active * (width + 1.0) * p.hidden * f + x * 2.0 * (p.hidden + f)) * p.dtype_bytes
    return xp.maximum(flops / (p.peak_flops * p.gemm_eff), nbytes / (p.hbm_bw * p.mem_eff))


def moe_seconds(t: BatchTotals, p: CostParams, xp: Any, key=None, ops: dict | None = None,
                rank_seconds=None):
    """Seconds an iteration adds to ``layers x`` the per-layer time of :func:`op_times`, for
    sampled MoE routing (``p.moe``; 0, statically, without it: dense models and balanced
    routing, which prices every layer as an MoE layer at the mean load). Elementwise in the
    totals like :func:`totals_time`.

    - ``dense_layers`` first layers: a dense MLP of width ``ffn`` replaces the router, the
      shared expert and the routed experts.
    - Each MoE layer's routed experts take the time of the most
      loaded EP rank (:func:`frontier_jax.cost.routing.rank_loads`, drawn from ``key``, the
      iteration's key ``[..., 2]``) or, with ``wait_for_slowest`` 0, of the mean rank load,
      instead of the balanced expectation.

    ``ops``: :func:`op_times` of ``t`` if already computed; ``rank_seconds(x, p, xp)``: one EP
    rank's GroupedGEMM seconds at ``x`` routed rows (default :func:`_expert_rank_seconds`; the
    surrogate tier passes its predictor's table)."""
    if p.moe is None:  # static: dense models and balanced routing add nothing (and no work)
        return 0.0
    if key is None:
        raise ValueError("sampled MoE routing needs the iteration context (ctx) for its key")
    ops = op_times(t, p, xp) if ops is None else ops
    T = t.num_tokens
    width = 1.0 + p.gated
    dense_mlp = _gemm(T, width * p.ffn / p.tp, p.hidden, p, xp) + _gemm(T, p.hidden, p.ffn / p.tp, p, xp)
    moe_parts = ops["moe_router"] + ops["mlp_up"] + ops["mlp_down"] + ops["moe_experts"]
    out = p.dense_layers * xp.where(p.num_experts > 0, dense_mlp - moe_parts, 0.0)
    from frontier_jax.cost.routing import routed_loads

    rows = T * p.top_k
    loads = routed_loads(p.moe, rows, key, xp)  # [..., L, S]
    slowest = xp.max(loads, axis=-1)
    x = xp.where(p.moe.wait_for_slowest > 0, slowest, (rows / p.moe.ep)[..., None])
    # each sampled layer stands for layers_per_map MoE layers (padded layers have no rows: 0 s)
    rank_seconds = _expert_rank_seconds if rank_seconds is None else rank_seconds
    sampled = p.moe.layers_per_map * xp.sum(rank_seconds(x, p, xp), axis=-1)
    return out + sampled - (p.layers - p.dense_layers) * ops["moe_experts"]


def _keys(ctx, p: CostParams, xp, k: int | None):
    """The iteration's key (``k`` None) or the [k, 2] keys of a window; None without sampled
    routing (nothing to draw) or without ``ctx``."""
    if p.moe is None or ctx is None:
        return None
    offset = 0 if k is None else xp.arange(k)
    if p.moe.drift is not None or p.moe.iter_shares is not None:  # static: time-varying popularity
        from frontier_jax.cost.routing import routing_key

        return routing_key(ctx, p.moe, xp, offset)
    return ctx.key(xp, offset)


def totals_time(t: BatchTotals, p: CostParams, xp: Any, key=None):
    """Seconds for one engine iteration with batch totals ``t`` (0 for an empty batch):
    :func:`frontier_jax.cost.compose.iteration_seconds` of the roofline's layer and LM head
    (a GEMM on the sampled rows), plus :func:`moe_seconds`. Elementwise in the totals, so
    totals with a trailing axis price many batches at once (``key`` then has that axis too)."""
    lm_head = _gemm(t.num_sampled, p.vocab / p.tp, p.hidden, p, xp)
    ops = op_times(t, p, xp)
    return iteration_seconds(layer_time(t, p, xp, ops), lm_head, t, p, xp,
                             moe_seconds(t, p, xp, key, ops))


def iteration_time(batch: BatchSlots, p: CostParams, xp: Any, ctx: Any = None):
    """Seconds for one engine iteration over ``batch`` (0 when the batch is empty); the
    iteration context ``ctx`` keys the routing map of sampled MoE routing."""
    return totals_time(batch_totals(batch, xp), p, xp, _keys(ctx, p, xp, None))


def decode_window_times(batch: BatchSlots, p: CostParams, xp: Any, k: int, ctx: Any = None):
    """Seconds of ``k`` successive iterations of a decode-only ``batch`` ([k] array).

    Iteration j sees every context grown by j tokens (only the decode KV reads change) and,
    with sampled MoE routing, its own routing map (key ``ctx.key(xp, j)``).
    """
    return totals_time(grow_decode(batch_totals(batch, xp), k, xp), p, xp, _keys(ctx, p, xp, k))


def step_times(batch: BatchSlots, p: CostParams, xp: Any, k: int, ctx: Any = None):
    """(iteration time, decode window times) in one pass: the window's first entry is the
    iteration (its totals and routing key are the iteration's). Used for sampled MoE routing
    (``cost.tiers``), where the maps are most of an event's work."""
    times = decode_window_times(batch, p, xp, k, ctx)
    return times[0], times
