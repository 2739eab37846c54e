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


# -- the engine's own ceiling: repeats against each other, and its speed from run to run ----------


def test_repeat_spread_is_the_worst_repeat_against_the_others():
    assert C.repeat_spread([1.0]) is None
    assert C.repeat_spread([2.0, 2.0, 2.0]) == 0.0
    # 1.3 against the mean of 1.0 and 1.0: 30%; 1.0 against (1.0 + 1.3) / 2: 13%
    assert C.repeat_spread([1.0, 1.0, 1.3]) == pytest.approx(0.3)


def _result(variant, rate, repeat, thr, ttft, tpot):
    keys = [k for _, k, _, _ in C.ROWS]
    m = dict.fromkeys(keys, 1.0) | {"throughput_rps": thr, "ttft_mean_s": ttft, "tpot_mean_s": tpot}
    s = dict.fromkeys(keys, 1.0) | {"throughput_rps": 1.0, "ttft_mean_s": 1.0, "tpot_mean_s": 1.0}
    return {"variant": variant, "rate": rate, "repeat": repeat, "measured": m, "simulated": s,
            "per_iteration_cost_error": {"n": 0}, "loadavg_before": None}


def test_targets_are_counted_for_the_simulation_and_for_the_repeats():
    # TTFT repeats 0.8 / 1.0 / 1.2 (1.2 is 33% above the others' mean, beyond 10%); the
    # simulation's 1.0 is on their mean. TPOT repeats agree; the simulation is 30% short.
    res = [_result("v", 1.0, i, 1.0, ttft, 1.0 / 0.7) for i, ttft in enumerate((0.8, 1.0, 1.2))]
    agg = C.aggregate(res)
    row = agg["v"]["1"]
    assert row["ttft_mean_s"]["target"] == 0.10
    assert row["ttft_mean_s"]["repeat_spread"] == pytest.approx(1.2 / 0.9 - 1)
    assert row["tpot_mean_s"]["repeat_spread"] == 0.0
    assert "target" not in row["ttft_p50_s"]  # not one of item 5's metrics
    s = C.target_summary(agg)["v"]
    assert s["cells"] == len(C.TARGETS)
    # met: throughput, TTFT (mean on the measured mean) and both p90s; missed: TPOT mean
    assert s["met"] == len(C.TARGETS) - 1
    # the repeats: within in all but TTFT mean
    assert s["repeats_within"] == len(C.TARGETS) - 1 and s["repeat_cells"] == len(C.TARGETS)
    one = C.target_summary(C.aggregate(res[:1]))["v"]  # one run: nothing to compare it with
    assert one["repeat_cells"] == 0 and one["repeats_within"] == 0


def _decode_steps(times_by_shape: dict) -> pd.DataFrame:
    rows = []
    for (n, ctx), ts in times_by_shape.items():
        for t in ts:
            rows.append({"q": json.dumps([1] * n), "context": json.dumps([ctx] * n),
                         "is_decode": json.dumps([1] * n), "time_s": t})
    # a prefill step never counts
    rows.append({"q": json.dumps([64]), "context": json.dumps([0]), "is_decode": json.dumps([0]),
                 "time_s": 9.0})
    return pd.DataFrame(rows)


def test_decode_drift_compares_runs_on_batches_of_one_shape():
    fast = _decode_steps({(1, 500): [0.010] * 6, (4, 1000): [0.020] * 6})
    slow = _decode_steps({(1, 500): [0.011] * 6, (4, 1000): [0.022] * 6, (8, 1000): [0.05] * 6})
    mid = _decode_steps({(1, 500): [0.0105] * 6, (4, 1000): [0.021] * 6})
    d = C.decode_drift({"fast": fast, "slow": slow, "mid": mid})
    assert d["mid"] == pytest.approx(1.0)
    assert d["slow"] == pytest.approx(1.1 / 1.05)
    assert d["fast"] == pytest.approx(1.0 / 1.05)
    # the 8-sequence shape is in one run only: it does not count (else "slow" would be 1.0 there)
    only = C.decode_drift({"a": _decode_steps({(8, 1000): [0.05] * 6}), "b": fast})
    assert only == {}
    # a run with fewer than min_steps steps of a shape gets no ratio from it
    few = _decode_steps({(1, 500): [0.020] * 2})
    assert "few" not in C.decode_drift({"fast": fast, "mid": mid, "few": few})
    # each run is one vote in a shape's reference, however many steps it served
    many = _decode_steps({(1, 500): [0.010] * 60})
    d = C.decode_drift({"many": many, "slow": _decode_steps({(1, 500): [0.011] * 6}),
                        "mid": _decode_steps({(1, 500): [0.0105] * 6})})
    assert d["mid"] == pytest.approx(1.0)
    assert C.decode_drift({}) == {} and C.decode_drift({"e": fast.iloc[:0]}) == {}


def test_calibration_pieces_are_their_own_requests_split_over_the_rounds(tmp_path):
    """replay.py --calibration-requests: the calibration workload (its own seed) in one piece
    per round of repeats, every request once, at the load factor x its own capacity."""
    import argparse

    import replay as R

    prof = tmp_path / "profile.csv"
    pd.DataFrame({"probe": ["prefill 512", "decode 8@100"], "kind": ["prefill", "decode"],
                  "total_tokens": [512, 8], "num_seqs": [1, 8], "time_s": [0.5, 0.02]}).to_csv(prof)
    args = argparse.Namespace(seed=0, num_requests=200, calibration_seed=1, calibration_requests=10,
                              calibration_load_factor=0.5, repeats=3, max_model_len=1024,
                              max_num_seqs=8, rates_from_profile=prof, trace_lengths=False,
                              prompt="lognormal:256:0.8", output="lognormal:64:0.8")
    pieces = R.calibration_pieces(args)
    assert [len(p["prompts"]) for p in pieces] == [4, 3, 3]
    assert [p["meta"]["repeat"] for p in pieces] == [0, 1, 2]
    assert all(p["meta"]["calibration"] and p["meta"]["seed"] == 1 for p in pieces)
    # the pieces are the calibration workload in order: its own lengths, not the validation's
    p_cal, o_cal, _ = R.make_lengths(argparse.Namespace(**{**vars(args), "seed": 1, "num_requests": 10}), 1024)
    p_val, _, _ = R.make_lengths(args, 1024)
    assert np.concatenate([p["outputs"] for p in pieces]).tolist() == o_cal.tolist()
    assert [len(x) for p in pieces for x in p["prompts"]] == p_cal.tolist()
    assert p_cal.tolist() != p_val[:10].tolist()
    cap = R.estimate_capacity(prof, float(p_cal.mean()), float(o_cal.mean()), 8)
    rate = pieces[0]["meta"]["rate"]
    assert rate == pytest.approx(0.5 * cap, rel=1e-3)
    assert pieces[0]["name"] == f"rate{rate:g}_r0"
    gaps = R.poisson_gaps(10, 1)  # the calibration seed's own arrival stream, piece by piece
    idx = np.array_split(np.arange(10), 3)
    for p, i in zip(pieces, idx, strict=True):
        assert np.allclose(p["arrivals"], np.cumsum(gaps[i]) / rate)


@pytest.mark.parametrize("extra, msg", [
    (["--calibration-requests", "2", "--repeats", "3"], "at least one per round"),
    (["--calibration-requests", "-1"], "at least one per round"),
    (["--repeats", "0", "--calibration-requests", "10"], "--repeats 0: at least 1"),
    (["--calibration-requests", "10"], "needs --rates-from-profile"),
    (["--calibration-requests", "10", "--calibration-dir", "x", "--seed", "1"], "must differ"),
])
def test_replay_refuses_bad_calibration_settings_before_starting_an_engine(extra, msg, capsys):
    import replay as R

    with pytest.raises(SystemExit):
        R.main(["--rates", "1"] + (["--rates-from-profile", "p.csv"] if "--seed" in extra else []) + extra)
    assert msg in capsys.readouterr().err
