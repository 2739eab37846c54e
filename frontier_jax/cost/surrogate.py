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
  activation and the two residual adds; two TP all-reduces;
* per iteration: ``layers`` x the layer, the LM head on the sampled rows, the embedding,
  pipeline sends and the host overhead ``cpu_s + cpu_per_seq_s * seqs``.

An operator the set does not cover keeps its roofline price (:func:`op_times`); MoE
expert layers stay on the roofline for now. Per-GPU attention heads follow the
importers (``max(heads / tp, 1)``).

The set is profiled on one device: its peak rates enter the features, so the
simulated hardware must be that device (checked when the model is built).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from frontier_jax.cost.batch import BatchSlots, BatchTotals, batch_totals
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
LM_HEAD_OP = "lm_head_linear"
DEFAULT_BLOCK_SIZE = 16  # KV page size assumed by the attention page-count features


def _mlp(weights: dict, x, xp):
    """Surrogate time (s) of raw features ``x`` ``[..., F]``, in ``xp``."""
    if xp is np:
        from frontier_jax.predict.surrogate import _apply_np

        return _apply_np(weights, np.asarray(x, np.float64))
    from frontier_jax.predict.surrogate import surrogate_apply

    return surrogate_apply(weights, x)


class SurrogateCost:
    """The pricing functions of one predictor set on one device (see module doc).

    ``weights``: ``{op: {name: float64 array}}``; ``device``: the card's device spec dict
    (``peak_flops_bf16``, ``peak_flops_fp8``, ``mem_bw``, ``num_sms``); ``block_size``:
    the KV page size of the attention training rows.
    """

    def __init__(self, name: str, weights: dict, device: dict, block_size: int):
        self.name = name
        self.w = weights
        self.dev = device
        self.block_size = float(block_size)
        self.elementwise = all(op in weights for op in ELEMENTWISE_OPS)

    def __repr__(self) -> str:
        return f"SurrogateCost({self.name!r}, ops={sorted(self.w)})"

    # ---- device numbers the features were trained with
    def _peak(self, p: CostParams, xp):
        return xp.where(p.dtype_bytes <= 1, self.dev["peak_flops_fp8"], self.dev["peak_flops_bf16"])

    def _gemm_s(self, op: str, m, n, k, p: CostParams, xp):
        from frontier_jax.predict.features import gemm_features

        x = gemm_features(m, n, k, xp, peak_flops=self._peak(p, xp), mem_bw=self.dev["mem_bw"],
                          num_sms=self.dev["num_sms"], dtype_bytes=p.dtype_bytes)
        return _mlp(self.w[op], x, xp)

    # ---- per-layer operators that do not depend on the context lengths
    def layer_fixed(self, t: BatchTotals, p: CostParams, xp):
        """Seconds per layer of everything but attention, for batch totals ``t``."""
        ops = op_times(t, p, xp)
        del ops["attn_prefill"], ops["attn_decode"]
        T, tp, hd, h = t.num_tokens, p.tp, p.head_dim, p.hidden
        dense = p.num_experts <= 0
        shapes = {
            "qkv_proj": (xp.floor((p.q_heads + 2.0 * p.kv_heads) * hd / tp), h),
            "o_proj": (h, xp.floor(p.q_heads * hd / tp)),
            "mlp_up": (xp.floor((1.0 + p.gated) * p.ffn / tp), h),
            "mlp_down": (h, xp.floor(p.ffn / tp)),
        }
        for rname, op in GEMM_OPS.items():
            if op in self.w:
                n, k = shapes[rname]
                ops[rname] = xp.where(dense, self._gemm_s(op, T, n, k, p, xp), ops[rname])
        if self.elementwise:
            widths = {
                "input_layernorm": h,
                "post_attention_layernorm": h,
                "add": h,
                "attn_rope": xp.floor((p.q_heads + p.kv_heads) * hd / tp),
                "mlp_act": xp.floor(p.ffn / tp),
            }
            elem = 0.0
            for op, times in ELEMENTWISE_OPS.items():
                elem = elem + times * self._gemm_s(op, T, widths[op], 1.0, p, xp)
            ops["elementwise"] = xp.where(dense, elem, ops["elementwise"])
        if ALLREDUCE_OP in self.w:
            from frontier_jax.predict.features import collective_features

            x = collective_features(T * h * p.dtype_bytes, tp, p.gpus_per_node, xp)
            ops["tp_allreduce"] = xp.where(tp > 1, 2.0 * _mlp(self.w[ALLREDUCE_OP], x, xp), 0.0)
        total = 0.0
        for name in sorted(ops):
            total = total + ops[name]
        return total

    def attention(self, b: BatchSlots, t: BatchTotals, p: CostParams, xp):
        """Seconds per layer of attention; ``b`` may carry leading axes (then ``t`` too)."""
        ops = op_times(t, p, xp)
        pre, dec = ops["attn_prefill"], ops["attn_decode"]
        if not any(op in self.w for op in ATTENTION_OPS):
            return pre + dec
        from frontier_jax.predict.features import ATTENTION_FEATURES, attention_features

        x = attention_features(
            b.q_tokens, b.ctx_tokens, b.mask, xp, is_decode=b.is_decode & b.mask,
            n_q_heads=xp.maximum(p.q_heads / p.tp, 1.0),
            n_kv_heads=xp.maximum(p.kv_heads / p.tp, 1.0), head_dim=p.head_dim,
            peak_flops=self._peak(p, xp), mem_bw=self.dev["mem_bw"], num_sms=self.dev["num_sms"],
            dtype_bytes=p.dtype_bytes, block_size=self.block_size)
        n_pre = x[..., ATTENTION_FEATURES.index("p_num_seqs")]
        n_dec = x[..., ATTENTION_FEATURES.index("d_num_seqs")]
        if "attn_prefill" in self.w:
            pre = xp.where(n_pre > 0, _mlp(self.w["attn_prefill"], x, xp), 0.0)
        if "attn_decode" in self.w:
            dec = xp.where(n_dec > 0, _mlp(self.w["attn_decode"], x, xp), 0.0)
        return pre + dec

    def extras(self, t: BatchTotals, p: CostParams, xp):
        """Seconds per iteration outside the layers: sends, LM head, embedding, host."""
        T, h, b = t.num_tokens, p.hidden, p.dtype_bytes
        pp_bw, pp_lat = _link(p.tp * p.pp, p, xp)
        sends = (p.pp - 1.0) * (pp_lat + T * h * b / pp_bw)
        if LM_HEAD_OP in self.w:
            s = t.num_sampled
            lm = xp.where(s > 0, self._gemm_s(LM_HEAD_OP, s, p.vocab, h, p, xp), 0.0)
        else:
            lm = _gemm(t.num_sampled, p.vocab / p.tp, h, p, xp)
        embed = T * h * b / (p.hbm_bw * p.mem_eff)
        host = p.cpu_s + p.cpu_per_seq_s * t.num_seqs
        return sends + lm + embed + host

    # ---- the CostModel entry points
    def iteration_time(self, batch: BatchSlots, p: CostParams, xp: Any):
        """Seconds of one iteration over ``batch`` (0 when it is empty)."""
        t = batch_totals(batch, xp)
        layer = self.layer_fixed(t, p, xp) + self.attention(batch, t, p, xp)
        return xp.where(t.num_seqs > 0, p.layers * layer + self.extras(t, p, xp), 0.0)

    def decode_window_times(self, batch: BatchSlots, p: CostParams, xp: Any, k: int):
        """Seconds of ``k`` successive iterations of a decode-only ``batch`` ([k]).

        Only attention sees the contexts grow; it is priced for all k at once.
        """
        t = batch_totals(batch, xp)
        j = xp.arange(k)
        tj = t._replace(decode_kv_tokens=t.decode_kv_tokens + j * t.decode_seqs)
        tj = BatchTotals(*[xp.broadcast_to(v, (k,)) for v in tj])
        grow = xp.where(batch.mask & batch.is_decode, 1, 0)
        bj = BatchSlots(
            q_tokens=xp.broadcast_to(batch.q_tokens, (k,) + batch.q_tokens.shape),
            ctx_tokens=batch.ctx_tokens[None, :] + j[:, None] * grow[None, :],
            is_decode=xp.broadcast_to(batch.is_decode, (k,) + batch.is_decode.shape),
            samples=xp.broadcast_to(batch.samples, (k,) + batch.samples.shape),
            mask=xp.broadcast_to(batch.mask, (k,) + batch.mask.shape),
        )
        layer = self.layer_fixed(t, p, xp) + self.attention(bj, tj, p, xp)
        total = p.layers * layer + self.extras(t, p, xp)
        return xp.where(t.num_seqs > 0, total, 0.0)


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
        weights[op] = {k: np.asarray(v, np.float64) for k, v in w.items()}
    block = int(card.get("attention_block_size") or DEFAULT_BLOCK_SIZE)
    sc = SurrogateCost(Path(path).name, weights, dict(devices[device]), block)
    return CostModel(sc.iteration_time, sc.decode_window_times)


__all__ = ["SurrogateCost", "resolve_predictor_dir", "surrogate_cost"]
