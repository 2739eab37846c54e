"""Pareto masks against brute force; frontier plots and CSV flags; the ``plot`` CLI command."""

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from frontier_jax.pareto import pareto_front, pareto_mask
from frontier_jax.plot import PANELS, REQUIRED_COLUMNS, pareto_table, plot_frontier, register_cli

DIRECTIONS = [(False, False), (False, True), (True, False), (True, True)]


def brute_mask(x, y, maximize_x, maximize_y):
    """O(n^2) reference: finite and no finite point at least as good on both, better on one."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    a = -x if maximize_x else x
    b = -y if maximize_y else y
    fin = np.isfinite(a) & np.isfinite(b)
    out = np.zeros(len(a), bool)
    for i in np.flatnonzero(fin):
        le = (a[fin] <= a[i]) & (b[fin] <= b[i])
        lt = (a[fin] < a[i]) | (b[fin] < b[i])
        out[i] = not np.any(le & lt)
    return out


# --------------------------------------------------------------------------- pareto_mask


def test_hand_made_min_x_max_y():
    # throughput (y, higher better) vs latency (x, lower better)
    x = [1.0, 2.0, 2.0, 3.0, 3.0, 4.0, np.nan, 0.5, 5.0, np.inf]
    y = [1.0, 3.0, 3.0, 3.0, 2.0, 5.0, 9.0, np.nan, 5.0, 99.0]
    got = pareto_mask(x, y, maximize_x=False, maximize_y=True)
    #        1,1   2,3   2,3 dup  3,3 dom  3,2 dom  4,5  nan   nan   5,5 dom  inf
    want = [True, True, True, False, False, True, False, False, False, False]
    assert got.tolist() == want
    assert got.dtype == bool


@pytest.mark.parametrize("mx,my", DIRECTIONS)
def test_hand_made_all_directions(mx, my):
    x = np.array([0.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    y = np.array([0.0, 1.0, 0.0, 2.0, 0.0, 2.0])
    got = pareto_mask(x, y, mx, my)
    want = {
        (False, False): [True, False, False, False, False, False],  # (0,0) dominates all
        (False, True): [True, True, False, True, False, True],  # (0,0) (1,1) (2,2)x2
        (True, False): [False, False, False, False, True, False],  # (2,0) beats all
        (True, True): [False, False, False, True, False, True],  # the duplicated (2,2)
    }[(mx, my)]
    assert got.tolist() == want
    assert got.tolist() == brute_mask(x, y, mx, my).tolist()


def test_empty_all_nan_single_and_all_equal():
    assert pareto_mask([], [], False, True).tolist() == []
    assert pareto_mask([np.nan, 1.0], [1.0, np.inf], False, True).tolist() == [False, False]
    assert pareto_mask([3.0], [4.0], True, True).tolist() == [True]
    assert pareto_mask([2.0] * 4, [7.0] * 4, False, True).all()


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="1-D"):
        pareto_mask([1.0, 2.0], [1.0], False, True)


@pytest.mark.parametrize("mx,my", DIRECTIONS)
def test_random_matches_brute_force(mx, my):
    rng = np.random.default_rng(1234)
    for n in (1, 2, 7, 50, 300):
        for _ in range(5):
            # coarse integer grid so ties in x, in y and exact duplicates are frequent
            x = rng.integers(0, 12, n).astype(float)
            y = rng.integers(0, 12, n).astype(float)
            bad = rng.random(n) < 0.1
            x[bad & (rng.random(n) < 0.5)] = np.nan
            y[bad & (rng.random(n) < 0.5)] = -np.inf
            np.testing.assert_array_equal(pareto_mask(x, y, mx, my), brute_mask(x, y, mx, my))
        x, y = rng.normal(size=n), rng.lognormal(size=n)
        np.testing.assert_array_equal(pareto_mask(x, y, mx, my), brute_mask(x, y, mx, my))


_val = st.one_of(st.integers(-3, 3).map(float), st.sampled_from([np.nan, np.inf, -np.inf]))


@settings(max_examples=150, deadline=None)
@given(
    pts=st.lists(st.tuples(_val, _val), max_size=25),
    mx=st.booleans(),
    my=st.booleans(),
)
def test_property_matches_brute_force(pts, mx, my):
    x = np.array([p[0] for p in pts], float)
    y = np.array([p[1] for p in pts], float)
    np.testing.assert_array_equal(pareto_mask(x, y, mx, my), brute_mask(x, y, mx, my))


def test_pareto_front_sorted_and_nullable_dtypes():
    df = pd.DataFrame(
        {
            "lat": pd.array([3.0, 1.0, None, 2.0, 2.5], dtype="Float64"),
            "thr": [30.0, 10.0, 99.0, 20.0, 5.0],
            "name": list("abcde"),
        }
    )
    front = pareto_front(df, "lat", "thr", maximize_x=False, maximize_y=True)
    assert front["name"].tolist() == ["b", "d", "a"]
    assert front.index.tolist() == [1, 3, 0]
    with pytest.raises(ValueError, match="missing columns"):
        pareto_front(df, "lat", "nope", False, True)


# --------------------------------------------------------------------------- plots


def synthetic_results(n_per_family=30, seed=0, families=("TP1", "TP2", "TP4")):
    """Sweep-like results: bigger batches buy throughput per GPU with latency; some rows fail."""
    rng = np.random.default_rng(seed)
    rows = []
    cid = 0
    for k, fam in enumerate(families):
        tp = int(fam[2:]) if fam.startswith("TP") and fam[2:].isdigit() else 2
        for _ in range(n_per_family):
            seqs = int(rng.choice([8, 16, 32, 64, 128, 256]))
            mbt = int(rng.choice([512, 1024, 2048, 4096]))
            replicas = int(rng.choice([1, 2, 4]))
            rate = float(rng.choice([1.0, 4.0, 16.0, 64.0]))
            tpot90 = 0.006 * (1 + 0.4 * k) * (1 + seqs / 48) * rng.lognormal(0, 0.15) / tp**0.5
            tok_gpu = 2500 * seqs / (seqs + 40) * (1 - 0.15 * k) * rng.lognormal(0, 0.1)
            ttft90 = 0.03 * (1 + mbt / 2048) * (1 + rate / 8) * rng.lognormal(0, 0.4)
            tpot_mean = tpot90 / 1.3
            status = "ok" if rng.random() > 0.08 else "oom"
            rows.append(
                {
                    "config_id": cid,
                    "status": status,
                    "family": fam,
                    "layout": f"{replicas}x{fam} mbt={mbt} seqs={seqs}",
                    "gpus": replicas * tp,
                    "output_tok_s_per_gpu": tok_gpu,
                    "total_tok_s_per_gpu": tok_gpu * 3,
                    "throughput_rps": rate * 0.98,
                    "ttft_p50": ttft90 / 2,
                    "ttft_p90": ttft90,
                    "ttft_p99": ttft90 * 2,
                    "tpot_p50": tpot90 / 1.5,
                    "tpot_p90": tpot90,
                    "tpot_p99": tpot90 * 1.4,
                    "tpot_mean": tpot_mean,
                    "tok_s_per_user": 1.0 / tpot_mean,
                    "slo_attainment": float(np.clip(1.2 - ttft90 - 8 * tpot90, 0, 1)),
                    "goodput_rps": rate * 0.9,
                    "cluster.replicas": replicas,
                    "parallel.tp": tp,
                    "scheduler.max_num_batched_tokens": mbt,
                    "scheduler.max_num_seqs": seqs,
                    "workload.arrival.rate": rate,
                }
            )
            cid += 1
    df = pd.DataFrame(rows)
    df.loc[df.index[3], "tpot_p90"] = np.nan  # an ok row with a missing metric
    df.loc[df.index[3], "status"] = "ok"
    return df


def test_plot_frontier_writes_files_and_flags(tmp_path):
    df = synthetic_results()
    paths = plot_frontier(df, tmp_path / "out", title="synthetic")
    assert set(paths) == {"png", "svg", "csv"}
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0 and p.parent == tmp_path / "out"
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths["svg"].read_bytes()[:2000]

    csv = pd.read_csv(paths["csv"])
    ok = df[df["status"] == "ok"].reset_index(drop=True)
    assert len(csv) == len(ok)
    assert (csv["status"] == "ok").all()
    assert csv["config_id"].tolist() == ok["config_id"].tolist()
    for panel in PANELS:
        want = pareto_mask(ok[panel.x], ok["output_tok_s_per_gpu"], panel.maximize_x, True)
        assert csv[panel.flag].dtype == bool
        assert csv[panel.flag].tolist() == want.tolist()
        assert 0 < want.sum() < len(ok)
    assert not csv.loc[csv["tpot_p90"].isna(), "front_tpot_p90"].any()


def test_pareto_table_lists_front():
    df = synthetic_results()
    ok = df[df["status"] == "ok"]
    front = pareto_front(ok, "tpot_p90", "output_tok_s_per_gpu", False, True)
    text = pareto_table(df, n=100)
    lines = text.splitlines()
    assert "TPOT p90" in lines[1] and "SLO" in lines[1]
    assert len(lines) == 3 + len(front)
    assert [ln.split("  ")[0].strip() for ln in lines[3:]] == front["layout"].tolist()
    short = pareto_table(df, n=3).splitlines()
    assert len(short) == 3 + 3 and "showing 3" in short[0]
    assert short[3].split("  ")[0].strip() == front["layout"].iloc[0]
    assert short[-1].split("  ")[0].strip() == front["layout"].iloc[-1]


def test_missing_columns_and_no_ok_rows(tmp_path):
    df = synthetic_results(n_per_family=3)
    with pytest.raises(ValueError, match="tpot_p90") as err:
        plot_frontier(df.drop(columns=["tpot_p90"]), tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="required columns"):
        pareto_table(df.drop(columns=list(REQUIRED_COLUMNS[:2])))
    with pytest.raises(ValueError, match="no rows with status 'ok'"):
        plot_frontier(df.assign(status="timeout"), tmp_path)
    assert not (tmp_path / "frontier.png").exists()


# --------------------------------------------------------------------------- CLI


def test_cli_plot_command(tmp_path):
    @click.group()
    def cli():
        """test group"""

    register_cli(cli)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    parquet = sweep / "results.parquet"
    synthetic_results(n_per_family=10, seed=1).to_parquet(parquet, index=False)

    runner = CliRunner()
    res = runner.invoke(cli, ["plot", str(parquet), "--title", "cli test"])
    assert res.exit_code == 0, res.output
    assert "Pareto front" in res.output
    for name in ("frontier.png", "frontier.svg", "frontier.csv"):
        assert (sweep / name).stat().st_size > 0
        assert name in res.output

    out = tmp_path / "elsewhere"
    res = runner.invoke(cli, ["plot", str(parquet), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "frontier.png").exists()

    bad = tmp_path / "bad.parquet"
    synthetic_results(n_per_family=2).drop(columns=["layout"]).to_parquet(bad)
    res = runner.invoke(cli, ["plot", str(bad)])
    assert res.exit_code != 0
    assert "layout" in res.output and "Traceback" not in res.output


def test_plot_frontier_survives_all_nan_metrics(tmp_path):
    df = synthetic_results(n_per_family=2)
    df[["tpot_p90", "ttft_p90", "tok_s_per_user"]] = np.nan
    paths = plot_frontier(df, tmp_path)
    csv = pd.read_csv(paths["csv"])
    assert not csv[[p.flag for p in PANELS]].to_numpy().any()
    assert "no finite points" in pareto_table(df)
