"""Surrogate tier of the cost model: trained operator predictors priced inside the step.

A predictor set (``frontier-jax predictors train``) holds one MLP surrogate per operator,
distilled from random forests fitted on profiled kernel times. This tier prices an
iteration by building, from the batch's slot arrays, the very feature vectors the
predictors were trained on (:mod:`frontier_jax.predict.features`) and evaluating the
surrogates on them, with ``numpy`` in the reference simulator and ``jax.numpy`` inside the
compiled step:

* per decoder layer: QKV, O, up and down projections (GEMM surrogates at ``m`` = the
  batch's tokens and the model's TP-sharded ``n, k``); prefill and decode attention
  (surrogates of the batch's *distribution* of query and context lengths); norms, rope,
  activation and the two residual adds; two TP all-reduces (the set's ``all_reduce`` if it
  has one, else the roofline's);
* per iteration: the LM head on the sampled rows, composed with the layer by
  :func:`frontier_jax.cost.compose.iteration_seconds` like the roofline's (``layers`` x the
  layer, pipeline sends, LM head, embedding, host overhead ``cpu_s + cpu_per_seq_s * seqs``).

An operator the set does not cover keeps its roofline price (:func:`op_times`). With a
``moe_grouped_gemm`` network and sampled MoE routing (``[moe] routing`` other than
"balanced"), each EP rank's routed experts are priced by that network: the step draws the
rank loads as on the roofline (:func:`frontier_jax.cost.routing.routed_loads`) and looks up
one rank's GroupedGEMM seconds at its rows (:class:`StepTables` ``moe``, see below), the
layer waiting for the slowest rank. The rest of the MoE structure (router, shared expert,
dense first layers, balanced routing's mean-load experts) stays on the roofline. A set with an ``iteration`` model (an engine
profiled step by step, e.g. vLLM on this CPU) prices each iteration with it alone, from
the batch's attention features: that measurement already holds every layer and the host.
Per-GPU attention heads follow the importers (``max(heads / tp, 1)``). The networks run in
float32 in both simulators (:mod:`frontier_jax.cost.mlp`).

Two devices keep the in-step price cheap without changing what it means:

* **Tables.** Everything in a layer but attention, and the LM head, depend on the batch's
  token count (sampled rows) alone, so :meth:`SurrogateCost.prepare` evaluates them once
  per configuration on the host at every count an iteration can have (0 ..
  ``max_num_batched_tokens``, 0 .. ``max_num_seqs``), and the step looks them up
  (:class:`StepTables`, attached to the params by ``sim_params``). Without tables the step
  evaluates the same expressions directly.
* **One EP rank's GroupedGEMM** is tabulated the same way, at every row count a rank can
  get (0 .. ``max_num_batched_tokens`` x top-k), as the network's mean price over
  ``MOE_DRAWS`` multinomial spreads of the rows over the rank's expert slots (a fixed seed;
  the step knows a rank's rows, not how they split among its experts): every count up to
  ``MOE_EXACT_ROWS``, a 1% grid above it, linear in between. This price exists only as a
  table: an untabled evaluation prices the experts by the roofline.
* **Decode contexts on a token grid.** Attention (and the ``iteration`` model) prices a
  batch with decoding sequences by linear interpolation between two *anchor* batches: its
  decoding contexts shifted so that the shortest lands on the multiple of
  ``ANCHOR_TOKENS`` (G = 32) at or below it, and G tokens further (weights from the
  remainder). Over a decode window (contexts + j, j < K) the anchors repeat, so K
  iterations need ``(G + K - 2) // G + 2`` network rows (3 for K = 32) instead of K, and a
  single iteration is priced by the same rule in both simulators. Attention time is close
  to linear in context over 32 tokens; the grid's deviation from the raw surrogate is
  bounded in the tests.

The features are built for few kernels per step (what a GPU step pays for): one pass over
the slots for all sums and extremes, the columns stacked in fusable groups
(:func:`frontier_jax.predict.features.stack_last`), single columns read by name
(:class:`AttnX`) rather than sliced out of the stack.

The set is profiled on one device: its peak rates enter the features, so the
simulated hardware must be that device (checked when the model is built).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from frontier_jax.cost import mlp
from frontier_jax.cost.batch import BatchSlots, BatchTotals, batch_totals, grow_decode
from frontier_jax.cost.compose import iteration_seconds
from frontier_jax.cost.features import (
    SHIFT_KEEP,
    SHIFTED_INDEX,
    attention_columns,
    collective_features,
    gemm_features,
    shifted_decode_columns,
    stack_attention,
    with_shifted,
)
from frontier_jax.cost.params import SCALAR_FIELDS, CostParams
from frontier_jax.cost.roofline import _expert_rank_seconds, _gemm, _keys, moe_seconds, op_times

# roofline op name -> predictor op whose surrogate replaces it (dense models)
GEMM_OPS = {
    "qkv_proj": "attn_pre_proj",
    "o_proj": "attn_post_proj",
    "mlp_up": "mlp_up_proj",
    "mlp_down": "mlp_down_proj",
}
# element-wise ops of one layer and how many times each runs (two residual adds)
ELEMENTWISE_OPS = {
    "input_layernorm": 1,
    "post_attention_layernorm": 1,
    "attn_rope": 1,
    "mlp_act": 1,
    "add": 2,
}
ATTENTION_OPS = ("attn_prefill", "attn_decode")
ALLREDUCE_OP = "all_reduce"
ITERATION_OP = "iteration"  # a whole engine step measured end to end (see predict.train)
LM_HEAD_OP = "lm_head_linear"
DEFAULT_BLOCK_SIZE = 16  # KV page size assumed by the attention page-count features
ANCHOR_TOKENS = 32  # decode contexts are priced on a grid of this many tokens (see module doc)
TABLE_CACHE = 256  # tables (per distinct cost parameters and kind) a cost model keeps
TABLE_CHUNK = 8192  # token counts per host evaluation when building them
MOE_OP = "moe_grouped_gemm"  # one GPU's routed experts (Frontier's moe.csv measurement)
MOE_DRAWS = 16  # multinomial spreads of a rank's rows over its experts per tabulated count
MOE_EXACT_ROWS = 2048  # rank row counts tabulated one by one; above, a grid of MOE_GRID_STEP
MOE_GRID_STEP = 1.01
MOE_SEED = 0x5EED  # the spreads' generator (fixed: a table is a function of the params only)
MOE_CHUNK = 256  # row counts per host evaluation (counts [chunk, draws, slots])


def _mlp(weights: dict, x, xp):
    """Surrogate time (s) of raw features ``x`` ``[..., F]`` (rows share one surrogate)."""
    return mlp.forward(weights, x, xp)


def stacked_apply(sw: dict, x, xp):
    """Seconds of ``O`` surrogates at once: ``sw`` stacked weights (leading axis O), ``x``
    ``[O, F]`` (row o for surrogate o): a few batched products instead of O small ones."""
    return mlp.forward(sw, x, xp, mlp.STACKED)


def _log(x, xp):
    """The networks' input transform, ``log1p(max(x, 0))`` in float32."""
    return mlp.log_inputs(x, xp)


def _first_at_anchors(sw: dict, l0, ls, xp):
    """First layer of one network at anchor rows that equal the batch's log-features
    ``l0`` [F] except in :data:`SHIFTED_COLUMNS`, whose logs are ``ls`` [A, S]: the
    unchanged columns' product once, the S changed ones per anchor ([A, W])."""
    base = (mlp.normalize(sw, l0, xp) * SHIFT_KEEP.astype(np.float32)) @ sw["W0"] + sw["b0"]
    return base + mlp.normalize(sw, ls, xp, cols=SHIFTED_INDEX) @ sw["W0"][SHIFTED_INDEX]


class StepTables(NamedTuple):
    """Per-configuration lookup tables of the surrogate tier (host, once per configuration,
    :meth:`SurrogateCost.prepare`): ``layer`` [M+1] seconds per decoder layer of everything
    but attention at m = 0..M batch tokens; ``lm_head`` [S+1] seconds of the LM head at
    s = 0..S sampled rows. Exact: the same expressions at every integer the step can ask for.
    ``moe`` [X+1]: seconds of one EP rank's routed experts at x = 0..X rows (see the module
    doc; a one-entry placeholder, never read, without sampled routing or an MoE network)."""

    layer: Any
    lm_head: Any
    moe: Any


class AttnX(NamedTuple):
    """A batch's attention features: ``x`` stacked ``[F]`` (the networks' input) and
    ``cols`` the same values by name (single columns are read from here: slicing ``x``
    would make XLA build parts of it twice)."""

    x: Any
    cols: dict


def _lookup(table, x, xp):
    """``table[x]`` for an integer-valued float count ``x`` (clipped to the table)."""
    return table[xp.clip(x, 0, table.shape[-1] - 1).astype(xp.int32)]


def _moe_grid(hi: float) -> np.ndarray:
    """The fixed row counts the ``moe`` table is evaluated at, up to the first >= ``hi``: every
    count to ``MOE_EXACT_ROWS``, then ``MOE_EXACT_ROWS x MOE_GRID_STEP**j`` rounded."""
    exact = np.arange(min(hi, MOE_EXACT_ROWS) + 1.0)
    if hi <= MOE_EXACT_ROWS:
        return exact
    n = int(np.ceil(np.log(hi / MOE_EXACT_ROWS) / np.log(MOE_GRID_STEP))) + 1
    return np.unique(np.concatenate([exact, np.round(MOE_EXACT_ROWS * MOE_GRID_STEP ** np.arange(1, n + 1))]))


def _lookup_linear(table, x, xp):
    """``table`` at a real ``x`` >= 0, linear between its integer entries (clipped)."""
    n = table.shape[-1] - 1
    x = xp.clip(x, 0.0, n)
    lo = xp.minimum(xp.floor(x), max(n - 1, 0)).astype(xp.int32)
    w = x - lo
    return table[lo] * (1.0 - w) + table[xp.minimum(lo + 1, n)] * w


def _totals_of(ax: AttnX, b: BatchSlots, xp) -> BatchTotals:
    """:func:`batch_totals` read off the batch's attention features (the same integer sums;
    only the sampled rows need the slots again)."""
    g = ax.cols.__getitem__
    return BatchTotals(
        num_seqs=g("num_seqs"), num_tokens=g("num_tokens"), prefill_tokens=g("p_q_sum"),
        decode_seqs=g("d_num_seqs"),
        prefill_attn_pairs=g("p_qc_sum") + 0.5 * (g("p_q2_sum") + g("p_q_sum")),
        prefill_kv_tokens=g("p_kv_sum"), decode_kv_tokens=g("d_c_sum") + g("d_num_seqs"),
        num_sampled=xp.sum((b.mask & b.samples).astype(xp.float64)))


def _interp(f, lo, alpha):
    """Linear interpolation between anchor prices ``f`` [A] at ``lo`` and ``lo + 1`` ([k]),
    as a sum over the (few) anchors: selects, where a gather would cost more in the step."""
    out = 0.0
    for a in range(f.shape[-1]):
        out = out + f[a] * ((lo == a) * (1.0 - alpha) + (lo + 1 == a) * alpha)
    return out


class SurrogateCost:
    """The pricing functions of one predictor set on one device (see module doc).

    ``weights``: ``{op: {name: array}}`` (:func:`frontier_jax.cost.mlp.prepare_weights`); ``device``: the card's device spec dict
    (``peak_flops_bf16``, ``peak_flops_fp8``, ``mem_bw``, ``num_sms``); ``block_size``:
    the KV page size of the attention training rows.
    """

    def __init__(self, name: str, weights: dict, device: dict, block_size: int):
        self.name = name
        self.w = weights
        self.dev = device
        self.block_size = float(block_size)
        elementwise = all(op in weights for op in ELEMENTWISE_OPS)
        # per-layer linear-family ops priced by surrogates, evaluated as one stacked MLP
        self.lin_ops = [op for op in GEMM_OPS.values() if op in weights]
        self.lin_ops += list(ELEMENTWISE_OPS) if elementwise else []
        self.lin = mlp.stack_weights([weights[op] for op in self.lin_ops]) if self.lin_ops else None
        self.attn_ops = [op for op in ATTENTION_OPS if op in weights]
        self._attn_stacks: dict[int, dict | None] = {}
        self._tables: dict[tuple, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"SurrogateCost({self.name!r}, ops={sorted(self.w)})"

    def _peak(self, p: CostParams, xp):
        return xp.where(p.dtype_bytes <= 1, self.dev["peak_flops_fp8"], self.dev["peak_flops_bf16"])

    # ---- linear family: per layer as a function of the batch's tokens only
    def _gemm_x(self, m, nk, p, xp):
        """GEMM features of ``[m, k] x [k, n]`` per (n, k) in ``nk`` ([O, *m.shape, F])."""
        m = xp.asarray(m, dtype=xp.float64)
        n, k = (xp.stack([xp.broadcast_to(xp.asarray(v[i], dtype=xp.float64), m.shape) for v in nk])
                for i in range(2))
        return gemm_features(xp.broadcast_to(m, n.shape), n, k, xp, peak_flops=self._peak(p, xp),
                             mem_bw=self.dev["mem_bw"], num_sms=self.dev["num_sms"],
                             dtype_bytes=p.dtype_bytes)

    def _linear_times(self, T, p, xp) -> dict:
        """Seconds of every surrogate-priced per-layer linear-family op at ``T`` tokens (any
        shape; a scalar runs the stacked networks in one call)."""
        if not self.lin_ops:
            return {}
        tp, hd, h = p.tp, p.head_dim, p.hidden
        nk = {  # (n, k) per GPU, as linear_op_shape in predict.importers
            "attn_pre_proj": (xp.floor((p.q_heads + 2.0 * p.kv_heads) * hd / tp), h),
            "attn_post_proj": (h, xp.floor(p.q_heads * hd / tp)),
            "mlp_up_proj": (xp.floor((1.0 + p.gated) * p.ffn / tp), h),
            "mlp_down_proj": (h, xp.floor(p.ffn / tp)),
            "input_layernorm": (h, 1.0),
            "post_attention_layernorm": (h, 1.0),
            "add": (h, 1.0),
            "attn_rope": (xp.floor((p.q_heads + p.kv_heads) * hd / tp), 1.0),
            "mlp_act": (xp.floor(p.ffn / tp), 1.0),
        }
        x = self._gemm_x(T, [nk[op] for op in self.lin_ops], p, xp)
        if self.lin is not None and x.ndim == 2:
            y = stacked_apply(self.lin, x, xp)
        else:
            y = [_mlp(self.w[op], x[i], xp) for i, op in enumerate(self.lin_ops)]
        return {op: y[i] for i, op in enumerate(self.lin_ops)}

    def layer_time(self, T, p: CostParams, xp):
        """Seconds per decoder layer of everything but attention at ``T`` batch tokens (any
        shape): surrogate GEMMs, element-wise ops and all-reduce where the set has them, the
        roofline's price for the rest (and for MoE layers)."""
        zero = T * 0.0
        t = BatchTotals(zero, T, zero, zero, zero, zero, zero, zero)
        ops = op_times(t, p, xp)
        del ops["attn_prefill"], ops["attn_decode"]
        lin = self._linear_times(T, p, xp)
        dense = p.num_experts <= 0
        for rname, op in GEMM_OPS.items():
            if op in lin:
                ops[rname] = xp.where(dense, lin[op], ops[rname])
        if "add" in lin:
            elem = 0.0
            for op, times in ELEMENTWISE_OPS.items():
                elem = elem + times * lin[op]
            ops["elementwise"] = xp.where(dense, elem, ops["elementwise"])
        tp, h, b = p.tp, p.hidden, p.dtype_bytes
        if ALLREDUCE_OP in self.w:
            x = collective_features(T * h * b, tp, p.gpus_per_node, xp)
            ops["tp_allreduce"] = xp.where(tp > 1, 2.0 * _mlp(self.w[ALLREDUCE_OP], x, xp), 0.0)
        layer = 0.0
        for name in sorted(ops):
            layer = layer + ops[name]
        return layer

    def lm_head_time(self, S, p: CostParams, xp):
        """Seconds of the LM head on ``S`` sampled rows (any shape)."""
        if LM_HEAD_OP not in self.w:
            return _gemm(S, p.vocab / p.tp, p.hidden, p, xp)
        x = self._gemm_x(S, [(p.vocab, p.hidden)], p, xp)[0]
        return xp.where(S > 0, _mlp(self.w[LM_HEAD_OP], x, xp), 0.0)

    def prepare(self, p: CostParams, max_tokens: int, max_seqs: int) -> CostParams:
        """``p`` with its :class:`StepTables` for iterations of up to ``max_tokens`` tokens and
        ``max_seqs`` sequences (host, numpy): the step then looks the linear family up
        instead of evaluating its networks. Host cost grows with the budget (about 0.5 s
        per 8,192 tokens with width-128 networks on a 2-core CPU), memory stays bounded
        (chunks of ``TABLE_CHUNK`` counts). Cached per distinct cost parameters: a longer
        budget extends the table, a shorter one takes its prefix."""
        p = p._replace(tables=None)
        if ITERATION_OP in self.w:  # whole-step model: no per-layer parts to tabulate
            return p
        key = tuple(float(getattr(p, f)) for f in SCALAR_FIELDS)
        moe = np.zeros(1)
        if self.prices_experts(p):
            rows = int(max_tokens * max(float(p.top_k), 1.0))
            which = ("moe", float(p.moe.ep), float(p.moe.slots))
            moe = self._table(key, which, self.expert_rank_time, p, rows)
        return p._replace(tables=StepTables(self._table(key, "layer", self.layer_time, p, max_tokens),
                                            self._table(key, "lm", self.lm_head_time, p, max_seqs),
                                            moe))

    # ---- MoE: one EP rank's routed experts (host tables, see the module doc)
    def prices_experts(self, p: CostParams) -> bool:
        """Whether this tier's network prices ``p``'s routed experts (static: the set has
        the network and ``p`` samples routing maps)."""
        return MOE_OP in self.w and p.moe is not None

    def expert_rank_time(self, x, p: CostParams, xp=np):
        """Host (numpy): seconds of one EP rank's GroupedGEMM at each of the row counts ``x``
        [n] (increasing integers): the network's mean over ``MOE_DRAWS`` multinomial spreads
        of the rows over the rank's ``p.moe.slots`` experts, at every count up to
        ``MOE_EXACT_ROWS`` and on a 1% grid above (linear between); 0 at 0 rows."""
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return x
        grid = _moe_grid(float(x[-1]))
        grid = grid[max(int(np.searchsorted(grid, x[0], side="right")) - 1, 0):]
        return np.interp(x, grid, self._expert_mean(grid, p))

    def _expert_mean(self, rows: np.ndarray, p: CostParams, num_tokens: np.ndarray | None = None,
                     warm: float = 1.0) -> np.ndarray:
        """The network's mean price over the spreads at each count of ``rows`` (host).

        ``num_tokens``: the tokens entering the layer on the rank (they set the kernel's
        launch config); default ``rows x ep / top_k``, the EP group's tokens when the rank
        holds its share of the routed rows (every EP rank runs the layer on all of them).
        ``warm``: the timing context (1: inside a step, as the simulator runs it; 0: a
        standalone profile, for comparisons with one)."""
        rows = np.asarray(rows, dtype=np.float64)
        if num_tokens is None:
            num_tokens = rows * float(p.moe.ep) / max(float(p.top_k), 1.0)
        num_tokens = np.broadcast_to(np.asarray(num_tokens, dtype=np.float64), rows.shape)
        from frontier_jax.cost.features import grouped_gemm_features

        slots = max(int(round(float(p.moe.slots))), 1)
        share = np.full(slots, 1.0 / slots)
        out = []
        for i in range(0, rows.size, MOE_CHUNK):
            r = rows[i:i + MOE_CHUNK].astype(np.int64)
            tok = num_tokens[i:i + MOE_CHUNK, None]
            # each count's spreads from its own stream: a price never depends on which
            # other counts are evaluated with it
            counts = np.stack([np.random.default_rng((MOE_SEED, int(n))).multinomial(n, share, MOE_DRAWS)
                               for n in r])
            x = grouped_gemm_features(
                counts, np.ones(counts.shape, bool), np, num_tokens=tok, hidden=float(p.hidden),
                expert_hidden=float(p.moe_ffn), topk=float(p.top_k), gated=float(p.gated),
                tp=float(p.tp), ep=float(p.moe.ep), dtype_bytes=float(p.dtype_bytes),
                peak_flops=self._peak(p, np), mem_bw=self.dev["mem_bw"], num_sms=self.dev["num_sms"],
                warm=warm)
            y = np.asarray(_mlp(self.w[MOE_OP], x, np), np.float64).mean(axis=-1)
            out.append(np.where(r > 0, y, 0.0))
        return np.concatenate(out)

    def expert_rank_seconds(self, x, p: CostParams, xp):
        """One EP rank's routed-expert seconds at ``x`` rows (any shape) in the step: the
        ``moe`` table when this tier prices the experts, else the roofline's."""
        if self.prices_experts(p) and p.tables is not None:
            return _lookup_linear(p.tables.moe, x, xp)
        return _expert_rank_seconds(x, p, xp)

    def _table(self, key: tuple, which: str, fn, p: CostParams, n: int):
        """``fn`` at counts 0..n (see :meth:`prepare`)."""
        have = self._tables.get((key, which))
        start = 0 if have is None else have.shape[0]
        if start <= n:
            if have is None and len(self._tables) >= TABLE_CACHE:  # bounded: drop the oldest
                self._tables.pop(next(iter(self._tables)))
            parts = [] if have is None else [have]
            for i in range(start, n + 1, TABLE_CHUNK):  # chunks: a long budget's features are large
                counts = np.arange(i, min(i + TABLE_CHUNK, n + 1), dtype=np.float64)
                parts.append(np.asarray(fn(counts, p, np), np.float64))
            have = self._tables[(key, which)] = np.concatenate(parts)
        return have[:n + 1]

    def layer_and_lm_head(self, t: BatchTotals, p: CostParams, xp):
        """(seconds per layer of everything but attention, seconds of the LM head) for batch
        totals ``t``; looked up in ``p.tables`` when :meth:`prepare` attached them."""
        if p.tables is not None:
            return (_lookup(p.tables.layer, t.num_tokens, xp),
                    _lookup(p.tables.lm_head, t.num_sampled, xp))
        return self.layer_time(t.num_tokens, p, xp), self.lm_head_time(t.num_sampled, p, xp)

    # ---- attention: distributional features, decode contexts priced on a token grid
    def _attention_x(self, b: BatchSlots, p: CostParams, xp) -> AttnX:
        cols = attention_columns(
            b.q_tokens, b.ctx_tokens, b.mask, xp, is_decode=b.is_decode & b.mask,
            n_q_heads=xp.maximum(p.q_heads / p.tp, 1.0),
            n_kv_heads=xp.maximum(p.kv_heads / p.tp, 1.0), head_dim=p.head_dim,
            peak_flops=self._peak(p, xp), mem_bw=self.dev["mem_bw"], num_sms=self.dev["num_sms"],
            dtype_bytes=p.dtype_bytes, block_size=self.block_size)
        return AttnX(stack_attention(cols, xp), cols)

    def _anchors(self, x0: AttnX, b: BatchSlots, p: CostParams, xp, k: int):
        """Anchor inputs and interpolation of iterations 0..k-1 (see module doc).

        Iteration j's decoding contexts are ``c + j``; its price interpolates linearly
        between the anchor batches whose shortest decoding context is the multiple of
        ``ANCHOR_TOKENS`` (G) at or below, and the next one above, ``min(c) + j``. Anchor a
        has the decode contexts shifted by G a - r, r = min(c) mod G; its features equal
        the batch's except in :data:`SHIFTED_COLUMNS`. Returns (the batch's log-features
        [F]; those columns' raw values at the anchors [A, S]; lower anchor [k]; weight of
        the upper one [k])."""
        G = float(ANCHOR_TOKENS)
        n_anchor = (ANCHOR_TOKENS - 1 + k - 1) // ANCHOR_TOKENS + 2
        r = xp.mod(x0.cols["d_c_min"], G)
        shifts = G * xp.arange(n_anchor, dtype=xp.float64) - r
        xs = shifted_decode_columns(x0.cols, b.ctx_tokens, b.mask & b.is_decode, shifts, xp,
                                    peak_flops=self._peak(p, xp), mem_bw=self.dev["mem_bw"],
                                    dtype_bytes=p.dtype_bytes, block_size=self.block_size,
                                    aligned=ANCHOR_TOKENS % self.block_size == 0)
        u = r.astype(xp.int32) + xp.arange(k, dtype=xp.int32)
        return _log(x0.x, xp), xs, u // ANCHOR_TOKENS, (u % ANCHOR_TOKENS).astype(xp.float64) / G

    def _at_anchors(self, op: str, l0, x0, xs, xp):
        """Seconds of network ``op`` at the anchors ([A])."""
        w = self.w[op]
        h = _first_at_anchors(w, l0, _log(xs, xp), xp)
        return mlp.finish(w, h, self._ratio_rows(op, x0, xs, xp)[1:], xp)

    def _ratio_rows(self, op: str, x0, xs, xp):
        """The ratio of network ``op`` (:func:`mlp.ratio_column`: its ratio column, or its
        linear ratio) at the batch and at each anchor ([1 + A]); the anchors differ from the
        batch in :data:`SHIFTED_COLUMNS` only."""
        rows = xp.concatenate([x0.x[None], with_shifted(x0.x, xs)])
        return mlp.ratio_column(self.w[op], rows, xp)

    def _attention_stack(self, n_anchor: int):
        """Prefill and decode networks stacked as rows [prefill, decode x n_anchor] (None
        when the set lacks one or their shapes differ)."""
        if n_anchor not in self._attn_stacks:
            ok = all(op in self.w for op in ATTENTION_OPS)
            self._attn_stacks[n_anchor] = mlp.stack_weights(
                [self.w["attn_prefill"]] + [self.w["attn_decode"]] * n_anchor) if ok else None
        return self._attn_stacks[n_anchor]

    def attention_times(self, b: BatchSlots, t: BatchTotals, p: CostParams, xp, k: int,
                        x0: AttnX):
        """Seconds per layer of attention in iterations 0..k-1 ([k]; iteration j's decoding
        contexts grown by j tokens; ``x0``: the batch's attention features)."""
        stacked = None
        # the roofline's prefill price only where the set has no prefill network
        pre = None if "attn_prefill" in self.w else op_times(t, p, xp)["attn_prefill"]
        if "attn_decode" in self.w:
            l0, xs, lo, alpha = self._anchors(x0, b, p, xp, k)
            stacked = self._attention_stack(xs.shape[0])
            if stacked is not None:  # [prefill at x0, decode at anchors]: one stacked pass
                h = xp.concatenate([mlp.first_layer(self.w["attn_prefill"], l0, xp)[None],
                                    _first_at_anchors(self.w["attn_decode"], l0, _log(xs, xp), xp)])
                ratio = xp.concatenate([self._ratio_rows("attn_prefill", x0, xs, xp)[:1],
                                        self._ratio_rows("attn_decode", x0, xs, xp)[1:]])
                y = mlp.finish(stacked, h, ratio, xp, mlp.STACKED)
                pre, fa = y[0], y[1:]
            else:
                fa = self._at_anchors("attn_decode", l0, x0, xs, xp)
            dec = xp.where(x0.cols["d_num_seqs"] > 0, _interp(fa, lo, alpha), 0.0)
        else:
            dec = op_times(grow_decode(t, k, xp), p, xp)["attn_decode"]
        if "attn_prefill" in self.w:
            if stacked is None:
                pre = _mlp(self.w["attn_prefill"], x0.x, xp)
            pre = xp.where(x0.cols["p_num_seqs"] > 0, pre, 0.0)
        return pre + dec

    # ---- the CostModel entry points (one pass, see _step)
    # (the iteration context ``ctx`` only keys sampled MoE routing maps)
    def iteration_time(self, batch: BatchSlots, p: CostParams, xp: Any, ctx: Any = None):
        """Seconds of one iteration over ``batch`` (0 when it is empty)."""
        return self._step(batch, p, xp, 1, ctx)[0]

    def decode_window_times(self, batch: BatchSlots, p: CostParams, xp: Any, k: int,
                            ctx: Any = None):
        """Seconds of ``k`` successive iterations of a decode-only ``batch`` ([k]; entries
        past the first are meaningful for decode-only batches only, the only ones jumped)."""
        return self._step(batch, p, xp, k, ctx)[1]

    def step_times(self, batch: BatchSlots, p: CostParams, xp: Any, k: int, ctx: Any = None):
        """(iteration_time, decode_window_times with entry 0 = the iteration time) in one
        pass: the totals, attention features and linear ops are computed once."""
        return self._step(batch, p, xp, k, ctx)

    def _step(self, batch: BatchSlots, p: CostParams, xp: Any, k: int, ctx: Any = None):
        x0 = self._attention_x(batch, p, xp) if ITERATION_OP in self.w or self.attn_ops else None
        t = batch_totals(batch, xp) if x0 is None else _totals_of(x0, batch, xp)
        live = t.num_seqs > 0
        if ITERATION_OP in self.w:  # the whole step from its attention features, on the grid
            l0, xs, lo, alpha = self._anchors(x0, batch, p, xp, k)
            times = _interp(self._at_anchors(ITERATION_OP, l0, x0, xs, xp), lo, alpha)
        else:
            layer, lm_head = self.layer_and_lm_head(t, p, xp)
            # the MoE structure (dense first layers, sampled routing) as on the roofline, each
            # rank's experts from the network's table (the first entry's key is the
            # iteration's, then one per window step)
            keys = _keys(ctx, p, xp, k)
            moe = moe_seconds(t, p, xp, keys, rank_seconds=self.expert_rank_seconds)
            times = iteration_seconds(layer + self.attention_times(batch, t, p, xp, k, x0),
                                      lm_head, t, p, xp, moe)
        times = xp.where(live, times, 0.0)
        return times[0], times

def grid_deviations(sc: SurrogateCost, p: CostParams, batches: int, *, c_lo: int = 1,
                    short_share: float = 0.0, seed: int = 0) -> np.ndarray:
    """How far the decode grid moves prices from the raw decode-attention surrogate:
    ``[batches, 2]`` rows of (shortest decoding context, |grid price / raw price - 1|) on
    random decode-only batches (24 slots, 1-23 sequences, contexts in [c_lo, 4000), a
    ``short_share`` of them in [c_lo, 300); c_lo < 300). Host-side, numpy."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(batches):
        B = 24
        m = np.arange(B) < rng.integers(1, B)
        c = np.where(rng.random(B) < short_share, rng.integers(c_lo, 300, B), rng.integers(c_lo, 4000, B))
        b = BatchSlots(np.ones(B, np.int32), c.astype(np.int32), m, m, m)
        x0 = sc._attention_x(b, p, np)
        raw = float(_mlp(sc.w["attn_decode"], x0.x, np))
        grid = float(sc.attention_times(b, batch_totals(b, np), p, np, 1, x0)[0])
        rows.append((c[m].min(), abs(grid / raw - 1.0)))
    return np.asarray(rows, dtype=float)


def resolve_predictor_dir(name: str, base: str | Path | None = None) -> Path:
    """Folder of predictor set ``name``: a path (absolute, or relative to the working
    directory or to ``base``, e.g. the scenario's folder), or a name under the project's
    ``predictors/`` folder. Raises FileNotFoundError listing where it looked."""
    tried = []
    cand = [Path(name)]
    if base is not None:
        cand.append(Path(base) / name)
    root = Path(__file__).resolve().parents[2] / "predictors"
    cand.append(root / name)
    for c in cand:
        tried.append(str(c))
        if (c / "card.json").is_file():
            return c.resolve()
    shipped = sorted(p.name for p in root.glob("*") if (p / "card.json").is_file()) if root.is_dir() else []
    raise FileNotFoundError(f"no predictor set {name!r} (looked in {', '.join(tried)}); "
                            f"shipped sets: {', '.join(shipped) or 'none'}")


@functools.lru_cache(maxsize=16)
def surrogate_cost(path: str, device: str | None = None):
    """The :class:`~frontier_jax.cost.CostModel` of the predictor set at ``path`` (cached:
    the same set gives the same, hashable object, so compiled simulators are reused).

    ``device``: which of the card's devices to price (needed when it has several).
    """
    from frontier_jax.cost import CostModel
    from frontier_jax.predict.artifact import load_predictor_set

    pset = load_predictor_set(path)
    card = pset["card"]
    devices = pset["devices"]
    if device is None:
        if len(devices) != 1:
            raise ValueError(f"{path}: card.json: devices: got {sorted(devices)}; "
                             "allowed: exactly one, or name the device")
        device = next(iter(devices))
    if device not in devices:
        raise ValueError(f"{path}: card.json: devices: {device!r} missing; allowed: {sorted(devices)}")
    weights = {}
    for op, w in pset["weights"].items():
        if "@" in op:  # kernel-only variants price a different measurement
            continue
        weights[op] = mlp.prepare_weights(w)
    block = int(card.get("attention_block_size") or DEFAULT_BLOCK_SIZE)
    sc = SurrogateCost(Path(path).name, weights, dict(devices[device]), block)
    return CostModel(sc.iteration_time, sc.decode_window_times, sc.step_times, sc.prepare)


__all__ = ["ANCHOR_TOKENS", "MOE_OP", "StepTables", "SurrogateCost", "grid_deviations", "resolve_predictor_dir",
           "surrogate_cost"]
