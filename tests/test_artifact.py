"""Predictor-set checks: a missing, corrupt or incompatible set fails with one line naming the
file, the field and what is allowed, in the library and in `frontier-jax predictors eval`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from frontier_jax.cli import main
from frontier_jax.predict.artifact import check_predictor_set
from frontier_jax.predict.features import FEATURE_NAMES
from frontier_jax.predict.importers import DataError, save_profiles
from frontier_jax.predict.train import CARD_FORMAT, load_predictor_set, train_predictors

OP = "mlp_up_proj"


def tiny_native_frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A synthetic native linear-family profile (times in seconds)."""
    rng = np.random.default_rng(seed)
    m = rng.integers(1, 4096, n)
    return pd.DataFrame({
        "family": "linear", "op": OP, "m": m, "n": 4096, "k": 4096, "dtype_bytes": 2, "tp": 1,
        "device": "h100", "time_s": 1e-5 + m * 4096 * 4096 * 2 / 5e14,
        "config_key": [f"k{i}" for i in range(n)], "source": "syn.csv", "model": "x",
        "measurement_type": "CUDA_EVENT", "source_format": "native", "std_s": np.nan,
        "batch_kind": "dense", "is_gemm": True,
    })


def build_tiny_set(out: Path) -> Path:
    """Train a tiny predictor set (one linear operator, a 1-layer width-8 surrogate; ~5 s)."""
    train_predictors({"linear": tiny_native_frame()}, out_dir=out, save_forests=False,
                     surrogate_params=dict(steps=50, width=8, depth=1, batch_size=32),
                     forest_params=dict(n_estimators=5, min_samples_leaf=2),
                     augment=dict(copies=1, scaleup_copies=0))
    return out


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory) -> Path:
    return build_tiny_set(tmp_path_factory.mktemp("pset") / "set")


@pytest.fixture
def broken(tiny_set, tmp_path) -> Path:
    d = tmp_path / "set"
    shutil.copytree(tiny_set, d)
    return d


def _card(d: Path) -> dict:
    return json.loads((d / "card.json").read_text())


def _write_card(d: Path, card: dict) -> None:
    (d / "card.json").write_text(json.dumps(card))


def _edit_card(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def go(d: Path) -> None:
        card = _card(d)
        fn(card)
        _write_card(d, card)
    return go


def _edit_npz(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def go(d: Path) -> None:
        p = d / f"{OP}.npz"
        with np.load(p) as z:
            w = {k: z[k] for k in z.files}
        fn(w)
        np.savez(p, **w)
    return go


def _set(card: dict, path: tuple, value) -> None:
    for k in path[:-1]:
        card = card[k]
    card[path[-1]] = value


F = len(FEATURE_NAMES["linear"])
CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (corrupt the folder, file named in the message, fragment of the message)
    "card_missing": (lambda d: (d / "card.json").unlink(), "card.json", "<file>: missing"),
    "card_not_json": (lambda d: (d / "card.json").write_text("{not json"), "card.json", "not valid JSON"),
    "card_truncated": (lambda d: (d / "card.json").write_text((d / "card.json").read_text()[:100]),
                       "card.json", "not valid JSON"),
    "card_binary": (lambda d: (d / "card.json").write_bytes(b"\xff\xfe\x00garbage"), "card.json", "UTF-8"),
    "card_list": (lambda d: (d / "card.json").write_text("[1, 2]"), "card.json", "a JSON object"),
    "format_missing": (_edit_card(lambda c: c.pop("format")), "card.json", "format: missing"),
    "format_wrong": (_edit_card(lambda c: _set(c, ("format",), "frontier-jax-predictors/0")),
                     "card.json", "format: got 'frontier-jax-predictors/0'"),
    "models_missing": (_edit_card(lambda c: c.pop("models")), "card.json", "models: missing"),
    "model_family": (_edit_card(lambda c: _set(c, ("models", OP, "family"), "conv")),
                     "card.json", f"models.{OP}.family: got 'conv'"),
    "model_file_path": (_edit_card(lambda c: _set(c, ("models", OP, "file"), "../x.npz")),
                        "card.json", f"models.{OP}.file: got '../x.npz'"),
    "feature_renamed": (_edit_card(lambda c: _set(c, ("features", "linear", 2), "renamed")),
                        "card.json", "feature mismatch at feature 2: the card has 'renamed'"),
    "feature_dropped": (_edit_card(lambda c: c["features"]["linear"].pop()),
                        "card.json", f"feature mismatch at feature {F - 1}: the card lacks"),
    "feature_added": (_edit_card(lambda c: c["features"]["linear"].append("extra")),
                      "card.json", f"feature mismatch at feature {F}: the card has 'extra' more"),
    "split_seed": (_edit_card(lambda c: _set(c, ("split", "seed"), "zero")), "card.json", "split.seed"),
    "npz_missing": (lambda d: (d / f"{OP}.npz").unlink(), "card.json", f"models.{OP}.file: {OP}.npz is missing"),
    "npz_truncated": (lambda d: (d / f"{OP}.npz").write_bytes((d / f"{OP}.npz").read_bytes()[:200]),
                      f"{OP}.npz", "not a readable .npz"),
    "npz_garbage": (lambda d: (d / f"{OP}.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 50), f"{OP}.npz",
                    "not a readable .npz"),
    "npz_key_deleted": (_edit_npz(lambda w: w.pop("x_std")), f"{OP}.npz", "x_std: missing key"),
    "npz_bias_deleted": (_edit_npz(lambda w: w.pop("b1")), f"{OP}.npz", "b1: missing"),
    "w0_transposed": (_edit_npz(lambda w: w.__setitem__("W0", w["W0"].T.copy())), f"{OP}.npz",
                      f"W0: shape (8, {F}); allowed: ({F}, width): one row per feature"),
    "w0_extra_row": (_edit_npz(lambda w: w.__setitem__("W0", np.vstack([w["W0"], w["W0"][:1]]))),
                     f"{OP}.npz", f"W0: shape ({F + 1}, 8)"),
    "b0_wrong": (_edit_npz(lambda w: w.__setitem__("b0", w["b0"][:3])), f"{OP}.npz", "b0: shape (3,)"),
    "head_two_outputs": (_edit_npz(lambda w: (w.__setitem__("W1", np.hstack([w["W1"], w["W1"]])),
                                             w.__setitem__("b1", np.zeros(2, np.float32)))),
                         f"{OP}.npz", "a head with one output"),
    "x_mean_short": (_edit_npz(lambda w: w.__setitem__("x_mean", w["x_mean"][:-1])), f"{OP}.npz",
                     f"x_mean: shape ({F - 1},)"),
    "nan_weight": (_edit_npz(lambda w: w["W0"].__setitem__((0, 0), np.nan)), f"{OP}.npz",
                   "W0: 1 of"),
    "inf_scalar": (_edit_npz(lambda w: w.__setitem__("y_mean", np.float32(np.inf))), f"{OP}.npz",
                   "y_mean: 1 of 1 values are NaN or infinite"),
    "text_array": (_edit_npz(lambda w: w.__setitem__("z_lo", np.array(["a"] * F))), f"{OP}.npz",
                   "z_lo: dtype"),
    "train_keys_garbage": (lambda d: (d / "train_keys.npy").write_bytes(b"garbage"), "train_keys.npy",
                           "not a readable .npy"),
}


def test_valid_set_passes(tiny_set):
    card = check_predictor_set(tiny_set)
    assert card["format"] == CARD_FORMAT and OP in card["models"]
    ps = load_predictor_set(tiny_set)
    assert ps["weights"][OP]["W0"].shape == (F, 8)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupt_set_fails_with_one_line(broken, name):
    corrupt, file, fragment = CORRUPTIONS[name]
    corrupt(broken)
    with pytest.raises(DataError) as e:
        check_predictor_set(broken)
    msg = str(e.value)
    assert "\n" not in msg and "; allowed: " in msg, msg
    assert msg.startswith(str(broken / file) + ": "), msg
    assert fragment in msg, msg
    with pytest.raises(DataError):  # the simulator's loader gets the same check
        load_predictor_set(broken)


def test_missing_or_non_folder(tmp_path):
    with pytest.raises(DataError, match=r"nope: <folder>: no such folder; allowed: "):
        check_predictor_set(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match=r"f: <folder>: not a folder"):
        check_predictor_set(tmp_path / "f")


@pytest.fixture(scope="session")
def native_csv(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("prof") / "linear.csv"
    save_profiles(tiny_native_frame(20, seed=1), p)
    return p


def _eval(model: Path, data: Path, *extra: str):
    return CliRunner().invoke(main, [*extra, "predictors", "eval", "--model", str(model), "--data", str(data)])


def test_cli_eval_valid_set(tiny_set, native_csv):
    r = _eval(tiny_set, native_csv)
    assert r.exit_code == 0, r.output
    assert OP in r.output


@pytest.mark.parametrize("name", ["card_not_json", "format_wrong", "feature_renamed", "npz_missing",
                                  "npz_truncated", "w0_transposed", "nan_weight"])
def test_cli_eval_broken_set_one_line(broken, native_csv, name):
    CORRUPTIONS[name][0](broken)
    r = _eval(broken, native_csv)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + str(broken)), r.output
    assert CORRUPTIONS[name][2] in lines[0]
    r = _eval(broken, native_csv, "--debug")  # --debug shows the exception instead
    assert r.exit_code != 0 and isinstance(r.exception, DataError)


def test_cli_eval_broken_profile_one_line(tiny_set, tmp_path):
    p = tmp_path / "bad.csv"
    df = tiny_native_frame(5)
    df["time_s"] = df["time_s"].astype(object)
    df.loc[2, "time_s"] = "fast"
    df.to_csv(p, index=False)
    r = _eval(tiny_set, p)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert r.output.strip() == (f"error: {p}: column time_s: row 3: got 'fast' (not a number); allowed: "
                                "a time in seconds > 0 (empty: not measured, the row is dropped)")
