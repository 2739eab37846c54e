"""The profiler's sampling plan: which operator configurations of one decoder layer to time.

Pure Python + numpy (no torch). Every configuration is a :class:`PlanItem`; the plan is
deterministic for a given ``(model, tp, device kind, quick, seed)``. Part of it is a fixed
grid (identical for every seed, so two runs can be compared configuration by configuration),
part is drawn from ``seed`` (log-uniform token counts, random heterogeneous batches).

Shapes are per GPU (Megatron tensor parallelism, see
:func:`frontier_jax.predict.importers.linear_op_shape`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from frontier_jax.predict.importers import linear_op_shape
from frontier_jax.spec.model import ModelSpec

PROFILER_VERSION = "frontier-jax-profiler/1"

GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj", "lm_head_linear")
ELEMENTWISE_OPS = ("input_layernorm", "post_attention_layernorm", "attn_rope", "mlp_act", "add")
ATTENTION_OPS = ("attn_prefill", "attn_decode")
MOE_OP = "moe_grouped_gemm"
# dense-MLP operators a MoE model does not have (its MLP is the grouped GEMM)
_DENSE_MLP_OPS = ("mlp_up_proj", "mlp_down_proj", "mlp_act")


@dataclass(frozen=True)
class Limits:
    """Size limits of a plan (tokens)."""

    max_m: int  # GEMM / element-wise token count
    max_m_lm_head: int
    max_q: int  # query tokens of one prefill sequence
    max_ctx: int  # cached context of one sequence
    max_prefill_tokens: int  # query tokens of one prefill batch
    max_decode_seqs: int
    max_kv_tokens: int  # total context of one batch (KV pool size)
    max_moe_tokens: int
    n_random_m: int  # seeded extra token counts per GEMM op
    n_uniform: int  # seeded uniform-random attention batches (each of prefill/decode)
    n_skewed: int  # seeded skewed attention batches (each of prefill/decode)


LIMITS = {
    "cpu": Limits(4096, 2048, 1024, 4096, 2048, 256, 131072, 2048, 24, 80, 60),
    "cuda": Limits(16384, 8192, 8192, 32768, 16384, 512, 1 << 21, 16384, 24, 80, 60),
    "quick": Limits(256, 64, 64, 256, 128, 8, 2048, 64, 0, 3, 3),
}


@dataclass(frozen=True)
class LayerShapes:
    """One decoder layer's per-GPU geometry."""

    model: str
    hidden: int
    n_heads: int  # whole model
    n_kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    tp: int
    gated: bool
    num_experts: int = 0
    topk: int = 0
    moe_ffn: int = 0

    @property
    def local_q_heads(self) -> int:
        return self.n_heads // self.tp

    @property
    def local_kv_heads(self) -> int:
        """KV heads per GPU (replicated when tp exceeds the KV head count)."""
        return max(self.n_kv_heads // self.tp, 1)

    def linear_shape(self, op: str) -> tuple[int, int, bool]:
        """``(n, k, is_gemm)`` of a linear-family operator, exactly :func:`linear_op_shape`."""
        return linear_op_shape(op, n_embd=self.hidden, n_head=self.n_heads, n_kv_head=self.n_kv_heads,
                               head_dim=self.head_dim, ffn=self.ffn, vocab=self.vocab, tp=self.tp,
                               gated=self.gated)


def layer_shapes(spec: ModelSpec, tp: int) -> LayerShapes:
    """Per-GPU shapes of ``spec`` under tensor parallelism ``tp``; ValueError if ``tp`` does not
    divide the attention heads or the FFN width."""
    tp = int(tp)
    if tp < 1 or spec.num_attention_heads % tp:
        raise ValueError(f"--tp {tp}: must be >= 1 and divide num_attention_heads = {spec.num_attention_heads}")
    ffn = spec.moe_intermediate_size if spec.is_moe else spec.intermediate_size
    if ffn % tp:
        raise ValueError(f"--tp {tp}: must divide the MLP width {ffn}")
    return LayerShapes(model=spec.name, hidden=spec.hidden_size, n_heads=spec.num_attention_heads,
                       n_kv_heads=spec.num_key_value_heads, head_dim=spec.head_dim,
                       ffn=spec.intermediate_size, vocab=spec.vocab_size, tp=tp, gated=spec.gated_mlp,
                       num_experts=spec.num_experts, topk=spec.num_experts_per_tok,
                       moe_ffn=spec.moe_intermediate_size)


@dataclass
class PlanItem:
    """One configuration to time.

    ``family``/``op`` as in the tidy frames; ``params``: ``m, n, k, is_gemm`` (linear),
    ``seqs`` = list of ``(q, c)`` and ``decode`` (attention), ``counts`` = tokens per local
    expert and ``num_tokens`` (moe); ``mode``: how the configuration was drawn
    (``grid`` | ``random`` for token counts, ``homogeneous`` | ``uniform`` | ``skewed`` for
    batches, ``balanced`` | ``skewed`` for MoE loads).
    """

    family: str
    op: str
    params: dict = field(default_factory=dict)
    mode: str = "grid"


# --------------------------------------------------------------------------------------
# token counts


def token_grid(max_m: int, rng: np.random.Generator | None, n_random: int, quick: bool = False) -> list[int]:
    """Token counts: powers of two and 3 x powers of two up to ``max_m`` (fixed), plus
    ``n_random`` log-uniform draws from ``rng`` (different per seed)."""
    if quick:
        return sorted({m for m in (1, 7, 64, 200) if m <= max_m} | {max_m})
    fixed = {1 << i for i in range(int(math.log2(max_m)) + 1)}
    fixed |= {3 << i for i in range(int(math.log2(max_m)) + 1) if 3 << i <= max_m}
    extra: set[int] = set()
    if rng is not None and n_random > 0:
        draws = np.exp(rng.uniform(math.log(2), math.log(max_m), 4 * n_random)).round().astype(int)
        for d in draws:
            if len(extra) >= n_random:
                break
            if int(d) not in fixed:
                extra.add(int(d))
    return sorted(fixed | extra)


# --------------------------------------------------------------------------------------
# attention batches


def _loguni(rng, lo: float, hi: float, size=None):
    lo, hi = max(lo, 1.0), max(hi, lo + 1e-9)
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size)).round().astype(int)


def _fit_budget(seqs: list[tuple[int, int]], lim: Limits, decode: bool) -> list[tuple[int, int]]:
    """Drop sequences from the end until the batch fits the query / KV budgets (keeps >= 1)."""
    out = list(seqs)
    while len(out) > 1 and (
            (not decode and sum(q for q, _ in out) > lim.max_prefill_tokens)
            or sum(q + c for q, c in out) > lim.max_kv_tokens):
        out.pop()
    return out


def prefill_batches(lim: Limits, rng: np.random.Generator, quick: bool) -> list[tuple[str, list[tuple[int, int]]]]:
    """Prefill batches ``(mode, [(q, c), ...])``: a fixed homogeneous grid, uniform-random and
    skewed (few long, many short) batches; chunked prefill (``c > 0``) and fresh (``c = 0``)."""
    out: list[tuple[str, list[tuple[int, int]]]] = []
    if quick:
        grid = [(1, 32, 0), (2, 16, 64)]
    else:
        qs = sorted({16, 128, 512, lim.max_q // 2, lim.max_q})
        cs = sorted({0, 512, lim.max_ctx // 2})
        grid = [(b, q, c) for b in (1, 2, 4, 8) for q in qs for c in cs
                if b * q <= lim.max_prefill_tokens and b * (q + c) <= lim.max_kv_tokens]
    for b, q, c in grid:
        out.append(("homogeneous", [(q, c)] * b))
    for _ in range(lim.n_uniform):
        b = int(rng.integers(2, 17 if not quick else 4))
        q = _loguni(rng, 2, lim.max_q, b)
        c = rng.integers(0, lim.max_ctx + 1, b) if rng.random() < 0.7 else np.zeros(b, int)
        out.append(("uniform", _fit_budget([(int(a), int(x)) for a, x in zip(q, c, strict=True)], lim, False)))
    for _ in range(lim.n_skewed):
        b = int(rng.integers(4, 17 if not quick else 5))
        n_long = int(rng.integers(1, 3))
        seqs = []
        for i in range(b):
            if i < n_long:
                seqs.append((int(_loguni(rng, lim.max_q / 4, lim.max_q)), int(rng.integers(lim.max_ctx // 4, lim.max_ctx + 1))))
            else:
                seqs.append((int(_loguni(rng, 2, max(lim.max_q / 32, 4))), int(rng.integers(0, lim.max_ctx // 8 + 1))))
        out.append(("skewed", _fit_budget(seqs, lim, False)))
    return out


def decode_batches(lim: Limits, rng: np.random.Generator, quick: bool) -> list[tuple[str, list[tuple[int, int]]]]:
    """Decode batches ``(mode, [(1, c), ...])``: homogeneous grid, uniform-random and skewed
    context lengths (GQA, one query token per sequence)."""
    out: list[tuple[str, list[tuple[int, int]]]] = []
    if quick:
        grid = [(1, 64), (4, 200)]
    else:
        bs = sorted({1, 4, 16, 64, lim.max_decode_seqs})
        cs = sorted({128, 1024, lim.max_ctx})
        grid = [(b, c) for b in bs for c in cs if b * (c + 1) <= lim.max_kv_tokens]
    for b, c in grid:
        out.append(("homogeneous", [(1, c)] * b))
    for _ in range(lim.n_uniform):
        b = int(_loguni(rng, 2, lim.max_decode_seqs))
        c = rng.integers(16, lim.max_ctx + 1, b)
        out.append(("uniform", _fit_budget([(1, int(x)) for x in c], lim, True)))
    for _ in range(lim.n_skewed):
        b = int(_loguni(rng, min(8, lim.max_decode_seqs), lim.max_decode_seqs))
        n_long = int(rng.integers(1, 4))
        seqs = [(1, int(rng.integers(lim.max_ctx // 2, lim.max_ctx + 1))) if i < n_long
                else (1, int(rng.integers(16, max(lim.max_ctx // 16, 17)))) for i in range(b)]
        out.append(("skewed", _fit_budget(seqs, lim, True)))
    return out


# --------------------------------------------------------------------------------------
# MoE loads


def expert_counts(routed: int, experts: int, mode: str, rng: np.random.Generator) -> list[int]:
    """Tokens per expert summing to ``routed``: ``balanced`` (equal shares) or ``skewed``
    (Zipf-like shares with a random exponent, experts in random order)."""
    if mode == "balanced":
        base, rem = divmod(routed, experts)
        return [base + (1 if i < rem else 0) for i in range(experts)]
    s = rng.uniform(0.8, 2.0)
    w = 1.0 / np.arange(1, experts + 1) ** s
    w = rng.permutation(w / w.sum())
    c = np.floor(w * routed).astype(int)
    c[np.argmax(w)] += routed - int(c.sum())
    return [int(x) for x in c]


# --------------------------------------------------------------------------------------
# the plan


def build_plan(shapes: LayerShapes, device_kind: str = "cpu", *, quick: bool = False,
               seed: int = 0, shuffle: bool = True) -> list[PlanItem]:
    """All configurations to time for one decoder layer of ``shapes``.

    Args:
        device_kind: ``cpu`` or ``cuda`` (size limits, see :data:`LIMITS`).
        quick: a tiny plan (seconds) for tests and smoke runs.
        seed: draws the random part of the plan (and its order).
        shuffle: time the items in random order (spreads slow drifts of the machine over
            all operators instead of one).
    """
    lim = LIMITS["quick"] if quick else LIMITS["cuda" if device_kind == "cuda" else "cpu"]
    rng = np.random.default_rng(seed)
    items: list[PlanItem] = []
    skip = _DENSE_MLP_OPS if shapes.num_experts else ()
    for op in GEMM_OPS + ELEMENTWISE_OPS:
        if op in skip:
            continue
        n, k, is_gemm = shapes.linear_shape(op)
        max_m = lim.max_m_lm_head if op == "lm_head_linear" else lim.max_m
        n_rand = lim.n_random_m if is_gemm else lim.n_random_m // 2
        for m in token_grid(max_m, rng, n_rand, quick):
            mode = "grid" if (m & (m - 1)) == 0 or (m % 3 == 0 and ((m // 3) & (m // 3 - 1)) == 0) else "random"
            items.append(PlanItem("linear", op, {"m": m, "n": n, "k": k, "is_gemm": is_gemm}, mode))
    for mode, seqs in prefill_batches(lim, rng, quick):
        items.append(PlanItem("attention", "attn_prefill", {"seqs": seqs, "decode": False}, mode))
    for mode, seqs in decode_batches(lim, rng, quick):
        items.append(PlanItem("attention", "attn_decode", {"seqs": seqs, "decode": True}, mode))
    if shapes.num_experts:
        E, topk = shapes.num_experts, shapes.topk
        for t in token_grid(lim.max_moe_tokens, rng, lim.n_random_m // 4, quick):
            for mode in ("balanced", "skewed"):
                counts = expert_counts(t * topk, E, mode, rng)
                items.append(PlanItem("moe", MOE_OP, {"num_tokens": t, "counts": counts}, mode))
    if shuffle:
        order = rng.permutation(len(items))
        items = [items[i] for i in order]
    return items
