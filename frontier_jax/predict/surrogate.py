"""MLP surrogates of the operator forests (flax nnx + optax for training, plain arrays at
inference).

A surrogate maps the raw feature vector of an operator (see
:mod:`frontier_jax.predict.features`) to its time in seconds:

``z = clip((log1p(max(x, 0)) - x_mean) / x_std, z_lo, z_hi)`` (the box of the training
inputs); ``z`` goes through ``depth`` dense layers with SiLU and a linear head; ``log t = head
* y_std + y_mean + log(max(ratio_bias + sum(ratio_select * x), 1e-9))``.
With ``target="log_ratio"`` ``ratio_select`` is one-hot on the roofline feature (or, given
``ratio_coef``, the coefficients of a linear model of the time, e.g. a whole engine step's
:func:`frontier_jax.predict.train.physics_ratio`), so the network predicts the log of time /
roofline; clipping the inputs to the training box holds the learnt efficiency at its edge
value outside the data, so the time extrapolates like the roofline (and a feature that was
constant in training, e.g. the device peak, only acts through the roofline).

Training distils the forest (its predictions on the training rows and on perturbed and
scaled-up copies of them), or, for a whole engine step, fits the measured times, each step
weighted by its time (``frontier_jax.predict.train.surrogate_teacher``, ``measured_weights``). The weights are a dict of
numpy arrays saved as ``<op>.npz``; :func:`surrogate_apply` is a pure function of
``(weights, x)`` usable inside ``jax.jit`` and ``jax.vmap``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from frontier_jax.cost import mlp
from frontier_jax.cost.mlp import TINY_S
from frontier_jax.predict.artifact import load_surrogate  # noqa: F401  (part of this module's API)


class _MLP(nnx.Module):
    def __init__(self, din: int, width: int, depth: int, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(din if i == 0 else width, width, rngs=rngs) for i in range(depth)])
        self.head = nnx.Linear(width, 1, rngs=rngs)

    def __call__(self, z):
        for layer in self.layers:
            z = nnx.silu(layer(z))
        return self.head(z)[..., 0]


def surrogate_apply(weights: dict, x):
    """Predicted time in **seconds** of an operator from raw features.

    Args:
        weights: dict of arrays (``x_mean, x_std, z_lo, z_hi, W0, b0, ..., Wn, bn, y_mean,
            y_std, ratio_select``) as returned by :func:`load_surrogate` or
            ``load_predictor_set(...)["weights"][op]``; numpy or jax arrays.
        x: ``[..., F]`` raw features (the builder's output for this operator's family).

    Returns:
        ``[...]`` seconds, the network run in ``x``'s float precision
        (:func:`frontier_jax.cost.mlp.forward`). Pure ``jax.numpy``: works under
        ``jax.jit``/``jax.vmap``.
    """
    x = jnp.asarray(x)
    dt = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    return mlp.forward(mlp.prepare_weights(weights, dt, jnp), x, jnp)


@dataclass
class SurrogateModel:
    """A trained surrogate: its weights (numpy arrays) and how it was trained."""

    op: str
    family: str
    target: str
    feature_names: tuple[str, ...]
    weights: dict = field(repr=False)
    info: dict = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Seconds for raw features ``X`` ``[N, F]`` (host evaluation in float64)."""
        return predict_np(self.weights, X)


def predict_np(weights: dict, X: np.ndarray) -> np.ndarray:
    """Host (numpy, float64) evaluation of a surrogate; same maths as :func:`surrogate_apply`."""
    X = np.asarray(X, dtype=np.float64)
    if len(X) == 0:
        return np.zeros(0)
    with np.errstate(over="ignore", invalid="ignore"):  # absurd weights: inf / NaN, reported by callers
        return mlp.forward(mlp.prepare_weights(weights, np.float64), X, np)


def fit_surrogate(op: str, family: str, X: np.ndarray, log_t: np.ndarray, *,
                  feature_names: tuple[str, ...], sample_weight: np.ndarray | None = None,
                  target: str = "log_ratio", ratio_index: int = -1, width: int = 128,
                  depth: int = 3, steps: int = 4000, batch_size: int = 512, lr: float = 3e-3,
                  weight_decay: float = 1e-6, seed: int = 0, ratio_coef: np.ndarray | None = None,
                  ratio_bias: float = 0.0) -> SurrogateModel:
    """Train an MLP surrogate on raw features ``X`` ``[N, F]`` and targets ``log_t``
    (natural log of seconds), with optional per-row weights (``steps`` of AdamW on random
    minibatches, warm-up + cosine learning rate).

    The ``log_ratio`` target divides by column ``ratio_index`` of ``X``, or, given
    ``ratio_coef`` ``[F]`` (non-negative), by the linear ratio ``ratio_bias + X @ ratio_coef``
    (seconds; stored as ``ratio_select`` and ``ratio_bias`` in float32, and the target is
    computed in float64 from those rounded values, as every evaluation computes it).

    Returns:
        a :class:`SurrogateModel` whose ``weights`` are float32 numpy arrays.
    """
    X = np.asarray(X, dtype=np.float64)
    log_t = np.asarray(log_t, dtype=np.float64)
    F = X.shape[1]
    sel = np.zeros(F)
    bias = np.float32(0.0)
    if target == "log_ratio":
        if ratio_coef is not None:
            sel = np.asarray(ratio_coef, np.float32).astype(np.float64)
            bias = np.float32(ratio_bias)
            if sel.shape != (F,) or not (np.all(np.isfinite(sel)) and np.all(sel >= 0)
                                         and np.isfinite(bias) and bias >= 0):
                raise ValueError(f"ratio_coef must be {F} finite values >= 0 and ratio_bias >= 0")
        elif ratio_index < 0:
            raise ValueError("target='log_ratio' needs ratio_index or ratio_coef")
        else:
            sel[ratio_index] = 1.0
    elif target != "log_time":
        raise ValueError(f"unknown surrogate target {target!r}")
    Z = np.log1p(np.maximum(X, 0.0))
    x_mean = Z.mean(0)
    x_std = Z.std(0)
    x_std = np.where(x_std > 1e-6, x_std, 1.0)
    ratio = mlp.ratio_column({"ratio_select": sel, "ratio_bias": np.float64(bias)}, X, np)
    y = log_t - np.where(sel.any() or bias > 0, np.log(np.maximum(ratio, TINY_S)), 0.0)
    y_mean, y_std = float(y.mean()), float(max(y.std(), 1e-6))
    Zs = ((Z - x_mean) / x_std).astype(np.float32)
    ys = ((y - y_mean) / y_std).astype(np.float32)
    w = np.ones(len(X), np.float32) if sample_weight is None else np.asarray(sample_weight, np.float32)
    w = w / w.mean()

    model = _MLP(F, width, depth, nnx.Rngs(seed))
    graphdef, params = nnx.split(model, nnx.Param)
    sched = optax.warmup_cosine_decay_schedule(0.0, lr, min(200, steps // 10), steps, lr * 0.01)
    tx = optax.adamw(sched, weight_decay=weight_decay)
    opt_state = tx.init(params)
    Zj, yj, wj = jnp.asarray(Zs), jnp.asarray(ys), jnp.asarray(w)
    n = len(Zs)
    bs = min(batch_size, n)

    def loss_fn(p, idx):
        m = nnx.merge(graphdef, p)
        pred = m(Zj[idx])
        return jnp.sum(wj[idx] * (pred - yj[idx]) ** 2) / jnp.sum(wj[idx])

    @jax.jit
    def run(p, s, key):
        def body(i, carry):
            p, s, key = carry
            key, sub = jax.random.split(key)
            idx = jax.random.randint(sub, (bs,), 0, n)
            g = jax.grad(loss_fn)(p, idx)
            upd, s = tx.update(g, s, p)
            return optax.apply_updates(p, upd), s, key
        return jax.lax.fori_loop(0, steps, body, (p, s, key))

    params, opt_state, _ = run(params, opt_state, jax.random.PRNGKey(seed))
    model = nnx.merge(graphdef, params)
    weights: dict[str, np.ndarray] = {"x_mean": x_mean.astype(np.float32), "x_std": x_std.astype(np.float32),
                                      "z_lo": Zs.min(0).astype(np.float32), "z_hi": Zs.max(0).astype(np.float32)}
    layers = list(model.layers) + [model.head]
    for i, layer in enumerate(layers):
        weights[f"W{i}"] = np.asarray(layer.kernel[...], dtype=np.float32)
        weights[f"b{i}"] = np.asarray(layer.bias[...], dtype=np.float32)
    weights["y_mean"] = np.asarray(y_mean, dtype=np.float32)
    weights["y_std"] = np.asarray(y_std, dtype=np.float32)
    weights["ratio_select"] = sel.astype(np.float32)
    linear = target == "log_ratio" and ratio_coef is not None
    if linear:
        weights["ratio_bias"] = np.asarray(bias, dtype=np.float32)
    info = {"width": width, "depth": depth, "steps": steps, "batch_size": bs, "lr": lr,
            "train_points": int(n), "activation": "silu", "target": target,
            "ratio_feature": feature_names[ratio_index] if ratio_index >= 0 and not linear else None}
    if linear:
        info["linear_ratio"] = {"bias_s": float(bias), "coefficients": {
            feature_names[i]: float(sel[i]) for i in np.nonzero(sel)[0]}}
    return SurrogateModel(op, family, target, tuple(feature_names), weights, info)


def save_surrogate(model: SurrogateModel, path: str | os.PathLike) -> None:
    """Write the weights as a plain ``.npz`` of float32 arrays."""
    np.savez(path, **model.weights)
