"""Operator runtime predictors.

* :mod:`.importers` - Vidur / Frontier / aiconfigurator / native profiles -> tidy frames (seconds)
* :mod:`.features` - features of tidy frames; the array builders live in
  :mod:`frontier_jax.cost.features` (numpy on the host, ``jax.numpy`` in the simulator)
* :mod:`.forest` - per-operator random forests and the Vidur-style proxy baseline (host only)
* :mod:`.surrogate` - MLP surrogates (flax nnx + optax); :func:`surrogate_apply` runs in ``jax.jit``
* :mod:`.artifact` - a predictor set on disk: checks and ``load_predictor_set`` (numpy only)
* :mod:`.train` - ``train_predictors`` / ``eval_predictors`` and the CLI

Names are imported on first use (PEP 562), so ``import frontier_jax.predict.artifact`` (what the
surrogate cost tier does) does not pull in pandas, scikit-learn, flax or optax.
"""

import importlib

_EXPORTS = {
    "DEVICES": "devices", "DeviceSpec": "devices", "canonical_device": "devices",
    "device_spec": "devices",
    "ATTENTION_FEATURES": "features", "COLLECTIVE_FEATURES": "features",
    "FEATURE_NAMES": "features", "GEMM_FEATURES": "features", "MOE_FEATURES": "features",
    "attention_features": "features", "collective_features": "features",
    "gemm_features": "features", "grouped_gemm_features": "features",
    "moe_features_from_stats": "features", "moe_load_stats": "features",
    "linear_op_shape": "importers", "load_file": "importers", "load_profiles": "importers",
    "save_profiles": "importers",
    "predict_np": "surrogate", "surrogate_apply": "surrogate",
    "load_predictor_set": "artifact",
    "eval_predictors": "train", "register_cli": "train", "train_predictors": "train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
