"""A predictor set on disk: its format, its checks and its loading (no training stack).

:func:`check_predictor_set` reads ``card.json`` and every surrogate ``.npz`` the card lists and
raises :class:`~frontier_jax.predict.errors.DataError` (a ``ValueError``) with one line,
``<file>: <field>: <problem>; allowed: <what is allowed>``, for:

- a missing folder, or a path that is not a folder;
- a missing, unreadable or unparseable ``card.json``, or one that is not a JSON object;
- a missing or wrong ``format`` (:data:`CARD_FORMAT`);
- missing or malformed ``models`` / ``features`` / ``split`` entries, an operator whose
  ``family`` is unknown;
- a feature list that differs from the current code's
  :data:`frontier_jax.predict.features.FEATURE_NAMES` ("feature mismatch", naming the first
  differing feature): the set was trained with another feature builder and would be fed the
  wrong inputs;
- a model file listed in the card that is missing or is not a readable ``.npz``;
- an ``.npz`` with a missing key (``x_mean x_std z_lo z_hi W0 b0 ... y_mean y_std
  ratio_select``), arrays of the wrong shape (``W0`` must have one row per feature of the
  operator's family; each layer must feed the next; the head has one output), non-numeric
  arrays, non-finite weights, a negative ``ratio_select`` entry (one-hot on a roofline
  feature, or the non-negative coefficients of a linear ratio) or an optional
  ``ratio_bias`` that is not a non-negative scalar;
- a ``train_keys.npy`` that is not a 1-D integer array.

:func:`load_predictor_set` calls it first, so both the CLI and the simulator (the surrogate
cost tier) get the check. Loading imports numpy only: no pandas, flax, optax or scikit-learn.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from frontier_jax.cost.features import FEATURE_NAMES

from .errors import DataError, _show

CARD_FORMAT = "frontier-jax-predictors/1"  # the card's format tag this version reads and writes
# Largest card.json read (bytes).
MAX_CARD_BYTES = 64 * 2**20
_VECTORS = ("x_mean", "x_std", "z_lo", "z_hi", "ratio_select")
_SCALARS = ("y_mean", "y_std")
_TRAIN = "(write or rewrite the set with `frontier-jax predictors train`)"


def _read_card(path: Path) -> dict:
    file = str(path)
    if not path.exists():
        raise DataError(file, "<file>", "missing", "a card.json in the predictor-set folder " + _TRAIN)
    if not path.is_file():
        raise DataError(file, "<file>", "not a regular file", "a card.json file " + _TRAIN)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CARD_BYTES + 1)
    except OSError as e:
        raise DataError(file, "<file>", f"unreadable ({e.strerror or type(e).__name__})", "a readable card.json") from None
    if len(data) > MAX_CARD_BYTES:
        raise DataError(file, "<file>", f"over {MAX_CARD_BYTES} bytes", f"a card.json of at most {MAX_CARD_BYTES >> 20} MiB")
    try:
        card = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise DataError(file, "<file>", f"not UTF-8 text (byte {e.start})", "a UTF-8 JSON card") from None
    except json.JSONDecodeError as e:
        raise DataError(file, "<file>", f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})",
                        "a JSON object written by `frontier-jax predictors train`") from None
    except (ValueError, RecursionError) as e:  # nesting too deep, integers too long
        raise DataError(file, "<file>", f"not valid JSON ({type(e).__name__})",
                        "a JSON object written by `frontier-jax predictors train`") from None
    if not isinstance(card, dict):
        raise DataError(file, "<file>", f"got a JSON {type(card).__name__}", "a JSON object (the card)")
    return card


def _check_features(file: str, family: str, names) -> None:
    want = list(FEATURE_NAMES[family])
    field = f"features.{family}"
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(file, field, f"got {_show(names)}", "a list of feature names")
    if names == want:
        return
    for i, (a, b) in enumerate(zip(names, want, strict=False)):
        if a != b:
            raise DataError(file, field, f"feature mismatch at feature {i}: the card has {a!r}, this code has {b!r}",
                            f"the {len(want)} features of FEATURE_NAMES[{family!r}] in frontier_jax/cost/features.py; "
                            + _TRAIN)
    i = min(len(names), len(want))
    extra = f"the card has {names[i]!r} more" if len(names) > len(want) else f"the card lacks {want[i]!r}"
    raise DataError(file, field, f"feature mismatch at feature {i}: {extra} ({len(names)} vs {len(want)} features)",
                    f"the {len(want)} features of FEATURE_NAMES[{family!r}] in frontier_jax/cost/features.py; "
                    + _TRAIN)


def _load_npz(path: Path, card_file: str, op: str) -> dict[str, np.ndarray]:
    file = str(path)
    if not path.is_file():
        raise DataError(card_file, f"models.{op}.file", f"{path.name} is missing from {path.parent}",
                        "every model file the card lists present beside card.json " + _TRAIN)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001  (numpy/zipfile raise many types on corrupt files)
        first = (str(e).strip().splitlines() or [""])[0]
        raise DataError(file, "<file>", f"not a readable .npz ({type(e).__name__}: {first[:120]})",
                        "a .npz of float arrays written by save_surrogate " + _TRAIN) from None


def check_weights(weights: dict, n_features: int, file: str, family: str) -> None:
    """Raise one-line DataError unless ``weights`` is a well-formed surrogate for
    ``n_features`` inputs (see the module docstring)."""
    fam = f"{n_features} features of family {family}"
    n_layers = 0
    while f"W{n_layers}" in weights:
        n_layers += 1
    for k in (*_VECTORS, *_SCALARS, "W0", "b0"):
        if k not in weights:
            raise DataError(file, k, "missing key (have " + ", ".join(sorted(weights)[:16]) + ")",
                            "the keys x_mean x_std z_lo z_hi W0 b0 ... Wn bn y_mean y_std ratio_select")
    extra = [k for k in weights if k.startswith(("W", "b")) and k not in
             {f"W{i}" for i in range(n_layers)} | {f"b{i}" for i in range(n_layers)}]
    if extra:
        raise DataError(file, sorted(extra)[0], f"unexpected key beside W0..W{n_layers - 1}",
                        "consecutive layers W0, b0 ... Wn, bn")
    for k, v in weights.items():
        if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
            raise DataError(file, k, f"dtype {v.dtype}", "float arrays")
    for k in _VECTORS:
        if weights[k].shape != (n_features,):
            raise DataError(file, k, f"shape {weights[k].shape}", f"({n_features},): one entry per feature ({fam})")
    for k in _SCALARS:
        if weights[k].size != 1:
            raise DataError(file, k, f"shape {weights[k].shape}", "a scalar")
    rows = n_features
    for i in range(n_layers):
        W, b = weights[f"W{i}"], weights.get(f"b{i}")
        if b is None:
            raise DataError(file, f"b{i}", "missing key", f"a bias b{i} for every weight matrix W{i}")
        if W.ndim != 2 or W.shape[0] != rows:
            want = f"({rows}, width): one row per feature ({fam})" if i == 0 else f"({rows}, width): W{i - 1} has {rows} outputs"
            raise DataError(file, f"W{i}", f"shape {W.shape}", want)
        if b.shape != (W.shape[1],):
            raise DataError(file, f"b{i}", f"shape {b.shape}", f"({W.shape[1]},): one bias per output of W{i}")
        rows = W.shape[1]
    if rows != 1:
        raise DataError(file, f"W{n_layers - 1}", f"shape {weights[f'W{n_layers - 1}'].shape}",
                        "a head with one output: (width, 1)")
    for k, v in weights.items():
        bad = ~np.isfinite(v.astype(np.float64))
        if bad.any():
            raise DataError(file, k, f"{int(bad.sum())} of {v.size} values are NaN or infinite",
                            "finite weights " + _TRAIN)
    sel = np.asarray(weights["ratio_select"], np.float64)
    if np.any(sel < 0):
        raise DataError(file, "ratio_select", f"got {_show(sel.tolist())}",
                        "non-negative: one-hot (a single 1, the ratio feature), the coefficients "
                        "of a linear ratio, or all zero")
    if "ratio_bias" in weights:
        bias = np.asarray(weights["ratio_bias"], np.float64)
        if bias.ndim != 0 or not float(bias) >= 0:
            raise DataError(file, "ratio_bias", f"got {_show(bias.tolist())}",
                            "a scalar >= 0 (seconds: the constant of a linear ratio)")
    if not (weights["x_std"] > 0).all():
        raise DataError(file, "x_std", f"got {_show(float(weights['x_std'].min()))}", "scales > 0")
    y_std = float(np.asarray(weights["y_std"]).reshape(-1)[0])
    if not y_std > 0:
        raise DataError(file, "y_std", f"got {_show(y_std)}", "a scale > 0")


def check_predictor_set(path: str | os.PathLike) -> dict:
    """Check the predictor set in folder ``path`` (card, feature lists, every model file);
    returns the card (dict). Raises DataError (one line) for any problem listed in the module
    docstring."""
    d = Path(path)
    if not d.exists():
        raise DataError(str(d), "<folder>", "no such folder", "a predictor-set folder " + _TRAIN)
    if not d.is_dir():
        raise DataError(str(d), "<folder>", "not a folder", "a predictor-set folder holding card.json " + _TRAIN)
    card_path = d / "card.json"
    card = _read_card(card_path)
    cf = str(card_path)
    want = CARD_FORMAT
    if "format" not in card:
        raise DataError(cf, "format", "missing", f"{want!r} " + _TRAIN)
    if card["format"] != want:
        raise DataError(cf, "format", f"got {_show(card['format'])}", f"{want!r} (this version of frontier-jax) " + _TRAIN)
    for key in ("models", "features"):
        if not isinstance(card.get(key), dict):
            raise DataError(cf, key, "missing" if key not in card else f"got {_show(card[key])}",
                            "a JSON object " + _TRAIN)
    if "devices" in card and not isinstance(card["devices"], dict):
        raise DataError(cf, "devices", f"got {_show(card['devices'])}", "a JSON object")
    split = card.get("split")
    if not isinstance(split, dict):
        raise DataError(cf, "split", "missing" if split is None else f"got {_show(split)}",
                        "a JSON object with seed and test_fraction")
    seed, frac = split.get("seed"), split.get("test_fraction")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise DataError(cf, "split.seed", f"got {_show(seed)}", "an integer 0..2**63-1")
    if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0.0 <= frac <= 1.0:
        raise DataError(cf, "split.test_fraction", f"got {_show(frac)}", "a number 0..1")
    for family, names in card["features"].items():
        if family not in FEATURE_NAMES:
            raise DataError(cf, f"features.{family}", "unknown family", "one of " + ", ".join(FEATURE_NAMES))
        _check_features(cf, family, names)
    for op, info in card["models"].items():
        field = f"models.{op}"
        if not isinstance(info, dict):
            raise DataError(cf, field, f"got {_show(info)}", "a JSON object with family and file")
        family = info.get("family")
        if not isinstance(family, str) or family not in FEATURE_NAMES:  # a list is unhashable
            raise DataError(cf, f"{field}.family", f"got {_show(family)}", "one of " + ", ".join(FEATURE_NAMES))
        if family not in card["features"]:
            raise DataError(cf, f"features.{family}", f"missing (operator {op} needs it)",
                            f"the feature list of family {family}")
        fname = info.get("file")
        if not isinstance(fname, str) or not fname or fname != Path(fname).name or fname in (".", ".."):
            raise DataError(cf, f"{field}.file", f"got {_show(fname)}", "a file name inside the predictor-set folder")
        weights = _load_npz(d / fname, cf, op)
        check_weights(weights, len(FEATURE_NAMES[family]), str(d / fname), family)
        rf = info.get("ratio_feature")
        if rf is not None and (not isinstance(rf, str) or rf not in FEATURE_NAMES[family]):
            raise DataError(cf, f"{field}.ratio_feature", f"got {_show(rf)}",
                            f"one of the features of family {family}")
    keys = d / "train_keys.npy"
    if keys.exists():
        try:
            k = np.load(keys, allow_pickle=False)
        except Exception as e:  # noqa: BLE001  (a corrupt header raises tokenize.TokenError, ...)
            first = (str(e).strip().splitlines() or [""])[0]
            raise DataError(str(keys), "<file>", f"not a readable .npy ({type(e).__name__}: {first[:120]})",
                            "a 1-D uint32 array of training-configuration hashes " + _TRAIN) from None
        if k.ndim != 1 or not np.issubdtype(k.dtype, np.integer):
            raise DataError(str(keys), "<file>", f"shape {k.shape} dtype {k.dtype}",
                            "a 1-D uint32 array of training-configuration hashes")
    return card


def load_surrogate(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read ``.npz`` surrogate weights into a dict of numpy arrays."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def load_predictor_set(model_dir: str | os.PathLike, *, as_jax: bool = False) -> dict:
    """Load a predictor set for the simulator.

    Returns:
        ``{"card": dict, "weights": {op: {name: array}}, "features": {family: [names]},
        "devices": {name: spec dict}}``; arrays are numpy (``as_jax=True``: jax arrays).
        Evaluate an operator with ``surrogate_apply(weights[op], x)`` where ``x`` comes from
        the builder of ``card["models"][op]["family"]``.
    """
    d = Path(model_dir)
    card = check_predictor_set(d)  # one-line DataError for a missing/broken/incompatible set
    weights = {}
    for op, info in card["models"].items():
        w = load_surrogate(d / info["file"])
        if as_jax:
            import jax.numpy as jnp

            w = {k: jnp.asarray(v) for k, v in w.items()}
        weights[op] = w
    return {"card": card, "weights": weights, "features": card.get("features", {}),
            "devices": card.get("devices", {})}
