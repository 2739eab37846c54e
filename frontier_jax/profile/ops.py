"""torch builders: one zero-argument callable per plan item (inputs allocated up front).

Imported only when profiling runs (imports torch). Every callable computes one operator of
one decoder layer on one GPU at the item's shape; the timing loop in :mod:`.runner` calls it
repeatedly. Inputs are allocated once, outside the timed region.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .plan import LayerShapes, PlanItem

_EPS = 1e-6
# Largest padded K+V batch of the CUDA decode path; bigger batches run one call per sequence.
_MAX_PADDED_BYTES = 4 << 30


def pick_dtype(device: str, requested: str = "auto") -> torch.dtype:
    """bf16 on CUDA; on CPU bf16 only where it is clearly fast (AMX / AVX512-BF16: a bf16 GEMM
    at least 1.5x faster than float32), else float32. ``requested``: auto | bf16 | fp32."""
    if requested == "bf16":
        return torch.bfloat16
    if requested == "fp32":
        return torch.float32
    if device.startswith("cuda"):
        return torch.bfloat16
    import time

    def rate(dt):
        a = torch.randn(512, 512, dtype=dt)
        b = torch.randn(512, 512, dtype=dt)
        for _ in range(3):
            a @ b
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(4):
                a @ b
            best = min(best, time.perf_counter() - t)
        return best

    try:
        return torch.bfloat16 if rate(torch.bfloat16) * 1.5 < rate(torch.float32) else torch.float32
    except RuntimeError:
        return torch.float32


def _rand(shape, dtype, device, gen=None):
    return torch.randn(*shape, dtype=dtype, device=device, generator=gen) * 0.1


_WEIGHTS: dict = {}


def _weight(name, shape, dtype, device):
    """A random weight shared by every item of the same operator and shape (allocating a large
    LM-head weight per item and per round would dominate the profiler's wall time)."""
    key = (name, tuple(shape), dtype, str(device))
    w = _WEIGHTS.get(key)
    if w is None:
        w = _WEIGHTS[key] = _rand(shape, dtype, device)
    return w


def clear_cache() -> None:
    """Drop the cached weights (end of a profiling run)."""
    _WEIGHTS.clear()


def build_linear(item: PlanItem, shapes: LayerShapes, dtype, device):
    """GEMM ``[m, k] x [k, n]`` (``F.linear``) or the element-wise op of the item."""
    p = item.params
    m, n, k = p["m"], p["n"], p["k"]
    op = item.op
    if p["is_gemm"]:
        x = _rand((m, k), dtype, device)
        w = _weight(op, (n, k), dtype, device)
        return lambda: F.linear(x, w)
    if op in ("input_layernorm", "post_attention_layernorm"):
        x = _rand((m, n), dtype, device)
        g = torch.ones(n, dtype=dtype, device=device)
        return lambda: F.rms_norm(x, (n,), g, _EPS)
    if op == "add":
        x = _rand((m, n), dtype, device)
        r = _rand((m, n), dtype, device)
        return lambda: x + r
    if op == "mlp_act":
        if shapes.gated:
            g = _rand((m, n), dtype, device)
            u = _rand((m, n), dtype, device)
            return lambda: F.silu(g) * u
        x = _rand((m, n), dtype, device)
        return lambda: F.gelu(x, approximate="tanh")
    if op == "attn_rope":
        hd = shapes.head_dim
        heads = max(n // hd, 1)
        x = _rand((m, heads, hd), dtype, device)
        pos = torch.arange(m, device=device, dtype=torch.float32)
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd))
        ang = torch.outer(pos, inv)
        cos = torch.cat([ang.cos(), ang.cos()], -1).to(dtype)[:, None, :]
        sin = torch.cat([ang.sin(), ang.sin()], -1).to(dtype)[:, None, :]
        half = hd // 2

        def rope():
            rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
            return x * cos + rot * sin

        return rope
    # other element-wise widths: a copy of the activations
    x = _rand((m, n), dtype, device)
    return lambda: x.clone()


@functools.cache
def _gqa_supported(device, dtype, nq, nkv, hd) -> bool:
    """Whether SDPA takes ``enable_gqa`` with a lower-right causal bias here."""
    from torch.nn.attention.bias import causal_lower_right

    try:
        q = torch.zeros(1, nq, 3, hd, dtype=dtype, device=device)
        k = torch.zeros(1, nkv, 5, hd, dtype=dtype, device=device)
        F.scaled_dot_product_attention(q, k, k, attn_mask=causal_lower_right(3, 5), enable_gqa=True)
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


def build_attention(item: PlanItem, shapes: LayerShapes, dtype, device):
    """Attention over a heterogeneous batch, one SDPA call per sequence.

    Prefill: query ``q_i`` tokens attend to the ``c_i`` cached tokens (fully) and causally to
    the new chunk (lower-right causal bias; flash / memory-efficient kernels on CUDA).
    Decode: one query token per sequence attends to its ``c_i + 1`` tokens; on CUDA one
    batched call over the padded batch with a key-padding mask (one call per sequence when the
    padded K/V would exceed 4 GiB), on CPU one call per sequence.
    K/V of all sequences live in one pool (sequence i's cache is a slice of it); GQA via
    ``enable_gqa`` (K/V expanded to the query heads, outside the timed region, where the
    installed torch lacks it).
    """
    from torch.nn.attention.bias import causal_lower_right

    p = item.params
    seqs = p["seqs"]
    nq, nkv, hd = shapes.local_q_heads, shapes.local_kv_heads, shapes.head_dim
    gqa = _gqa_supported(device, dtype, nq, nkv, hd)
    kv_heads = nkv if gqa else nq
    extra = {"enable_gqa": True} if gqa and kv_heads != nq else {}
    esize = torch.finfo(dtype).bits // 8
    if p["decode"] and device.startswith("cuda"):
        B = len(seqs)
        cmax = max(c + 1 for _, c in seqs)
        if 2 * B * kv_heads * cmax * hd * esize <= _MAX_PADDED_BYTES:
            k = _rand((B, kv_heads, cmax, hd), dtype, device)
            v = _rand((B, kv_heads, cmax, hd), dtype, device)
            lens = torch.tensor([c + 1 for _, c in seqs], device=device)
            mask = (torch.arange(cmax, device=device)[None, :] < lens[:, None])[:, None, None, :]
            qd = _rand((B, nq, 1, hd), dtype, device)
            return lambda: F.scaled_dot_product_attention(qd, k, v, attn_mask=mask, **extra)
    total_kv = sum(q + c for q, c in seqs)
    k_pool = _rand((1, kv_heads, total_kv, hd), dtype, device)
    v_pool = _rand((1, kv_heads, total_kv, hd), dtype, device)
    calls = []
    off = 0
    for q, c in seqs:
        L = q + c
        qt = _rand((1, nq, q, hd), dtype, device)
        ks = k_pool[:, :, off:off + L]
        vs = v_pool[:, :, off:off + L]
        off += L
        if p["decode"] or q == 1:
            calls.append((qt, ks, vs, None, False))
        elif c == 0:
            calls.append((qt, ks, vs, None, True))
        else:
            calls.append((qt, ks, vs, causal_lower_right(q, L), False))

    def run():
        out = None
        for qt, ks, vs, mask, causal in calls:
            out = F.scaled_dot_product_attention(qt, ks, vs, attn_mask=mask, is_causal=causal, **extra)
        return out

    return run


def build_moe(item: PlanItem, shapes: LayerShapes, dtype, device):
    """One GPU's grouped GEMM of a gated MoE MLP (up+gate, activation, down) with the item's
    tokens per expert: ``torch._grouped_mm`` where it runs on this device, else a loop over
    the experts with tokens."""
    counts = item.params["counts"]
    E = len(counts)
    h = shapes.hidden
    eh = shapes.moe_ffn // shapes.tp
    up_w = 2 * eh if shapes.gated else eh
    R = int(sum(counts))
    x = _rand((max(R, 1), h), dtype, device)
    w1 = _weight("moe_w1", (E, h, up_w), dtype, device)
    w2 = _weight("moe_w2", (E, eh, h), dtype, device)

    def act(y):
        if shapes.gated:
            return F.silu(y[:, :eh]) * y[:, eh:]
        return F.gelu(y, approximate="tanh")

    gm = getattr(torch, "_grouped_mm", None)
    if gm is not None:
        offs = torch.tensor(list(torch.tensor(counts).cumsum(0).tolist()), dtype=torch.int32, device=device)
        try:
            y = gm(x[:R], w1, offs=offs)
            gm(act(y), w2, offs=offs)

            def grouped():
                return gm(act(gm(x[:R], w1, offs=offs)), w2, offs=offs)

            grouped.impl = "grouped_mm"
            return grouped
        except (RuntimeError, TypeError, ValueError, NotImplementedError):
            pass
    starts = [0]
    for c in counts:
        starts.append(starts[-1] + c)
    active = [(e, starts[e], starts[e + 1]) for e in range(E) if counts[e] > 0]

    def loop():
        out = torch.empty(max(R, 1), h, dtype=dtype, device=device)
        for e, a, b in active:
            out[a:b] = act(x[a:b] @ w1[e]) @ w2[e]
        return out

    loop.impl = "expert_loop"
    return loop


def build(item: PlanItem, shapes: LayerShapes, dtype, device):
    """The zero-argument callable that runs ``item`` once."""
    if item.family == "linear":
        return build_linear(item, shapes, dtype, device)
    if item.family == "attention":
        return build_attention(item, shapes, dtype, device)
    if item.family == "moe":
        return build_moe(item, shapes, dtype, device)
    raise ValueError(f"unknown family {item.family!r}")
