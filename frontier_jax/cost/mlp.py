"""The MLP surrogate's forward pass, written once for numpy and jax.numpy.

A surrogate (trained by :func:`frontier_jax.predict.surrogate.fit_surrogate`) maps the raw
features ``x`` of an operator to its time in seconds::

    z = clip((log1p(max(x, 0)) - x_mean) / x_std, z_lo, z_hi)
    h = SiLU(... SiLU(z W0 + b0) ...) Wn + bn                (the network, in ``dtype``)
    log t = h * y_std + y_mean + log(max(ratio, TINY_S))     (float64; ratio term if any)
    ratio = ratio_bias + sum(ratio_select * x)

``ratio_select`` is one-hot on a roofline feature for an operator (time / roofline), or the
non-negative coefficients of a linear model of the time, with ``ratio_bias`` its constant
(seconds; 0 when absent), for a whole engine step (see
:func:`frontier_jax.predict.train.physics_ratio`).

Every caller goes through these functions: the surrogate cost tier inside the compiled step
(float32 network, the weights' own precision: float64 transcendentals would dominate the
step), :func:`frontier_jax.predict.surrogate.surrogate_apply` under ``jit``/``vmap`` and the
host evaluation :func:`frontier_jax.predict.surrogate.predict_np` (float64). The pieces
(:func:`log_inputs`, :func:`first_layer`, :func:`finish`) are public so that a caller can
share a first layer between rows that differ in a few columns (the cost tier's decode
anchors).

``spec`` is the einsum of one dense layer: ``"...f,fw->...w"`` for one network over any
leading axes, ``"of,ofw->ow"`` for O networks stacked along a leading axis
(:func:`stack_weights`), row o through network o.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TINY_S = 1e-9  # floor of the ratio feature before its log (seconds)
ONE = "...f,fw->...w"  # one network
STACKED = "of,ofw->ow"  # O stacked networks, one row each


def prepare_weights(w: dict, dtype: Any = np.float32, xp: Any = np) -> dict:
    """``w`` (``x_mean x_std z_lo z_hi W0 b0 ... Wn bn y_mean y_std ratio_select``, optional
    ``ratio_bias``) as ``xp`` arrays of ``dtype``, plus ``ratio_bias`` (0 when absent) and
    ``has_ratio`` (the network predicts time / its ratio). With numpy, raises ValueError
    unless ``ratio_select`` and ``ratio_bias`` are finite and non-negative (``jax.numpy``
    accepts traced weights and checks nothing)."""
    out = {k: xp.asarray(v, dtype) for k, v in w.items() if k != "has_ratio"}
    sel = xp.asarray(w["ratio_select"])
    bias = xp.asarray(w.get("ratio_bias", xp.zeros(sel.shape[:-1])))
    if xp is np:
        vals = np.concatenate([np.ravel(sel), np.ravel(bias)]).astype(np.float64)
        if not np.all(np.isfinite(vals) & (vals >= 0)):
            raise ValueError("ratio_select and ratio_bias must be finite and non-negative")
    out["ratio_bias"] = xp.asarray(bias, dtype)
    out["has_ratio"] = (xp.sum(sel, axis=-1) > 0) | (bias > 0)
    return out


def stack_weights(ws: list[dict]) -> dict | None:
    """Prepared networks of one architecture stacked along a new leading axis (the
    ``STACKED`` spec); None when their shapes differ."""
    keys = sorted(ws[0])
    if any(sorted(w) != keys or any(np.shape(w[k]) != np.shape(ws[0][k]) for k in keys) for w in ws):
        return None
    return {k: np.stack([np.asarray(w[k]) for w in ws]) for k in keys}


def log_inputs(x, xp, dtype: Any = None):
    """The networks' input transform ``log1p(max(x, 0))``, in ``dtype`` (float32 default)."""
    dtype = xp.float32 if dtype is None else dtype
    return xp.log1p(xp.maximum(x, 0.0).astype(dtype))


def normalize(w: dict, logs, xp, cols=None):
    """Standardised, clipped inputs ``z`` of log-features ``logs`` (``cols``: only those
    columns of the network's inputs)."""
    g = (lambda k: w[k]) if cols is None else (lambda k: w[k][..., cols])
    return xp.clip((logs - g("x_mean")) / g("x_std"), g("z_lo"), g("z_hi"))


def first_layer(w: dict, logs, xp, spec: str = ONE):
    """First dense layer (before its activation) on log-features ``logs``."""
    return xp.einsum(spec, normalize(w, logs, xp), w["W0"]) + w["b0"]


def ratio_column(w: dict, x, xp):
    """The network's ratio at raw features ``x``: ``ratio_bias + sum(ratio_select * x)``
    ([...], float64; 0 if none). Columns outside the ratio add exact zeros, so a one-hot
    ratio is its column's value."""
    x = xp.asarray(x, dtype=xp.float64)
    sel = xp.asarray(w["ratio_select"]).astype(xp.float64)
    return w["ratio_bias"].astype(xp.float64) + xp.sum(xp.where(sel > 0, x * sel, 0.0), axis=-1)


def finish(w: dict, h, ratio, xp, spec: str = ONE):
    """Seconds from the first layer's output ``h``: the remaining layers (SiLU between
    them, in ``h``'s precision), the head's de-standardisation and, for a ratio network,
    the log of its ``ratio`` column (float64)."""
    n_layers = sum(1 for k in w if k.startswith("W"))
    for i in range(1, n_layers):
        one = xp.asarray(1.0, dtype=h.dtype)
        h = h / (one + xp.exp(xp.minimum(-h, xp.asarray(60.0, dtype=h.dtype))))  # SiLU, no overflow
        h = xp.einsum(spec, h, w[f"W{i}"]) + w[f"b{i}"]
    y = (h[..., 0] * w["y_std"] + w["y_mean"]).astype(xp.float64)
    y = y + xp.where(w["has_ratio"], xp.log(xp.maximum(ratio, TINY_S)), 0.0)
    return xp.exp(y)


def forward(w: dict, x, xp, spec: str = ONE):
    """Seconds predicted by prepared network(s) ``w`` (:func:`prepare_weights`) for raw
    features ``x`` ``[..., F]``; the network runs in the precision of ``w``'s weights."""
    logs = log_inputs(x, xp, w["W0"].dtype)
    return finish(w, first_layer(w, logs, xp, spec), ratio_column(w, x, xp), xp, spec)


__all__ = ["ONE", "STACKED", "TINY_S", "finish", "first_layer", "forward", "log_inputs",
           "normalize", "prepare_weights", "ratio_column", "stack_weights"]
