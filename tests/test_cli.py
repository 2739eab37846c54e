"""CLI: simulate writes its outputs; compare-reference prints agreement; bad input is one line."""

import json

import pandas as pd
from click.testing import CliRunner
from conftest import SCENARIOS

from frontier_jax.cli import main

SMALL = """
name = "small"
seed = 3
[model]
preset = "llama-3-8b"
[hardware]
preset = "H100-SXM"
[cluster]
replicas = 2
router = "least_outstanding"
[workload]
num_requests = 120
[workload.arrival]
process = "poisson"
rate = 30.0
[workload.prompt]
dist = "uniform"
low = 16
high = 600
[workload.output]
dist = "uniform"
low = 1
high = 80
[slo]
ttft_s = 0.5
tpot_s = 0.05
"""


def _write(tmp_path, text=SMALL):
    path = tmp_path / "small.toml"
    path.write_text(text)
    return path


def test_simulate_writes_metrics_parquet_and_trace(tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["simulate", str(_write(tmp_path)), "--out", str(out), "--trace"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_finished"] == 120 and 0 <= m["slo_attainment"] <= 1
    df = pd.read_parquet(out / "requests.parquet")
    assert len(df) == 120 and df["finished"].all()
    trace = json.loads((out / "trace.json").read_text())["traceEvents"]
    slices = [e for e in trace if e["ph"] == "X"]
    assert sum(m["replica_iterations"]) == len(slices)


def test_reference_flag_gives_same_metrics(tmp_path):
    path = _write(tmp_path)
    vec = CliRunner().invoke(main, ["simulate", str(path), "--json", "--out", str(tmp_path / "a")])
    ref = CliRunner().invoke(
        main, ["simulate", str(path), "--json", "--reference", "--out", str(tmp_path / "b")]
    )
    mv, mr = json.loads(vec.output), json.loads(ref.output)
    for k in ("throughput_rps", "ttft_p99", "tpot_p50", "e2e_p90", "preemptions"):
        assert abs(mv[k] - mr[k]) <= 1e-9 * max(1.0, abs(mr[k])), k


def test_compare_reference_json_keys(tmp_path):
    r = CliRunner().invoke(main, ["compare-reference", str(_write(tmp_path)), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    for k in ("max_rel_err_finish", "max_rel_err_ttft", "preemptions_equal", "n_requests"):
        assert k in rep
    assert rep["n_requests"] == 120 and rep["max_rel_err_finish"] <= 1e-6


def test_bad_field_is_one_line_and_exit_2(tmp_path):
    bad = SMALL.replace('router = "least_outstanding"', 'router = "random_walk"')
    r = CliRunner().invoke(main, ["simulate", str(_write(tmp_path, bad))])
    assert r.exit_code == 2
    err = r.output.strip()
    assert "\n" not in err and "cluster.router" in err and "random_walk" in err


def test_shipped_demo_scenario_is_valid():
    from frontier_jax.spec import load_scenario

    assert load_scenario(SCENARIOS / "demo.toml").workload.num_requests >= 1000


def test_missing_predictor_set_is_one_line_not_run_as_roofline(tmp_path):
    text = SMALL + '\n[cost]\nkind = "surrogate"\npredictor = "predictors/none"\n'
    r = CliRunner().invoke(main, ["simulate", str(_write(tmp_path, text))])
    err = r.output.strip()
    assert r.exit_code == 2 and "cost.predictor" in err and "no predictor set" in err
    assert "\n" not in err and "Traceback" not in err


def test_forest_tier_is_refused_with_the_simulated_alternative(tmp_path):
    text = SMALL + '\n[cost]\nkind = "forest"\npredictor = "cpu-llama-512"\n'
    r = CliRunner().invoke(main, ["simulate", str(_write(tmp_path, text))])
    assert r.exit_code == 2 and "cost.kind" in r.output and "surrogate" in r.output
