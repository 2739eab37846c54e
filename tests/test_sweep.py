"""Sweeps: spec validation, expansion, chunked execution, determinism, resume, sharding, max-QPS."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from frontier_jax.spec import SpecError
from frontier_jax.sweep import expand, load_sweep, plan, run_sweep, sweep_from_dict
from frontier_jax.sweep.maxqps import scalar_max_qps
from frontier_jax.sweep.spec import MaxQPS

SMALL = REPO / "tests" / "data" / "sweep_small.toml"
BASE = str(REPO / "scenarios" / "demo.toml")
METRICS = [
    "throughput_rps",
    "ttft_p50",
    "ttft_p99",
    "tpot_p90",
    "e2e_p99",
    "preemptions",
    "slo_attainment",
    "output_tok_s_per_gpu",
    "steps",
]


def _spec(**kw):
    d = {"base": BASE, "axes": {"parallel.tp": [1, 2]}}
    d.update(kw)
    return sweep_from_dict(d)


def test_axes_forms_derived_and_constraints():
    spec = _spec(
        axes={
            "parallel.tp": [1, 2, 4],
            "scheduler.max_num_batched_tokens": {
                "log_range": [512, 8192],
                "num": 5,
                "integer": True,
            },
            "workload.arrival.rate": {"range": [2.0, 6.0], "num": 3},
            "rate_per_gpu": [1.0],
        },
        derived={"cluster.replicas": "8 // tp", "seed": "tp * 10"},
        constraints={"expressions": ["max_num_batched_tokens >= 1024", "gpus == 8"]},
    )
    configs, dropped = expand(spec)
    assert len(configs) == 3 * 4 * 3 and dropped == 3 * 1 * 3
    c = configs[0]
    assert c.overrides["cluster.replicas"] * c.overrides["parallel.tp"] == 8
    assert "rate_per_gpu" not in c.overrides and c.values["rate_per_gpu"] == 1.0
    assert sorted({c.overrides["scheduler.max_num_batched_tokens"] for c in configs}) == [
        1024,
        2048,
        4096,
        8192,
    ]
    assert [c.config_id for c in configs] == list(range(len(configs)))


def test_random_mode_is_seeded():
    kw = dict(
        mode="random",
        samples=20,
        seed=3,
        axes={
            "workload.arrival.rate": {"log_uniform": [1.0, 100.0]},
            "parallel.tp": {"choice": [1, 2, 4]},
        },
    )
    a, _ = expand(_spec(**kw))
    b, _ = expand(_spec(**kw))
    assert [c.values for c in a] == [c.values for c in b] and len(a) == 20
    assert all(1.0 <= c.values["workload.arrival.rate"] <= 100.0 for c in a)


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(chunk_sise=3), "chunk_sise"),
        (dict(axes={"parallel.tp": []}), "axes.parallel.tp"),
        (dict(axes={"parallel.tp": {"uniform": [1, 2]}}), "axes.parallel.tp"),
        (dict(axes={"x": {"range": [5, 1], "num": 3}}), "axes.x.range"),
        (dict(derived={"cluster.replicas": "16 // tpp"}), "derived.cluster.replicas"),
        (dict(constraints={"expressions": ["__import__('os')"]}), "constraints.expressions[0]"),
        (dict(mode="exhaustive"), "mode"),
        (dict(base="nope.toml"), "base"),
        (dict(axes={"hardware": ["H200"]}), "axes.hardware"),  # a table, not a field: set nothing
    ],
)
def test_bad_specs_are_one_line_errors(kw, field):
    with pytest.raises(SpecError) as e:
        _spec(**kw)
    assert e.value.field == field and "\n" not in str(e.value)


def test_invalid_override_value_names_the_field():
    spec = _spec(axes={"scheduler.max_num_seqs": [0, 8]})
    plans, _ = plan(spec)
    bad = [p for p in plans if p.status != "ok"]
    assert len(bad) == 1 and "scheduler.max_num_seqs" in bad[0].status


def _table(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["config_id", "status"] + [m for m in METRICS if m in df]
    return df[cols].sort_values("config_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    return run_sweep(load_sweep(SMALL), out, progress=False), out


def test_small_sweep_rows_and_statuses(small_run):
    df, out = small_run
    assert len(df) == 13 and (out / "results.parquet").exists()
    assert (df["status"] == "ok").sum() == 12
    bad = df[df["status"] != "ok"]
    assert bad["status"].str.startswith("infeasible").all()
    ok = df[df["status"] == "ok"]
    assert (ok["n_finished"] == 60).all() and (ok["gpus"] == 4).all()
    assert set(ok["family"]) == {"TP1", "TP2"}
    assert len(list((out / "chunks").glob("*.parquet"))) == 3


def test_chunk_size_does_not_change_results(small_run, tmp_path):
    df, out = small_run
    other = run_sweep(load_sweep(SMALL), tmp_path, progress=False, chunk_size=12)
    pd.testing.assert_frame_equal(_table(df), _table(other))
    # Byte-identical results file: same spec and seed, different chunking.
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(out / "results.parquet") == digest(tmp_path / "results.parquet")


def _run_cli(args, env=None, **kw):
    cmd = [sys.executable, "-m", "frontier_jax.cli", *args]
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=REPO, **kw)


def test_kill_and_resume_is_identical(small_run, tmp_path):
    df, _ = small_run
    out = tmp_path / "killed"
    proc = _run_cli(
        ["sweep", str(SMALL), "--out", str(out), "--chunk-size", "1", "--quiet", "--no-plot"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "chunks").glob("*.parquet"))) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list((out / "chunks").glob("*.parquet")))
    assert 2 <= done_before < 12, "the sweep must be killed part-way"
    with pytest.raises(SpecError, match="chunk-size"):
        run_sweep(load_sweep(SMALL), out, resume=True, progress=False, chunk_size=4)
    resumed = run_sweep(load_sweep(SMALL), out, resume=True, progress=False)
    assert len(list((out / "chunks").glob("*.parquet"))) == 12
    pd.testing.assert_frame_equal(_table(df), _table(resumed))


def test_two_forced_host_devices_match_one(small_run, tmp_path):
    df, _ = small_run
    out = tmp_path / "sharded"
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = _run_cli(
        ["sweep", str(SMALL), "--out", str(out), "--devices", "2", "--quiet", "--no-plot"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output.decode()[-2000:]
    sharded = pd.read_parquet(out / "results.parquet")
    pd.testing.assert_frame_equal(_table(df), _table(sharded))


def test_batched_max_qps_equals_scalar_bisection(tmp_path):
    d = {
        "base": BASE,
        "chunk_size": 4,
        "axes": {"scheduler.max_num_batched_tokens": [256, 2048], "parallel.tp": [1, 2]},
        "derived": {"workload.num_requests": "150", "cluster.replicas": "1"},
        "maxqps": {"target": 0.9, "low": 0.5, "high": 100.0, "rounds": 5},
    }
    spec = sweep_from_dict(d)
    df = run_sweep(spec, tmp_path, progress=False)
    plans, _ = plan(spec)
    cfg = MaxQPS(**d["maxqps"])
    for p in plans:
        got = float(df.loc[df["config_id"] == p.config.config_id, "max_qps"].iloc[0])
        assert got == scalar_max_qps(cfg, p)
    qps = df.set_index("config_id")["max_qps"]
    assert qps.nunique() > 1 and (qps > 0.5).all() and (qps < 100).any()
    # More tensor parallelism on the same replica sustains more load here.
    assert np.all(df[df.tp == 2]["max_qps"].to_numpy() >= df[df.tp == 1]["max_qps"].to_numpy())
    assert Path(tmp_path / "results.parquet").exists()


def test_optimizer_on_the_simulator(tmp_path):
    from frontier_jax.sweep.search import (
        goodput_per_gpu,
        optimize_layouts,
        search_space,
        with_budget_and_slo,
    )

    d = {
        "base": BASE,
        "axes": {
            "parallel.tp": [1, 2, 4],
            "cluster.replicas": [1, 2, 4],
            "scheduler.max_num_batched_tokens": [512, 2048],
        },
        "derived": {"workload.num_requests": "40"},
        "maxqps": {"target": 0.9, "low": 0.5, "high": 400.0, "rounds": 3},
    }
    spec = with_budget_and_slo(sweep_from_dict(d), gpus=4, ttft_s=0.5, tpot_s=0.05)
    space = search_space(spec)
    assert space.size() == 12  # tp x replicas <= 4 GPUs: 6 layouts x 2 budgets
    result, table = optimize_layouts(spec, budget=4, popsize=4, seed=0)
    assert result.n_evaluations <= 4 and len(table) == result.n_evaluations
    assert all(
        lay["parallel.tp"] * lay["cluster.replicas"] <= 4
        for lay in table[list(space.names)].to_dict("records")
    )
    again = goodput_per_gpu(spec, [result.best_layout], chunk_size=1)["objective"].iloc[0]
    assert again == result.best_value == table["objective"].max()
