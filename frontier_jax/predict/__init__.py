"""Operator runtime predictors.

* :mod:`.importers` - Vidur / Frontier / aiconfigurator / native profiles -> tidy frames (seconds)
* :mod:`.features` - distributional features (numpy on the host, ``jax.numpy`` in the simulator)
* :mod:`.forest` - per-operator random forests and the Vidur-style proxy baseline (host only)
* :mod:`.surrogate` - MLP surrogates (flax nnx + optax); :func:`surrogate_apply` runs in ``jax.jit``
* :mod:`.train` - ``train_predictors`` / ``eval_predictors`` / ``load_predictor_set`` and the CLI
"""

from .devices import DEVICES, DeviceSpec, canonical_device, device_spec
from .features import (
    ATTENTION_FEATURES,
    COLLECTIVE_FEATURES,
    FEATURE_NAMES,
    GEMM_FEATURES,
    MOE_FEATURES,
    attention_features,
    collective_features,
    gemm_features,
    grouped_gemm_features,
    moe_features_from_stats,
    moe_load_stats,
)
from .importers import linear_op_shape, load_file, load_profiles, save_profiles
from .surrogate import predict_np, surrogate_apply
from .train import eval_predictors, load_predictor_set, register_cli, train_predictors

__all__ = [
    "ATTENTION_FEATURES", "COLLECTIVE_FEATURES", "DEVICES", "DeviceSpec", "FEATURE_NAMES",
    "GEMM_FEATURES", "MOE_FEATURES", "attention_features", "canonical_device",
    "collective_features", "device_spec", "eval_predictors", "gemm_features",
    "grouped_gemm_features", "linear_op_shape", "load_file", "load_predictor_set",
    "load_profiles", "moe_features_from_stats", "moe_load_stats", "predict_np",
    "register_cli", "save_profiles", "surrogate_apply", "train_predictors",
]
