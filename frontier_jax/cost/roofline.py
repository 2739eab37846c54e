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


def layer_time(t: BatchTotals, p: CostParams, xp: Any):
    """Seconds for one decoder layer on one GPU."""
    ops = op_times(t, p, xp)
    total = 0.0
    for name in sorted(ops):
        total = total + ops[name]
    return total


def totals_time(t: BatchTotals, p: CostParams, xp: Any):
    """Seconds for one engine iteration with batch totals ``t`` (0 for an empty batch):
    :func:`frontier_jax.cost.compose.iteration_seconds` of the roofline's layer and LM head
    (a GEMM on the sampled rows). Elementwise in the totals, so totals with a trailing axis
    price many batches at once."""
    lm_head = _gemm(t.num_sampled, p.vocab / p.tp, p.hidden, p, xp)
    return iteration_seconds(layer_time(t, p, xp), lm_head, t, p, xp)


def iteration_time(batch: BatchSlots, p: CostParams, xp: Any, ctx: Any = None):
    """Seconds for one engine iteration over ``batch`` (0 when the batch is empty); the
    roofline is deterministic and ignores the iteration context ``ctx``."""
    return totals_time(batch_totals(batch, xp), p, xp)


def decode_window_times(batch: BatchSlots, p: CostParams, xp: Any, k: int, ctx: Any = None):
    """Seconds of ``k`` successive iterations of a decode-only ``batch`` ([k] array).

    Iteration j sees every context grown by j tokens; only the decode KV reads change.
    """
    return totals_time(grow_decode(batch_totals(batch, xp), k, xp), p, xp)
