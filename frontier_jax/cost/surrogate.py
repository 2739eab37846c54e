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
* per iteration: ``layers`` x the layer, the LM head on the sampled rows, the embedding,
  pipeline sends and the host overhead ``cpu_s + cpu_per_seq_s * seqs``.

An operator the set does not cover keeps its roofline price (:func:`op_times`); MoE
expert layers stay on the roofline for now. A set with an ``iteration`` model (an engine
profiled step by step, e.g. vLLM on this CPU) prices each iteration with it alone, from
the batch's attention features: that measurement already holds every layer and the host.
Per-GPU attention heads follow the importers (``max(heads / tp, 1)``). The networks run in
float32 in both simulators (see ``_apply``).

The set is profiled on one device: its peak rates enter the features, so the
simulated hardware must be that device (checked when the model is built).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from frontier_jax.cost.batch import BatchSlots, BatchTotals, batch_totals, grow_decode
from frontier_jax.cost.params import CostParams
from frontier_jax.cost.roofline import _gemm, _link, op_times

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


def _mlp(weights: dict, x, xp):
    """Surrogate time (s) of raw features ``x`` ``[..., F]`` (rows share one surrogate)."""
    return _apply(weights, x, xp, "...f,fw->...w")


def stack_weights(ws: list[dict]) -> dict | None:
    """Stack same-architecture surrogates along a new leading op axis (None if they differ)."""
    keys = sorted(ws[0])
    if any(sorted(w) != keys or any(w[k].shape != ws[0][k].shape for k in keys) for w in ws):
        return None
    return {k: np.stack([w[k] for w in ws]) for k in keys}


def stacked_apply(sw: dict, x, xp):
    """Seconds of ``O`` surrogates at once: ``sw`` stacked weights (leading axis O), ``x``
    ``[O, F]`` (row o for surrogate o): a few batched products instead of O small ones."""
    return _apply(sw, x, xp, "of,ofw->ow")


def _apply(sw: dict, x, xp, spec: str):
    """The maths of :func:`frontier_jax.predict.surrogate.surrogate_apply`, written once
    for numpy and jax.numpy. The network runs in float32 (its weights are float32; float64
    transcendentals would dominate the step); the roofline ratio is applied in float64."""
    x = xp.asarray(x, dtype=xp.float64)
    n_layers = sum(1 for k in sw if k.startswith("W"))
    f32 = xp.float32
    z = (xp.log1p(xp.maximum(x, 0.0).astype(f32)) - sw["x_mean"]) / sw["x_std"]
    z = xp.clip(z, sw["z_lo"], sw["z_hi"])
    for i in range(n_layers):
        z = xp.einsum(spec, z, sw[f"W{i}"]) + sw[f"b{i}"]
        if i < n_layers - 1:
            z = z / (f32(1.0) + xp.exp(xp.minimum(-z, f32(60.0))))  # SiLU, no overflow
    y = (z[..., 0] * sw["y_std"] + sw["y_mean"]).astype(xp.float64)
    ratio = xp.sum(xp.where(sw["ratio_select"] > 0, x, 0.0), axis=-1)  # the one-hot column
    y = y + xp.where(sw["has_ratio"], xp.log(xp.maximum(ratio, 1e-9)), 0.0)
    return xp.exp(y)


def _prepare(w: dict) -> dict:
    """float32 network weights plus the ratio column as a mask (see :func:`_apply`)."""
    out = {k: np.asarray(v, np.float32) for k, v in w.items()}
    sel = np.asarray(w["ratio_select"], np.float64)
    if np.count_nonzero(sel) > 1 or np.any((sel != 0) & (sel != 1)):
        raise ValueError("ratio_select must be one-hot or zero")
    out["has_ratio"] = np.asarray(sel.sum(-1) > 0)
    return out


class SurrogateCost:
    """The pricing functions of one predictor set on one device (see module doc).

    ``weights``: ``{op: {name: array}}`` (see ``_prepare``); ``device``: the card's device spec dict
    (``peak_flops_bf16``, ``peak_flops_fp8``, ``mem_bw``, ``num_sms``); ``block_size``:
    the KV page size of the attention training rows.
    """

    def __init__(self, name: str, weights: dict, device: dict, block_size: int):
        self.name = name
        self.w = weights
        self.dev = device
        self.block_size = float(block_size)
        elementwise = all(op in weights for op in ELEMENTWISE_OPS)
        # linear-family ops priced by surrogates, evaluated together as one stacked MLP
        self.lin_ops = [op for op in GEMM_OPS.values() if op in weights]
        self.lin_ops += list(ELEMENTWISE_OPS) if elementwise else []
        self.lin_ops += [LM_HEAD_OP] if LM_HEAD_OP in weights else []
        self.attn_ops = [op for op in ATTENTION_OPS if op in weights]
        # one stacked evaluation per group when the networks share a shape (as trained)
        self.lin = stack_weights([weights[op] for op in self.lin_ops]) if self.lin_ops else None
        self.attn = stack_weights([weights[op] for op in self.attn_ops]) if self.attn_ops else None

    def _group(self, ops: list[str], stacked: dict | None, x, xp):
        """Seconds of surrogates ``ops`` on their rows of ``x`` ``[len(ops), F]``."""
        if stacked is not None:
            return stacked_apply(stacked, x, xp)
        return xp.stack([_mlp(self.w[op], x[i], xp) for i, op in enumerate(ops)])

    def __repr__(self) -> str:
        return f"SurrogateCost({self.name!r}, ops={sorted(self.w)})"

    def _peak(self, p: CostParams, xp):
        return xp.where(p.dtype_bytes <= 1, self.dev["peak_flops_fp8"], self.dev["peak_flops_bf16"])

    def _linear_times(self, t: BatchTotals, p: CostParams, xp) -> dict:
        """Seconds of every surrogate-priced linear-family op (one call each)."""
        if not self.lin_ops:
            return {}
        from frontier_jax.predict.features import gemm_features

        T, tp, hd, h = t.num_tokens, p.tp, p.head_dim, p.hidden
        shapes = {  # (m, n, k) per GPU, as linear_op_shape in predict.importers
            "attn_pre_proj": (T, xp.floor((p.q_heads + 2.0 * p.kv_heads) * hd / tp), h),
            "attn_post_proj": (T, h, xp.floor(p.q_heads * hd / tp)),
            "mlp_up_proj": (T, xp.floor((1.0 + p.gated) * p.ffn / tp), h),
            "mlp_down_proj": (T, h, xp.floor(p.ffn / tp)),
            "input_layernorm": (T, h, 1.0),
            "post_attention_layernorm": (T, h, 1.0),
            "add": (T, h, 1.0),
            "attn_rope": (T, xp.floor((p.q_heads + p.kv_heads) * hd / tp), 1.0),
            "mlp_act": (T, xp.floor(p.ffn / tp), 1.0),
            LM_HEAD_OP: (t.num_sampled, p.vocab, h),
        }
        m, n, k = (xp.stack([xp.asarray(shapes[op][i], dtype=xp.float64) for op in self.lin_ops])
                   for i in range(3))
        x = gemm_features(m, n, k, xp, peak_flops=self._peak(p, xp), mem_bw=self.dev["mem_bw"],
                          num_sms=self.dev["num_sms"], dtype_bytes=p.dtype_bytes)
        y = self._group(self.lin_ops, self.lin, x, xp)
        return {op: y[i] for i, op in enumerate(self.lin_ops)}

    def fixed_parts(self, t: BatchTotals, p: CostParams, xp):
        """(seconds per layer of everything but attention, seconds per iteration outside
        the layers: sends, LM head, embedding, host) for batch totals ``t``."""
        ops = op_times(t, p, xp)
        del ops["attn_prefill"], ops["attn_decode"]
        lin = self._linear_times(t, p, xp)
        dense = p.num_experts <= 0
        for rname, op in GEMM_OPS.items():
            if op in lin:
                ops[rname] = xp.where(dense, lin[op], ops[rname])
        if "add" in lin:
            elem = 0.0
            for op, times in ELEMENTWISE_OPS.items():
                elem = elem + times * lin[op]
            ops["elementwise"] = xp.where(dense, elem, ops["elementwise"])
        T, tp, h, b = t.num_tokens, p.tp, p.hidden, p.dtype_bytes
        if ALLREDUCE_OP in self.w:
            from frontier_jax.predict.features import collective_features

            x = collective_features(T * h * b, tp, p.gpus_per_node, xp)
            ops["tp_allreduce"] = xp.where(tp > 1, 2.0 * _mlp(self.w[ALLREDUCE_OP], x, xp), 0.0)
        layer = 0.0
        for name in sorted(ops):
            layer = layer + ops[name]
        pp_bw, pp_lat = _link(tp * p.pp, p, xp)
        sends = (p.pp - 1.0) * (pp_lat + T * h * b / pp_bw)
        if LM_HEAD_OP in lin:
            lm = xp.where(t.num_sampled > 0, lin[LM_HEAD_OP], 0.0)
        else:
            lm = _gemm(t.num_sampled, p.vocab / tp, h, p, xp)
        embed = T * h * b / (p.hbm_bw * p.mem_eff)
        host = p.cpu_s + p.cpu_per_seq_s * t.num_seqs
        return layer, sends + lm + embed + host

    def _attention_x(self, b: BatchSlots, p: CostParams, xp):
        from frontier_jax.predict.features import attention_features

        return attention_features(
            b.q_tokens, b.ctx_tokens, b.mask, xp, is_decode=b.is_decode & b.mask,
            n_q_heads=xp.maximum(p.q_heads / p.tp, 1.0),
            n_kv_heads=xp.maximum(p.kv_heads / p.tp, 1.0), head_dim=p.head_dim,
            peak_flops=self._peak(p, xp), mem_bw=self.dev["mem_bw"], num_sms=self.dev["num_sms"],
            dtype_bytes=p.dtype_bytes, block_size=self.block_size)

    def attention(self, b: BatchSlots, t: BatchTotals, p: CostParams, xp, x=None):
        """Seconds per layer of prefill plus decode attention over the batch ``b`` (``x``:
        its attention features, if computed already)."""
        from frontier_jax.predict.features import ATTENTION_FEATURES as AF

        ops = op_times(t, p, xp)
        part = {"attn_prefill": ops["attn_prefill"], "attn_decode": ops["attn_decode"]}
        if self.attn_ops:
            x = self._attention_x(b, p, xp) if x is None else x
            y = self._group(self.attn_ops, self.attn, xp.stack([x] * len(self.attn_ops)), xp)
            for i, op in enumerate(self.attn_ops):
                n = x[AF.index("p_num_seqs" if op == "attn_prefill" else "d_num_seqs")]
                part[op] = xp.where(n > 0, y[i], 0.0)
        return part["attn_prefill"] + part["attn_decode"]

    def _window_x(self, b: BatchSlots, p: CostParams, xp, k: int, x0=None):
        from frontier_jax.predict.features import decode_window_features

        return decode_window_features(
            self._attention_x(b, p, xp) if x0 is None else x0, b.ctx_tokens, b.mask & b.is_decode, k, xp,
            peak_flops=self._peak(p, xp), mem_bw=self.dev["mem_bw"], dtype_bytes=p.dtype_bytes,
            block_size=self.block_size)

    def decode_attention(self, b: BatchSlots, t: BatchTotals, p: CostParams, xp, k: int,
                         x0=None):
        """Seconds per layer of attention in ``k`` successive iterations of the decode-only
        batch ``b`` ([k]; the contexts grow by one token per iteration, prefill is zero)."""
        from frontier_jax.predict.features import ATTENTION_FEATURES as AF

        if "attn_decode" not in self.w:
            return op_times(t, p, xp)["attn_decode"]
        x = self._window_x(b, p, xp, k, x0)
        n = x[..., AF.index("d_num_seqs")]
        return xp.where(n > 0, _mlp(self.w["attn_decode"], x, xp), 0.0)

    # ---- the CostModel entry points (one pass, see _step)
    def iteration_time(self, batch: BatchSlots, p: CostParams, xp: Any):
        """Seconds of one iteration over ``batch`` (0 when it is empty)."""
        return self._step(batch, p, xp, 1)[0]

    def decode_window_times(self, batch: BatchSlots, p: CostParams, xp: Any, k: int):
        """Seconds of ``k`` successive iterations of a decode-only ``batch`` ([k]; entries
        past the first are meaningful for decode-only batches only, the only ones jumped)."""
        return self._step(batch, p, xp, k)[1]

    def step_times(self, batch: BatchSlots, p: CostParams, xp: Any, k: int):
        """(iteration_time, decode_window_times with entry 0 = the iteration time) in one
        pass: the totals, attention features and linear ops are computed once."""
        return self._step(batch, p, xp, k)

    def _step(self, batch: BatchSlots, p: CostParams, xp: Any, k: int):
        t = batch_totals(batch, xp)
        live = t.num_seqs > 0
        whole = ITERATION_OP in self.w
        x0 = self._attention_x(batch, p, xp) if whole or self.attn_ops else None
        if whole:
            w = self.w[ITERATION_OP]
            dur = xp.where(live, _mlp(w, x0, xp), 0.0)
        else:
            layer, extras = self.fixed_parts(t, p, xp)
            dur = xp.where(live, p.layers * (layer + self.attention(batch, t, p, xp, x0)) + extras,
                           0.0)
        first = xp.reshape(dur, (1,))
        if k <= 1:
            return dur, first
        # iterations 1..k-1 of a decode-only batch: only decode attention sees contexts grow
        if whole:
            rest = _mlp(w, self._window_x(batch, p, xp, k, x0)[1:], xp)
        else:
            att = self.decode_attention(batch, grow_decode(t, k, xp), p, xp, k, x0)[1:]
            rest = p.layers * (layer + att) + extras
        return dur, xp.concatenate([first, xp.where(live, rest, 0.0)])


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
    from frontier_jax.predict.train import load_predictor_set

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
        weights[op] = _prepare(w)
    block = int(card.get("attention_block_size") or DEFAULT_BLOCK_SIZE)
    sc = SurrogateCost(Path(path).name, weights, dict(devices[device]), block)
    return CostModel(sc.iteration_time, sc.decode_window_times, sc.step_times)


__all__ = ["SurrogateCost", "resolve_predictor_dir", "surrogate_cost"]
