"""Random-forest operator predictors (host only, scikit-learn).

Two kinds per operator:

* the *feature forest*: a random forest on the distributional features of
  :mod:`frontier_jax.predict.features`, trained on ``log(time)`` or on
  ``log(time / roofline)`` (``target="log_ratio"``), the accuracy reference;
* the *proxy forest*: the Vidur-style baseline, the same learner on one representative
  length per batch (:func:`frontier_jax.predict.features.proxy_features`).

Forests are saved with joblib (compressed) next to the surrogate weights; they are the
teacher of the surrogate and are never needed inside the simulator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import joblib
import numpy as np
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

TARGETS = ("log_time", "log_ratio")
TINY_S = 1e-9  # floor of a roofline time before taking its log, seconds


def transform_features(X: np.ndarray) -> np.ndarray:
    """``log1p`` of non-negative features: the input scale every model of this package uses."""
    return np.log1p(np.maximum(np.asarray(X, dtype=np.float64), 0.0))


@dataclass
class ForestModel:
    """A fitted per-operator forest predicting seconds.

    Attributes:
        op: operator key; family: operator family; target: ``log_time`` or ``log_ratio``;
        ratio_index: column of the roofline feature used by ``log_ratio`` (else -1);
        feature_names: names of the input columns; estimator: the sklearn regressor.
    """

    op: str
    family: str
    target: str
    ratio_index: int
    feature_names: tuple[str, ...]
    estimator: object = field(repr=False)
    aggregate: str = "median"
    # a linear physics model the forest corrects (``ratio_bias + X @ ratio_coef``, seconds;
    # see frontier_jax.predict.train.physics_ratio); None: the ``target`` alone decides
    ratio_coef: np.ndarray | None = field(default=None, repr=False)
    ratio_bias: float = 0.0

    def offset(self, X: np.ndarray) -> np.ndarray:
        """Log-offset added to the regressor output (log physics, log roofline or 0)."""
        if self.ratio_coef is not None:
            return np.log(np.maximum(self.ratio_bias + X @ self.ratio_coef, TINY_S))
        if self.target == "log_ratio":
            return np.log(np.maximum(X[:, self.ratio_index], TINY_S))
        return np.zeros(len(X))

    def predict_log(self, X: np.ndarray) -> np.ndarray:
        """Predicted ``log(seconds)`` for raw features ``X`` ``[N, F]``."""
        X = np.asarray(X, dtype=np.float64)
        if len(X) == 0:
            return np.zeros(0)
        Z = transform_features(X)
        if self.aggregate == "median" and hasattr(self.estimator, "estimators_"):
            # median over trees: robust to the bimodal launch-overhead noise of CUDA-event
            # timings (the mean lands between the modes and matches neither)
            y = np.median(np.stack([t.predict(Z) for t in self.estimator.estimators_]), axis=0)
        else:
            y = self.estimator.predict(Z)
        return y + self.offset(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted time in seconds for raw features ``X`` ``[N, F]``."""
        return np.exp(self.predict_log(X))

    def save(self, path: str | os.PathLike) -> None:
        """Write the model with joblib (compressed)."""
        joblib.dump(self, path, compress=3)

    @staticmethod
    def load(path: str | os.PathLike) -> ForestModel:
        """Read a model written by :meth:`save`."""
        return joblib.load(path)


def make_estimator(kind: str = "extra", *, seed: int = 0, n_estimators: int = 200,
                   min_samples_leaf: int = 1, max_features: float | str | None = 1.0,
                   n_jobs: int = 1):
    """A scikit-learn forest regressor (``extra`` = ExtraTrees, ``rf`` = RandomForest)."""
    cls = ExtraTreesRegressor if kind == "extra" else RandomForestRegressor
    return cls(n_estimators=n_estimators, min_samples_leaf=min_samples_leaf,
               max_features=max_features, random_state=seed, n_jobs=n_jobs)


def fit_forest(op: str, family: str, X: np.ndarray, time_s: np.ndarray, *,
               feature_names: tuple[str, ...], target: str = "log_time", ratio_index: int = -1,
               kind: str = "extra", seed: int = 0, n_estimators: int = 200,
               min_samples_leaf: int = 1, max_features: float | str | None = 1.0,
               sample_weight: np.ndarray | None = None, aggregate: str = "median",
               n_jobs: int = 1, ratio_coef: np.ndarray | None = None,
               ratio_bias: float = 0.0) -> ForestModel:
    """Fit a forest on raw features ``X`` ``[N, F]`` and measured times (seconds).

    Given ``ratio_coef`` ``[F]`` (and ``ratio_bias``, seconds), the trees learn
    ``log(time / (ratio_bias + X @ ratio_coef))``, a correction to that linear physics,
    whatever ``target`` says.

    Returns:
        the fitted :class:`ForestModel` (predicts seconds).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if target == "log_ratio" and ratio_index < 0:
        raise ValueError("target='log_ratio' needs ratio_index (the roofline feature column)")
    X = np.asarray(X, dtype=np.float64)
    est = make_estimator(kind, seed=seed, n_estimators=n_estimators,
                         min_samples_leaf=min_samples_leaf, max_features=max_features, n_jobs=n_jobs)
    coef = None if ratio_coef is None else np.asarray(ratio_coef, dtype=np.float64)
    if coef is not None and (coef.shape != (X.shape[1],) or not np.all(np.isfinite(coef))
                             or (coef < 0).any() or not ratio_bias >= 0):
        raise ValueError(f"ratio_coef must be {X.shape[1]} finite values >= 0 and ratio_bias >= 0")
    model = ForestModel(op, family, target, ratio_index, tuple(feature_names), est, aggregate,
                        coef, float(ratio_bias))
    y = np.log(np.asarray(time_s, dtype=np.float64)) - model.offset(X)
    est.fit(transform_features(X), y, sample_weight=sample_weight)
    return model


def fit_proxy_forest(op: str, family: str, P: np.ndarray, time_s: np.ndarray, *,
                     feature_names: tuple[str, ...], **forest_kwargs) -> ForestModel:
    """Fit the Vidur-style baseline: the same learner as :func:`fit_forest` (same
    hyper-parameters, ``log_time`` target, as Vidur's own sklearn forests) on proxy features
    ``P`` ``[N, P]``, so that the comparison isolates the feature set."""
    forest_kwargs = {k: v for k, v in forest_kwargs.items() if k not in ("target", "ratio_index")}
    return fit_forest(op, family, P, time_s, feature_names=feature_names, target="log_time",
                      **forest_kwargs)
