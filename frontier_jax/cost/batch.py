"""The batch of one engine iteration, as fixed-size slot arrays with a mask."""

from typing import Any, NamedTuple

from frontier_jax.cost.features import reduce_last


class BatchSlots(NamedTuple):
    """Per-slot description of one iteration's batch (all arrays of shape [B]).

    q_tokens: int, tokens computed for the sequence this iteration (query length).
    ctx_tokens: int, tokens already in the sequence's KV cache before this iteration.
    is_decode: bool, the sequence is decoding (one new token on top of its context).
    samples: bool, the sequence emits a token at the end of this iteration.
    mask: bool, the slot holds a scheduled sequence.
    ids: int, the request in the slot (its index in the workload), or None: only attention
    data parallelism reads it (request i runs on DP rank `cost.dp.dp_rank(i)`).
    """

    q_tokens: Any
    ctx_tokens: Any
    is_decode: Any
    samples: Any
    mask: Any
    ids: Any = None


class BatchTotals(NamedTuple):
    """Sums over a batch used by the roofline model (float64 scalars, exact integers).

    num_seqs: scheduled sequences; num_tokens: query tokens of all sequences;
    prefill_tokens / decode_seqs: split by kind; prefill_attn_pairs: causal
    query-key pairs of prefill chunks, sum q * (c + (q + 1) / 2); prefill_kv_tokens:
    KV tokens read by prefill chunks, sum (c + q); decode_kv_tokens: sum (c + 1) over
    decodes; num_sampled: sequences that emit a token (LM head rows).
    """

    num_seqs: Any
    num_tokens: Any
    prefill_tokens: Any
    decode_seqs: Any
    prefill_attn_pairs: Any
    prefill_kv_tokens: Any
    decode_kv_tokens: Any
    num_sampled: Any


def batch_totals(b: BatchSlots, xp: Any) -> BatchTotals:
    """Reduce slot arrays to the sums the roofline needs (float64, order-independent): one
    variadic reduction over the slots (:func:`reduce_last`), not eight."""
    f = xp.float64
    m = b.mask
    q = xp.where(m, b.q_tokens, 0).astype(f)
    c = xp.where(m, b.ctx_tokens, 0).astype(f)
    dec = m & b.is_decode
    pre = m & ~b.is_decode
    return BatchTotals(*reduce_last("sum", xp, (
        m.astype(f), q, xp.where(pre, q, 0.0), dec.astype(f),
        xp.where(pre, q * (c + (q + 1.0) * 0.5), 0.0), xp.where(pre, c + q, 0.0),
        xp.where(dec, c + 1.0, 0.0), (m & b.samples).astype(f))))


def grow_decode(t: BatchTotals, k: int, xp: Any) -> BatchTotals:
    """Totals of ``k`` successive iterations of the batch with totals ``t`` ([k] leaves, or
    [k, ...] for totals with axes ...): iteration j sees every decoding context grown by j
    tokens."""
    shape = xp.shape(t.decode_seqs)
    j = xp.arange(k, dtype=xp.float64).reshape((k,) + (1,) * len(shape))
    tj = t._replace(decode_kv_tokens=t.decode_kv_tokens + j * t.decode_seqs)
    return BatchTotals(*[xp.broadcast_to(v, (k, *shape)) for v in tj])
