"""benchmarks/vllm_cpu/compare.py's calibration rows: the profile's probes (warm-up probes and
the decode steps right after a prefill dropped) plus the served steps of calibration replays
(every step kept, at most as many as the profile has rows). No vLLM needed."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks" / "vllm_cpu"))
import compare as C  # noqa: E402


def _step(probe: str, step: int, kind: str, b: int = 1) -> dict:
    dec = kind == "decode"
    return {"probe": probe, "step": step, "kind": kind, "time_s": 0.01,
            "q": json.dumps([1 if dec else 64] * b), "context": json.dumps([100] * b),
            "is_decode": json.dumps([int(dec)] * b), "samples": json.dumps([1] * b),
            "block_size": 128}


def _profile() -> pd.DataFrame:
    rows = [_step("warmup decode", 0, "decode"), _step("", 0, "decode")]
    rows += [_step("decode 4@100", 0, "prefill", 4)]
    rows += [_step("decode 4@100", i, "decode", 4) for i in range(1, 11)]
    df = pd.DataFrame(rows)
    df.loc[1, "probe"] = np.nan  # a step outside any probe: "" in the CSV, NaN once read
    return df


def _served_run(tmp_path, name: str, n: int):
    run = tmp_path / "cal" / name
    run.mkdir(parents=True)
    (run / "meta.json").write_text(json.dumps({"run": name, "engine": {"block_size": 16}}))
    kinds = ["prefill"] + ["decode"] * (n - 1)
    it = pd.DataFrame([_step("", i, k) for i, k in enumerate(kinds)]).drop(
        columns=["probe", "block_size"])
    it.to_parquet(run / "iterations.parquet")
    return run


def test_profile_rows_drop_warmup_and_the_transient_after_a_prefill():
    rows = C.profile_rows(_profile(), drop_transient=4)
    assert not rows["probe"].str.startswith("warmup").any()
    # the step outside any probe (kept), the prefill step and the decode steps from the 5th on
    assert rows["probe"].isna().sum() == 1
    assert rows["step"].tolist() == [0, 0, 5, 6, 7, 8, 9, 10]


def test_served_steps_join_the_profile_all_kept_and_capped(tmp_path):
    _served_run(tmp_path, "rate1_r0", 30)
    prof = _profile()
    rows = C.calibration_frame(prof, [tmp_path / "cal"])
    served = rows[rows["probe"].fillna("").str.startswith(C.SERVED)]
    assert len(served) == len(prof)  # capped at the profile's row count, spread over the run
    assert served["step"].iloc[0] == 0 and served["step"].iloc[-1] == 29
    assert (served["block_size"] == 16).all()  # the run's engine, from its meta.json
    kept = C.profile_rows(rows, drop_transient=4)
    # every served step survives, decode steps right after its prefill included
    assert (kept["probe"].fillna("").str.startswith(C.SERVED)).sum() == len(served)
    assert C.calibration_frame(prof, []) is prof


def test_served_rows_without_runs_say_so(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no replay runs"):
        C.calibration_frame(_profile(), [tmp_path / "empty"])


def test_native_rows_from_served_steps(tmp_path):
    """Served steps become training rows of the whole-step model like profiled ones."""
    _served_run(tmp_path, "rate1_r0", 5)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"num_attention_heads": 8, "hidden_size": 512,
                               "num_key_value_heads": 2}))
    rows = C.calibration_frame(_profile(), [tmp_path / "cal"])
    nat = C.profile_to_native(rows, cfg, drop_transient=4)
    assert len(nat) == 8 + 5 and set(nat["op"]) == {"iteration"}
    assert np.all(nat["time_s"] > 0)
