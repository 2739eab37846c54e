"""Batch features of operator-runtime predictors, built inside the cost model.

The builders are pure functions of arrays written against an array module ``xp``
(``numpy`` on the host, ``jax.numpy`` inside the jitted simulator), so the simulator
computes exactly the features the predictors were trained on. Reductions run over the
last axis; leading axes are batch axes (or use ``jax.vmap``). Scalar keyword arguments
may be Python numbers or arrays broadcastable to the leading axes.

Units: token counts are tokens, times are seconds, bytes are bytes, FLOP/s and bytes/s
for peaks. Feature names and order are the module constants ``ATTENTION_FEATURES``,
``GEMM_FEATURES``, ``MOE_FEATURES`` and ``COLLECTIVE_FEATURES``; the last axis of every
builder's result follows them.
"""

from __future__ import annotations

import numpy as np

# Kernel tiling assumptions (FlashInfer / vLLM fused-MoE / cuBLAS-like defaults).
ATTN_TILE_Q = 128  # packed (query x GQA-group) rows per prefill thread block
GEMM_TILE_M = 128
GEMM_TILE_N = 128
MOE_TILE_M = 64  # vLLM fused_moe BLOCK_SIZE_M for large batches
MOE_TILE_N = 128
# vLLM fused_moe's default launch config (get_default_config, used where no tuned JSON
# exists for the device and shape, as for A800 / H800 at these shapes): BLOCK_SIZE_M 16 and
# BLOCK_SIZE_N 32 (BLOCK_SIZE_K 64) while the tokens entering the layer do not outnumber the
# local experts, else 64 and 64 (BLOCK_SIZE_K 32). Each expert's rows are padded to
# BLOCK_SIZE_M (moe_align_block_size). Blocks are (BLOCK_SIZE_M, BLOCK_SIZE_N, BLOCK_SIZE_K).
MOE_SMALL_BLOCK = (16, 32, 64)
MOE_LARGE_BLOCK = (64, 64, 32)
DECODE_KV_ROUND = 64  # Vidur's decode-proxy rounding of the mean KV length

ATTENTION_FEATURES: tuple[str, ...] = (
    # prefill part: sequences with is_decode == False
    "p_num_seqs", "p_q_sum", "p_q_mean", "p_q_var", "p_q_cv", "p_q_max", "p_q_min",
    "p_c_sum", "p_c_mean", "p_c_var", "p_c_cv", "p_c_max", "p_c_min",
    "p_qc_sum", "p_q2_sum", "p_kv_sum", "p_kv_max",
    "p_q_tiles", "p_q_pad_ratio", "p_ctas", "p_waves", "p_wave_eff", "p_kv_pages",
    "p_flops", "p_bytes", "p_roofline_s",
    # decode part: sequences with is_decode == True (one query token each)
    "d_num_seqs", "d_c_sum", "d_c_mean", "d_c_var", "d_c_cv", "d_c_max", "d_c_min",
    "d_kv_pages", "d_ctas", "d_waves", "d_wave_eff", "d_flops", "d_bytes", "d_roofline_s",
    # whole batch
    "num_seqs", "num_tokens", "prefill_seq_share", "prefill_token_share", "kv_write_bytes",
    "roofline_s",
    # context (per GPU)
    "n_q_heads", "n_kv_heads", "head_dim", "peak_tflops", "mem_bw_tbs", "num_sms",
)

GEMM_FEATURES: tuple[str, ...] = (
    "m", "n", "k", "flops", "bytes", "roofline_s", "arith_intensity",
    "m_tiles", "n_tiles", "tiles", "waves", "wave_eff", "m_pad_ratio", "m_align",
    "weight_bytes", "dtype_bytes", "peak_tflops", "mem_bw_tbs", "num_sms",
)

MOE_FEATURES: tuple[str, ...] = (
    "num_tokens", "routed_tokens", "local_experts", "active_experts", "expert_utilization",
    "mean_tokens_per_expert", "mean_tokens_per_active", "max_tokens", "min_tokens",
    "load_cv", "load_gini", "load_entropy_bits", "load_entropy_norm", "max_load_ratio",
    "tiles_max", "tiles_est", "tile_pad_ratio", "ctas", "waves",
    "hidden", "expert_hidden", "topk", "gated", "tp", "ep",
    "flops", "weight_bytes", "act_bytes", "roofline_s", "roofline_max_s",
    "dtype_bytes", "peak_tflops", "mem_bw_tbs", "num_sms",
    # the kernel as launched (vLLM's default fused_moe config; see MOE_SMALL_BLOCK)
    "small_m_config", "block_m", "block_tiles", "block_pad_ratio", "expert_hidden_shard",
    "ctas_up", "ctas_down", "waves_up", "waves_down", "grid_m", "block_roofline_s",
    "block_roofline_max_s",
    # the latency-bound length of each GEMM: waves x the K-loop steps of one CTA (a small
    # kernel streams its weights one BLOCK_SIZE_K slice per step, too few CTAs to hide it)
    "kloop_up", "kloop_down",
    # 1 = timed warm, after an FFN-like prefix (Frontier's "prefill_hot" context), as the
    # kernel runs inside a served step; 0 = timed standalone
    "warm_context",
)

COLLECTIVE_FEATURES: tuple[str, ...] = (
    "size_bytes", "num_workers", "devices_per_node", "num_nodes", "ring_bytes",
    "per_rank_bytes", "log2_workers",
)

FEATURE_NAMES = {
    "attention": ATTENTION_FEATURES,
    "linear": GEMM_FEATURES,
    "moe": MOE_FEATURES,
    "collective": COLLECTIVE_FEATURES,
}


# --------------------------------------------------------------------------------------
# masked statistics


def _f(x, xp):
    return xp.asarray(x, dtype=xp.float32 if xp is not np and not _x64(xp) else xp.float64)


def _x64(xp) -> bool:
    try:
        import jax

        return bool(jax.config.jax_enable_x64)
    except Exception:  # pragma: no cover
        return True


def _wstats(x, w, xp):
    """Weighted count, sum, mean, population variance, CV, max, min over the last axis."""
    n = xp.sum(w, axis=-1)
    s = xp.sum(w * x, axis=-1)
    nn = xp.maximum(n, 1.0)
    mean = s / nn
    var = xp.sum(w * (x - mean[..., None]) ** 2, axis=-1) / nn
    var = xp.maximum(var, 0.0)
    cv = xp.where(mean > 0, xp.sqrt(var) / xp.where(mean > 0, mean, 1.0), 0.0)
    present = w > 0
    mx = xp.max(xp.where(present, x, 0.0), axis=-1)
    big = xp.asarray(np.finfo(np.float32).max, dtype=x.dtype)
    mn = xp.min(xp.where(present, x, big), axis=-1)
    mn = xp.where(n > 0, mn, 0.0)
    return n, s, mean, var, cv, mx, mn


def reduce_last(op: str, xp, xs) -> tuple:
    """``op`` ("sum" or "max") of each array in ``xs`` over its last axis, as a tuple. Under
    jax one variadic reduction: XLA then walks the slots once for all of them (separate or
    stacked reductions cost several times more in the step). Exact for the integer-valued
    sums the features use (any order)."""
    if xp is np:
        f = np.max if op == "max" else np.sum
        return tuple(f(np.asarray(x), axis=-1) for x in xs)
    import jax

    shape = np.broadcast_shapes(*(np.shape(x) for x in xs))
    xs = tuple(xp.broadcast_to(x, shape) for x in xs)
    init = tuple(np.array(-np.inf if op == "max" else 0.0, x.dtype) for x in xs)
    comb = xp.maximum if op == "max" else xp.add
    return tuple(jax.lax.reduce(xs, init, lambda a, b: tuple(map(comb, a, b)), (len(shape) - 1,)))


STACK_CHUNK = 7  # columns per fusable concatenation (see stack_last)


def stack_last(cols, xp):
    """``xp.stack(cols, axis=-1)``, built so that XLA:CPU fuses it with the expressions that
    compute the columns. Its fusion pass leaves a concatenation with more than 8 operands,
    or one along the minor axis of 64 bytes or more, unfused: every column then becomes a
    kernel of its own in the step. Groups of ``STACK_CHUNK`` float64 columns (56 bytes)
    fuse. Two groups are joined by padding each to the full width and adding (one kernel
    in all; a concatenation of them would be merged back into one big one); more groups
    by a concatenation (each group its own kernel: a padded sum would evaluate every
    group for every element)."""
    n = len(cols)
    if xp is np or n <= STACK_CHUNK:
        return xp.stack(cols, axis=-1)
    parts = [xp.stack(cols[i:i + STACK_CHUNK], axis=-1) for i in range(0, n, STACK_CHUNK)]
    if len(parts) > 2:
        return xp.concatenate(parts, axis=-1)
    a, b = parts
    pad = lambda x, lo, hi: xp.pad(x, [(0, 0)] * (x.ndim - 1) + [(lo, hi)])  # noqa: E731
    return pad(a, 0, b.shape[-1]) + pad(b, a.shape[-1], 0)


def _spread(n, total, lo, centred_sq, xp):
    """Mean, population variance and CV from a weighted count, sum, the minimum ``lo`` and
    the weighted sum of squares about it (shift-invariant; 0 for an empty group)."""
    nn = xp.maximum(n, 1.0)
    mean = total / nn
    d = (total - n * lo) / nn
    var = xp.maximum(centred_sq / nn - d * d, 0.0)
    cv = xp.where(mean > 0, xp.sqrt(var) / xp.where(mean > 0, mean, 1.0), 0.0)
    return mean, var, cv


def _bc(v, like, xp):
    return xp.broadcast_to(_f(v, xp), like.shape)


# --------------------------------------------------------------------------------------
# attention


def attention_features(q, c, mask, xp=np, **kw):
    """Distributional features of one attention call (one layer, one GPU), stacked: the
    arguments of :func:`attention_columns`; ``[..., len(ATTENTION_FEATURES)]`` float array
    in the order of ``ATTENTION_FEATURES`` (times in seconds, FLOPs, bytes, tokens)."""
    return stack_attention(attention_columns(q, c, mask, xp, **kw), xp)


def stack_attention(cols: dict, xp=np):
    """:func:`attention_columns` stacked in the order of ``ATTENTION_FEATURES``."""
    return stack_last([cols[name] for name in ATTENTION_FEATURES], xp)


def attention_columns(q, c, mask, xp=np, *, is_decode=None, n_q_heads, n_kv_heads, head_dim,
                      peak_flops, mem_bw, num_sms, dtype_bytes=2, block_size=16,
                      tile_q=ATTN_TILE_Q) -> dict:
    """The columns of :func:`attention_features` by name, each ``[...]`` (unstacked: the
    step reads single columns without slicing the stacked array).

    Args:
        q: ``[..., B]`` query tokens per sequence slot in this step (1 for a decode).
        c: ``[..., B]`` context tokens already in the KV cache per slot.
        mask: ``[..., B]`` slot validity: bool, or a non-negative multiplicity (a slot of
            multiplicity k stands for k identical sequences).
        xp: array module (``numpy`` or ``jax.numpy``).
        is_decode: ``[..., B]`` bool, the slot runs in the decode kernel. Default
            ``(q == 1) & (c > 0)``.
        n_q_heads, n_kv_heads: heads per GPU (after tensor parallelism).
        head_dim: head size.
        peak_flops: tensor-core peak, FLOP/s; mem_bw: HBM bandwidth, bytes/s;
        num_sms: SM count (thread-block waves).
        dtype_bytes: bytes per Q/K/V element; block_size: KV-cache page size (tokens);
        tile_q: packed query rows per prefill thread block.

    Returns:
        ``{name: [...] array}`` for every name in ``ATTENTION_FEATURES``.
    """
    q = _f(q, xp)
    c = _f(c, xp)
    w = _f(mask, xp)
    if is_decode is None:
        dec = (q == 1) & (c > 0)
    else:
        dec = xp.asarray(is_decode).astype(bool)
    wp = xp.where(dec, 0.0, w)
    wd = xp.where(dec, w, 0.0)
    lead = q[..., 0]
    nq = _bc(n_q_heads, lead, xp)
    nkv = _bc(n_kv_heads, lead, xp)
    hd = _bc(head_dim, lead, xp)
    pf = _bc(peak_flops, lead, xp)
    bw = _bc(mem_bw, lead, xp)
    sms = _bc(num_sms, lead, xp)
    db = _bc(dtype_bytes, lead, xp)
    blk = _f(block_size, xp)
    grp = nq / xp.maximum(nkv, 1.0)

    # Per-slot sums and extremes, each in one pass over the slots (reduce_last); the spreads
    # follow from sums of squares about the minima, exact in float64 for integer lengths
    # (sums below 2**53), so no second pass.
    pres_p, pres_d = wp > 0, wd > 0
    kv = q + c
    big = xp.asarray(np.finfo(np.float32).max, dtype=q.dtype)
    pq_max, npq_min, pc_max, npc_min, pkv_max, dc_max, ndc_min = reduce_last("max", xp, (
        xp.where(pres_p, q, 0.0), xp.where(pres_p, -q, -big), xp.where(pres_p, c, 0.0),
        xp.where(pres_p, -c, -big), xp.where(pres_p, kv, 0.0), xp.where(pres_d, c, 0.0),
        xp.where(pres_d, -c, -big)))
    lo = lambda neg: xp.where(neg > -big, -neg, 0.0)  # noqa: E731  (0 for an empty group)
    pq_min, pc_min, dc_min = lo(npq_min), lo(npc_min), lo(ndc_min)
    wpc, wdc = wp * c, wd * c
    n_p, q_s, q2_s, c_s, c2_s, qc_s, tiles, p_pages, n_d, d_s, d2_s, d_pages = reduce_last(
        "sum", xp, (wp, wp * q, wp * q * q, wpc, wpc * c, wpc * q,
                    wp * xp.ceil(q * grp[..., None] / tile_q), wp * xp.ceil(kv / blk), wd, wdc,
                    wdc * c, wd * xp.ceil((c + 1.0) / blk)))
    # sums of squares about the minimum: sum(w x^2) - 2 m sum(w x) + m^2 n
    centred = lambda x2, x, m, n: x2 - 2.0 * m * x + m * m * n  # noqa: E731
    pq_mean, pq_var, pq_cv = _spread(n_p, q_s, pq_min, centred(q2_s, q_s, pq_min, n_p), xp)
    pc_mean, pc_var, pc_cv = _spread(n_p, c_s, pc_min, centred(c2_s, c_s, pc_min, n_p), xp)
    dc_mean, dc_var, dc_cv = _spread(n_d, d_s, dc_min, centred(d2_s, d_s, dc_min, n_d), xp)
    p_ctas, d_ctas = tiles * nkv, n_d * nkv  # thread blocks: prefill tiles, decodes
    p_waves, d_waves = xp.ceil(p_ctas / sms), xp.ceil(d_ctas / sms)
    eff = lambda ctas, waves: xp.where(waves > 0, ctas / xp.maximum(waves * sms, 1.0), 0.0)  # noqa: E731
    p_kv, d_kv = q_s + c_s, d_s + n_d  # KV tokens read
    p_flops = 4.0 * (hd * nq) * (qc_s + 0.5 * (q2_s + q_s))  # query x key pairs
    d_flops = 4.0 * (hd * nq) * d_kv
    qkv_bytes = lambda qs, kvs: db * (2.0 * (nq * hd) * qs + 2.0 * (nkv * hd) * kvs)  # noqa: E731
    p_bytes, d_bytes = qkv_bytes(q_s, p_kv), qkv_bytes(n_d, d_kv)
    p_roof, d_roof = xp.maximum(p_flops / pf, p_bytes / bw), xp.maximum(d_flops / pf, d_bytes / bw)
    seqs, toks = n_p + n_d, q_s + n_d
    share = lambda part, whole: xp.where(whole > 0, part / xp.maximum(whole, 1.0), 0.0)  # noqa: E731
    rows_p = q_s * grp
    return {
        "p_num_seqs": n_p, "p_q_sum": q_s, "p_q_mean": pq_mean, "p_q_var": pq_var, "p_q_cv": pq_cv,
        "p_q_max": pq_max, "p_q_min": pq_min, "p_c_sum": c_s, "p_c_mean": pc_mean,
        "p_c_var": pc_var, "p_c_cv": pc_cv, "p_c_max": pc_max, "p_c_min": pc_min,
        "p_qc_sum": qc_s, "p_q2_sum": q2_s, "p_kv_sum": p_kv, "p_kv_max": pkv_max,
        "p_q_tiles": tiles,
        "p_q_pad_ratio": xp.where(rows_p > 0, tiles * tile_q / xp.maximum(rows_p, 1.0), 0.0),
        "p_ctas": p_ctas, "p_waves": p_waves, "p_wave_eff": eff(p_ctas, p_waves),
        "p_kv_pages": p_pages, "p_flops": p_flops, "p_bytes": p_bytes, "p_roofline_s": p_roof,
        "d_num_seqs": n_d, "d_c_sum": d_s, "d_c_mean": dc_mean, "d_c_var": dc_var,
        "d_c_cv": dc_cv, "d_c_max": dc_max, "d_c_min": dc_min, "d_kv_pages": d_pages,
        "d_ctas": d_ctas, "d_waves": d_waves, "d_wave_eff": eff(d_ctas, d_waves),
        "d_flops": d_flops, "d_bytes": d_bytes, "d_roofline_s": d_roof,
        "num_seqs": seqs, "num_tokens": toks, "prefill_seq_share": share(n_p, seqs),
        "prefill_token_share": share(q_s, toks), "kv_write_bytes": db * 2.0 * toks * nkv * hd,
        "roofline_s": p_roof + d_roof,
        "n_q_heads": nq, "n_kv_heads": nkv, "head_dim": hd, "peak_tflops": pf * 1e-12,
        "mem_bw_tbs": bw * 1e-12, "num_sms": sms,
    }


# the attention columns a decode-context shift changes (shifted_decode_columns' order)
SHIFTED_COLUMNS: tuple[str, ...] = (
    "d_c_sum", "d_c_mean", "d_c_cv", "d_c_max", "d_c_min", "d_kv_pages", "d_flops", "d_bytes",
    "d_roofline_s", "roofline_s",
)
# [S, F] one-hot: column s of shifted_decode_columns is attention column SHIFT_EMBED[s].argmax()
SHIFT_EMBED = np.array([[float(f == g) for f in ATTENTION_FEATURES] for g in SHIFTED_COLUMNS])
SHIFT_KEEP = 1.0 - SHIFT_EMBED.sum(axis=0)  # [F] 1 where a shift leaves the column alone
SHIFTED_INDEX = np.array([ATTENTION_FEATURES.index(f) for f in SHIFTED_COLUMNS])


def shifted_decode_features(x0, c, decode, shifts, xp=np, *, peak_flops, mem_bw, dtype_bytes=2,
                            block_size=16, aligned=False):
    """Attention features of the batch with every decoding context shifted by ``shifts[a]``
    tokens (prefill slots unchanged), in O(B x A) cheap operations instead of a full
    :func:`attention_features` per shift: ``x0`` with its :data:`SHIFTED_COLUMNS`
    replaced by :func:`shifted_decode_columns` (same arguments).

    Equal (to rounding) to ``attention_features`` on the shifted contexts (a test holds
    them together). Returns ``[A, len(ATTENTION_FEATURES)]``.
    """
    cols = shifted_decode_columns(x0, c, decode, shifts, xp, peak_flops=peak_flops,
                                  mem_bw=mem_bw, dtype_bytes=dtype_bytes, block_size=block_size,
                                  aligned=aligned)
    return with_shifted(x0, cols)


def with_shifted(x0, cols):
    """Attention feature rows ``[A, F]``: ``x0`` ``[F]`` with its :data:`SHIFTED_COLUMNS`
    replaced by ``cols`` ``[A, S]`` (exact: the embedding is one-hot)."""
    return x0[None, :] * SHIFT_KEEP + cols @ SHIFT_EMBED


def shifted_decode_columns(x0, c, decode, shifts, xp=np, *, peak_flops, mem_bw, dtype_bytes=2,
                           block_size=16, aligned=False):
    """The :data:`SHIFTED_COLUMNS` of the batch with every decoding context shifted by
    ``shifts[a]`` tokens: the count, variance, CTA and wave columns stay; sums, means,
    extremes, FLOPs and bytes move linearly; the CV, KV pages and roofline follow.

    Args:
        x0: ``[F]`` :func:`attention_features` of the batch (shift 0), or its
            :func:`attention_columns`.
        c: ``[B]`` context tokens per slot; decode: ``[B]`` bool, the slot is a scheduled
            decode (weight 1).
        shifts: ``[A]`` tokens added to every decoding context (negative allowed down to
            minus the smallest decoding context).
        peak_flops, mem_bw, dtype_bytes, block_size: as given to ``attention_features``.
        aligned: every shift differs from the first by a multiple of ``block_size`` (the
            KV page counts then follow from one pass over the slots).

    Returns:
        ``[A, len(SHIFTED_COLUMNS)]``.
    """
    g = x0.__getitem__ if isinstance(x0, dict) else (
        lambda name: x0[..., ATTENTION_FEATURES.index(name)])
    s = _f(shifts, xp)
    n_d = g("d_num_seqs")
    moved = xp.where(n_d > 0, s, 0.0)
    mean = g("d_c_mean") + moved
    cv = xp.where(mean > 0, xp.sqrt(g("d_c_var")) / xp.where(mean > 0, mean, 1.0), 0.0)
    w = xp.where(decode, 1.0, 0.0)
    blk = _f(block_size, xp)
    cf = _f(c, xp)
    if aligned:  # every shift is the first plus whole pages: one pass over the slots
        pages = xp.sum(w * xp.ceil((cf + s[0] + 1.0) / blk)) + n_d * (s - s[0]) / blk
    else:
        pages = xp.sum(w[None, :] * xp.ceil((cf[None, :] + s[:, None] + 1.0) / blk), axis=-1)
    flops = g("d_flops") + 4.0 * g("head_dim") * g("n_q_heads") * n_d * s
    nbytes = g("d_bytes") + _f(dtype_bytes, xp) * 2.0 * g("n_kv_heads") * g("head_dim") * n_d * s
    roof_d = xp.maximum(flops / _f(peak_flops, xp), nbytes / _f(mem_bw, xp))
    return stack_last([g("d_c_sum") + n_d * s, mean, cv, g("d_c_max") + moved, g("d_c_min") + moved,
                       pages, flops, nbytes, roof_d, g("p_roofline_s") + roof_d], xp)


# --------------------------------------------------------------------------------------
# GEMM / linear ops


def gemm_features(m, n, k, xp=np, *, peak_flops, mem_bw, num_sms, dtype_bytes=2,
                  tile_m=GEMM_TILE_M, tile_n=GEMM_TILE_N):
    """Features of an ``[m, k] x [k, n]`` GEMM (``m`` tokens) on one GPU.

    Element-wise ops use ``k = 1`` and ``n`` = their width (see
    :func:`frontier_jax.predict.importers.linear_op_shape`). ``dtype_bytes`` is the
    weight element size (1 for FP8 weights, whose activations are counted at 2 bytes).

    Returns:
        ``[..., len(GEMM_FEATURES)]`` in the order of ``GEMM_FEATURES``.
    """
    m, n, k = xp.broadcast_arrays(_f(m, xp), _f(n, xp), _f(k, xp))
    pf = _f(peak_flops, xp) + 0 * m
    bw = _f(mem_bw, xp) + 0 * m
    sms = _f(num_sms, xp) + 0 * m
    db = _f(dtype_bytes, xp) + 0 * m
    flops = 2.0 * m * n * k
    wbytes = db * n * k
    nbytes = wbytes + 2.0 * (m * k + m * n)
    roof = xp.maximum(flops / pf, nbytes / bw)
    ai = flops / xp.maximum(nbytes, 1.0)
    mt = xp.ceil(m / tile_m)
    nt = xp.ceil(n / tile_n)
    tiles = mt * nt
    waves = xp.ceil(tiles / sms)
    weff = tiles / xp.maximum(waves * sms, 1.0)
    mpad = mt * tile_m / xp.maximum(m, 1.0)
    # largest power of two (<= 256) dividing m: kernel heuristics favour aligned sizes
    malign = xp.gcd(xp.maximum(xp.round(m), 1.0).astype(xp.int32), 256).astype(m.dtype)
    cols = [m, n, k, flops, nbytes, roof, ai, mt, nt, tiles, waves, weff, mpad, malign, wbytes, db,
            pf * 1e-12, bw * 1e-12, sms]
    return xp.stack(cols, axis=-1)


# --------------------------------------------------------------------------------------
# MoE grouped GEMM


def moe_features_from_stats(num_tokens, routed_tokens, local_experts, active_experts,
                            max_tokens, min_tokens, load_cv, load_gini, load_entropy_bits,
                            xp=np, *, hidden, expert_hidden, topk, gated=1, tp=1, ep=1,
                            dtype_bytes=2, peak_flops, mem_bw, num_sms, tile_m=MOE_TILE_M,
                            tile_n=MOE_TILE_N, warm=1.0):
    """MoE-layer features from per-GPU load statistics (the columns of Frontier's moe.csv).

    Args:
        num_tokens: tokens entering the MoE layer on this GPU (before top-k).
        routed_tokens: sum of the local experts' token counts.
        local_experts: experts on this GPU; active_experts: those with > 0 tokens.
        max_tokens, min_tokens: largest / smallest local expert count.
        load_cv: population std / mean of the counts; load_gini: Gini coefficient;
        load_entropy_bits: Shannon entropy (bits) of count / total.
        hidden, expert_hidden: model and expert FFN widths; topk; gated (1 = SwiGLU);
        tp, ep: tensor and expert parallel sizes (context features).
        warm: 1 when the kernel runs warm inside a step (the simulator's case), 0 when a
            profile timed it standalone.

    Returns:
        ``[..., len(MOE_FEATURES)]`` in the order of ``MOE_FEATURES``.
    """
    T, R = xp.broadcast_arrays(_f(num_tokens, xp), _f(routed_tokens, xp))
    L = xp.maximum(_f(local_experts, xp) + 0 * T, 1.0)
    A = _f(active_experts, xp) + 0 * T
    mx = _f(max_tokens, xp) + 0 * T
    mn = _f(min_tokens, xp) + 0 * T
    cv = _f(load_cv, xp) + 0 * T
    gini = _f(load_gini, xp) + 0 * T
    ent = _f(load_entropy_bits, xp) + 0 * T
    h = _f(hidden, xp) + 0 * T
    eh = _f(expert_hidden, xp) + 0 * T
    kk = _f(topk, xp) + 0 * T
    g = _f(gated, xp) + 0 * T
    tpv = _f(tp, xp) + 0 * T
    epv = _f(ep, xp) + 0 * T
    db = _f(dtype_bytes, xp) + 0 * T
    pf = _f(peak_flops, xp) + 0 * T
    bw = _f(mem_bw, xp) + 0 * T
    sms = _f(num_sms, xp) + 0 * T

    util = A / L
    mean = R / L
    mean_a = R / xp.maximum(A, 1.0)
    ent_n = ent / xp.maximum(xp.log2(L), 1.0)
    mlr = xp.where(mean > 0, mx / xp.maximum(mean, 1e-9), 0.0)
    tiles_max = xp.ceil(mx / tile_m)
    tiles_est = A * xp.ceil(mean_a / tile_m)
    pad = xp.where(R > 0, tiles_est * tile_m / xp.maximum(R, 1.0), 0.0)
    mats = 2.0 + g  # up (+gate) and down projections
    ctas = tiles_est * xp.ceil((1.0 + g) * eh / tile_n)
    waves = xp.ceil(ctas / sms)
    flops = 2.0 * R * h * eh * mats
    wbytes = db * A * h * eh * mats
    abytes = 2.0 * R * (2.0 * h + (2.0 + g) * eh)
    roof = xp.maximum(flops / pf, (wbytes + abytes) / bw)
    roof_max = xp.maximum(2.0 * mx * h * eh * mats / pf, db * h * eh * mats / bw)
    # the kernel as launched: block sizes by vLLM's default rule, each expert's rows padded
    # to BLOCK_SIZE_M (at least the busiest expert's tiles), the expert width per TP shard;
    # the launched grid covers every routed row of the layer plus the worst-case padding
    small = (T <= L).astype(T.dtype)
    bm = xp.where(small > 0, float(MOE_SMALL_BLOCK[0]), float(MOE_LARGE_BLOCK[0]))
    bn = xp.where(small > 0, float(MOE_SMALL_BLOCK[1]), float(MOE_LARGE_BLOCK[1]))
    bk = xp.where(small > 0, float(MOE_SMALL_BLOCK[2]), float(MOE_LARGE_BLOCK[2]))
    btiles = xp.maximum(A * xp.ceil(mean_a / bm), xp.ceil(mx / bm))
    bpad = xp.where(R > 0, btiles * bm / xp.maximum(R, 1.0), 0.0)
    ehs = eh / xp.maximum(tpv, 1.0)
    ctas_up = btiles * xp.ceil((1.0 + g) * ehs / bn)
    ctas_down = btiles * xp.ceil(h / bn)
    grid_m = xp.ceil((T * kk + L * epv * (bm - 1.0)) / bm)
    bflops = 2.0 * btiles * bm * h * ehs * mats
    bwbytes = db * A * h * ehs * mats
    broof = xp.maximum(bflops / pf, (bwbytes + abytes) / bw)
    broof_max = xp.maximum(2.0 * xp.ceil(mx / bm) * bm * h * ehs * mats / pf, db * h * ehs * mats / bw)
    waves_up, waves_down = xp.ceil(ctas_up / sms), xp.ceil(ctas_down / sms)
    cols = [T, R, L, A, util, mean, mean_a, mx, mn, cv, gini, ent, ent_n, mlr,
            tiles_max, tiles_est, pad, ctas, waves, h, eh, kk, g, tpv, epv,
            flops, wbytes, abytes, roof, roof_max, db, pf * 1e-12, bw * 1e-12, sms,
            small, bm, btiles, bpad, ehs, ctas_up, ctas_down, waves_up, waves_down, grid_m,
            broof, broof_max, waves_up * xp.ceil(h / bk), waves_down * xp.ceil(ehs / bk),
            _f(warm, xp) + 0 * T]
    return xp.stack(cols, axis=-1)


def moe_load_stats(tokens_per_expert, mask, xp=np):
    """Load statistics of the local experts: ``(routed, local, active, max, min, cv, gini,
    entropy_bits)``, each ``[...]``; masked-out slots are not experts of this GPU."""
    x = _f(tokens_per_expert, xp)
    m = xp.asarray(mask).astype(bool)
    w = m.astype(x.dtype)
    L, R, mean, var, cv, mx, mn = _wstats(x, w, xp)
    A = xp.sum(w * (x > 0), axis=-1)
    # Gini over the valid entries: sort with invalid entries first (value -1).
    E = x.shape[-1]
    xs = xp.sort(xp.where(m, x, -1.0), axis=-1)
    rank = xp.arange(1, E + 1, dtype=x.dtype) - (E - L)[..., None]
    valid = xs >= 0
    num = xp.sum(xp.where(valid, rank * xs, 0.0), axis=-1)
    Ls = xp.maximum(L, 1.0)
    gini = xp.where(R > 0, 2.0 * num / (Ls * xp.maximum(R, 1e-9)) - (Ls + 1.0) / Ls, 0.0)
    p = xp.where(m & (x > 0), x / xp.maximum(R, 1e-9)[..., None], 1.0)
    ent = -xp.sum(xp.where(m & (x > 0), p * xp.log2(p), 0.0), axis=-1)
    return R, L, A, mx, mn, cv, gini, ent


def grouped_gemm_features(tokens_per_expert, mask, xp=np, *, num_tokens=None, hidden,
                          expert_hidden, topk, gated=1, tp=1, ep=1, dtype_bytes=2,
                          peak_flops, mem_bw, num_sms, tile_m=MOE_TILE_M, tile_n=MOE_TILE_N,
                          warm=1.0):
    """Features of one GPU's GroupedGEMM from its per-expert token counts.

    Args:
        tokens_per_expert: ``[..., E]`` tokens routed to each local expert slot.
        mask: ``[..., E]`` bool, which slots are experts of this GPU.
        num_tokens: tokens entering the layer on this GPU (default ``routed / topk``).
        Other arguments as in :func:`moe_features_from_stats`.

    Returns:
        ``[..., len(MOE_FEATURES)]`` in the order of ``MOE_FEATURES``.
    """
    R, L, A, mx, mn, cv, gini, ent = moe_load_stats(tokens_per_expert, mask, xp)
    T = R / _f(topk, xp) if num_tokens is None else _f(num_tokens, xp) + 0 * R
    return moe_features_from_stats(T, R, L, A, mx, mn, cv, gini, ent, xp, hidden=hidden,
                                   expert_hidden=expert_hidden, topk=topk, gated=gated, tp=tp,
                                   ep=ep, dtype_bytes=dtype_bytes, peak_flops=peak_flops,
                                   mem_bw=mem_bw, num_sms=num_sms, tile_m=tile_m, tile_n=tile_n,
                                   warm=warm)


# --------------------------------------------------------------------------------------
# collectives


def collective_features(size_bytes, num_workers, devices_per_node, xp=np):
    """Features of a collective of ``size_bytes`` over ``num_workers`` GPUs
    (``devices_per_node`` of them per node). Returns ``[..., len(COLLECTIVE_FEATURES)]``."""
    s, n, d = xp.broadcast_arrays(_f(size_bytes, xp), _f(num_workers, xp), _f(devices_per_node, xp))
    nodes = xp.ceil(n / xp.maximum(d, 1.0))
    ring = 2.0 * s * (n - 1.0) / xp.maximum(n, 1.0)
    cols = [s, n, d, nodes, ring, s / xp.maximum(n, 1.0), xp.log2(xp.maximum(n, 1.0))]
    return xp.stack(cols, axis=-1)
