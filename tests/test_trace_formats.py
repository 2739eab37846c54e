"""Trace formats (project CSV, Azure 2023/2024, BurstGPT, Mooncake JSONL) and one-line replay:
each format's sample loads to the same request arrays as the equivalent project CSV, a bad
row in each gets a one-line error, `trace = "file"` alone runs, windows / rescaling / loops."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data_root

from frontier_jax.spec import ArrivalSpec, LengthSpec, SpecError, WorkloadSpec, load_scenario
from frontier_jax.trace_formats import TraceFilter, read_trace
from frontier_jax.workload import load_trace_csv, make_workload, workload_size

ROOT = Path(__file__).resolve().parents[1]
AZURE_SAMPLE = ROOT / "scenarios" / "traces" / "azure_conv_2023_first1000.csv"

# The requests every sample holds: arrival (s), prompt and output tokens.
ARRIVAL = [0.0, 0.25, 1.5, 1.5, 3.125, 64.5]
PROMPT = [374, 396, 879, 91, 1, 2048]
OUTPUT = [44, 109, 55, 16, 7, 1]


def project_csv(tmp_path: Path) -> Path:
    rows = "".join(f"{a},{p},{o}\n" for a, p, o in zip(ARRIVAL, PROMPT, OUTPUT, strict=True))
    return write(tmp_path / "project.csv", "arrival_s,prompt_tokens,output_tokens\n" + rows)


def azure(tmp_path: Path, year: int) -> Path:
    """Azure 2023 writes 7 fraction digits and no zone; 2024 six digits and +00:00."""
    rows = []
    for a, p, o in zip(ARRIVAL, PROMPT, OUTPUT, strict=True):
        us = 46_680_590 + round(a * 1e6)  # microseconds after 18:15:00
        secs, frac = divmod(us, 10**6)
        mins, secs = divmod(secs, 60)
        stamp = (f"2023-11-16 18:{15 + mins:02d}:{secs:02d}.{frac:06d}0" if year == 2023
                 else f"2024-05-10 00:{15 + mins:02d}:{secs:02d}.{frac:06d}+00:00")
        rows.append(f"{stamp},{p},{o}\n")
    return write(tmp_path / f"azure{year}.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                 + "".join(rows))


def burstgpt(tmp_path: Path) -> Path:
    """BurstGPT with a failed row (0 response tokens) and a GPT-4 API row among them."""
    rows = [f"{a + 5.0},ChatGPT,{p},{o},{p + o},Conversation log\n"
            for a, p, o in zip(ARRIVAL, PROMPT, OUTPUT, strict=True)]
    rows.insert(2, "5.5,ChatGPT,120,0,120,Conversation log\n")
    rows.insert(4, "6.5,GPT-4,300,20,320,API log\n")
    return write(tmp_path / "burst.csv",
                 "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                 + "".join(rows))


def mooncake(tmp_path: Path) -> Path:
    rows = [json.dumps({"timestamp": round(a * 1000), "input_length": p, "output_length": o,
                        "hash_ids": list(range(i, i + (p + 511) // 512))})
            for i, (a, p, o) in enumerate(zip(ARRIVAL, PROMPT, OUTPUT, strict=True))]
    return write(tmp_path / "mooncake.jsonl", "\n".join(rows) + "\n")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def arrays(w) -> tuple:
    return w.arrival_s.tolist(), w.prompt_tokens.tolist(), w.output_tokens.tolist()


@pytest.mark.parametrize("make", [lambda t: azure(t, 2023), lambda t: azure(t, 2024), mooncake],
                         ids=["azure2023", "azure2024", "mooncake"])
def test_public_formats_load_the_project_csvs_arrays(tmp_path: Path, make) -> None:
    path = make(tmp_path)
    assert arrays(load_trace_csv(path)) == arrays(load_trace_csv(project_csv(tmp_path)))
    assert arrays(load_trace_csv(path)) == (ARRIVAL, PROMPT, OUTPUT)


def test_burstgpt_filters_and_drops_failures(tmp_path: Path) -> None:
    path = burstgpt(tmp_path)
    every = read_trace(path)
    assert every.format == "burstgpt" and every.dropped == 1 and len(every) == len(ARRIVAL) + 1
    chat = read_trace(path, keep=TraceFilter(model="chatgpt", log_type="Conversation log"))
    assert (chat.arrival_s - 5.0).tolist() == ARRIVAL
    assert chat.prompt_tokens.tolist() == PROMPT and chat.output_tokens.tolist() == OUTPUT
    with pytest.raises(SpecError, match=r"Response tokens\[line 4\]: got 0; a failed request"):
        read_trace(path, keep=TraceFilter(drop_failed=False))
    with pytest.raises(SpecError, match="no data rows kept"):
        read_trace(path, keep=TraceFilter(model="Claude"))
    with pytest.raises(SpecError, match="filter BurstGPT traces only"):
        read_trace(project_csv(tmp_path), keep=TraceFilter(model="ChatGPT"))


def test_mooncake_keeps_block_hashes(tmp_path: Path) -> None:
    w = load_trace_csv(mooncake(tmp_path))
    assert w.block_hashes[0] == (0,) and w.block_hashes[-1] == (5, 6, 7, 8)


def test_format_named_overrides_detection(tmp_path: Path) -> None:
    path = azure(tmp_path, 2023)
    assert read_trace(path, "azure").format == "azure"
    with pytest.raises(SpecError, match="no prompt_tokens column of format 'burstgpt'"):
        read_trace(path, "burstgpt")
    with pytest.raises(SpecError, match="no prompt_tokens column"):
        read_trace(path, "csv")


@pytest.mark.parametrize(("make", "bad", "field"), [
    (project_csv, ("0.25,396,109", "0.25,396,x"), r"output_tokens\[line 3\]"),
    (lambda t: azure(t, 2023), ("18:15:46.9305900", "18:75:46.9305900"), r"TIMESTAMP\[line 3\]"),
    (lambda t: azure(t, 2024), (",396,", ",-396,"), r"ContextTokens\[line 3\]"),
    (burstgpt, ("ChatGPT,396,109", "ChatGPT,396,1e99"), r"Response tokens\[line 3\]"),
    (mooncake, ('"output_length": 109', '"output_length": "many"'), r"output_length\[line 2\]"),
    (mooncake, ('"timestamp": 250,', '"timestamp": 250'), r"<line 2>"),
    (mooncake, ('"input_length": 396,', ""), r"input_length\[line 2\]"),
], ids=["csv", "azure2023", "azure2024", "burstgpt", "mooncake-value", "mooncake-json",
        "mooncake-key"])
def test_a_garbage_row_gets_one_line_naming_file_column_and_line(tmp_path, make, bad, field):
    path = make(tmp_path)
    text = path.read_text()
    assert bad[0] in text
    path.write_text(text.replace(bad[0], bad[1], 1))
    with pytest.raises(SpecError, match=rf"^{re.escape(str(path))}: {field}: ") as info:
        load_trace_csv(path)
    assert "\n" not in str(info.value)


def test_unsorted_azure_rows_name_the_line(tmp_path: Path) -> None:
    path = azure(tmp_path, 2023)
    lines = path.read_text().splitlines()
    lines[3], lines[5] = lines[5], lines[3]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError, match=r"TIMESTAMP\[line 5\]: .*sorted"):
        load_trace_csv(path)


# ---- one-line replay and its options ------------------------------------------------------


def replay(path: Path, **kw) -> WorkloadSpec:
    return WorkloadSpec(trace=str(path), **kw)


def test_trace_alone_replays_every_row_and_num_requests_takes_the_first(tmp_path: Path) -> None:
    path = burstgpt(tmp_path)
    s = replay(path, trace_model="ChatGPT", trace_log_type="conversation log")
    assert (s.arrival.process, s.prompt.dist, s.output.dist) == ("trace", "trace", "trace")
    w = make_workload(s, 0)
    assert workload_size(s) == len(w) == len(ARRIVAL)
    assert (w.arrival_s - 5.0).tolist() == ARRIVAL and w.output_tokens.tolist() == OUTPUT
    w3 = make_workload(replay(path, num_requests=3, trace_model="ChatGPT",
                              trace_log_type="Conversation log"), 0)
    assert w3.prompt_tokens.tolist() == PROMPT[:3]


def test_trace_arrivals_with_synthetic_lengths_and_the_reverse(tmp_path: Path) -> None:
    path = project_csv(tmp_path)
    w = make_workload(replay(path, output=LengthSpec("fixed", value=9)), 0)
    assert w.arrival_s.tolist() == ARRIVAL and w.output_tokens.tolist() == [9] * len(ARRIVAL)
    s = replay(path, num_requests=50, arrival=ArrivalSpec(rate=2.0))
    w = make_workload(s, 1)
    assert len(w) == 50 and set(w.prompt_tokens.tolist()) <= set(PROMPT)
    assert w.arrival_s[-1] == pytest.approx(25, rel=0.5)


def test_window_time_scale_and_rate(tmp_path: Path) -> None:
    path = project_csv(tmp_path)
    w = make_workload(replay(path, start=1.0, duration=3.0), 0)
    assert w.arrival_s.tolist() == [0.5, 0.5, 2.125] and w.prompt_tokens.tolist() == PROMPT[2:5]
    w = make_workload(replay(path, time_scale=2.0), 0)
    assert w.arrival_s.tolist() == [2 * a for a in ARRIVAL]
    w = make_workload(replay(path, arrival=ArrivalSpec("trace", rate=3.0)), 0)
    assert len(w) / w.arrival_s[-1] == pytest.approx(3.0)
    np.testing.assert_allclose(w.arrival_s, np.array(ARRIVAL) * (6 / 64.5) / 3.0)
    with pytest.raises(SpecError, match="no rows arrive in the window"):
        make_workload(replay(path, start=100.0), 0)


def test_loop_repeats_the_trace_one_period_later(tmp_path: Path) -> None:
    path = project_csv(tmp_path)
    w = make_workload(replay(path, num_requests=14, loop=True), 0)
    period = 64.5 + 64.5 / 5
    expect = [a + k * period for k in range(3) for a in ARRIVAL][:14]
    np.testing.assert_allclose(w.arrival_s, expect)
    assert w.prompt_tokens.tolist() == (PROMPT * 3)[:14]
    w = make_workload(replay(path, num_requests=8, loop=True, duration=4.0), 0)
    np.testing.assert_allclose(w.arrival_s, ARRIVAL[:5] + [a + 4.0 for a in ARRIVAL[:3]])


def test_a_short_trace_warns_and_replays_what_it_has(tmp_path: Path, capsys) -> None:
    path = project_csv(tmp_path)
    w = make_workload(replay(path, num_requests=100), 0)
    assert len(w) == len(ARRIVAL)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {path}: num_requests: 100 asked")


def test_an_output_max_below_the_median_warns(tmp_path: Path, capsys) -> None:
    s = WorkloadSpec(num_requests=400, arrival=ArrivalSpec(rate=1.0),
                     prompt=LengthSpec("lognormal", median=500, sigma=0.5),
                     output=LengthSpec("lognormal", median=300, sigma=0.3, max=200))
    make_workload(s, 0)
    err = capsys.readouterr().err
    assert "workload.output.max: 200 clips 9" in err and "prompt" not in err
    make_workload(WorkloadSpec(num_requests=400, arrival=ArrivalSpec(rate=1.0),
                               prompt=LengthSpec("fixed", value=9),
                               output=LengthSpec("fixed", value=9)), 0)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("kw", "field", "hint"), [
    ({"num_requests": 5}, "arrival", "required"),
    ({"trace_model": "x", "num_requests": 1, "arrival": ArrivalSpec(rate=1.0),
      "prompt": LengthSpec("fixed", value=1), "output": LengthSpec("fixed", value=1)},
     "trace_model", "only used with workload.trace"),
    ({"trace": "t.csv", "time_scale": 2.0, "arrival": ArrivalSpec("trace", rate=2.0)},
     "time_scale", "not both"),
    ({"trace": "t.csv", "loop": True}, "loop", "give num_requests"),
    ({"trace": "t.csv", "start": 5.0, "num_requests": 3, "arrival": ArrivalSpec(rate=2.0)},
     "start", "arrivals come from the trace"),
    ({"trace": "t.csv", "format": "parquet"}, "format", "auto"),
])
def test_bad_trace_options(kw, field, hint) -> None:
    with pytest.raises(SpecError, match=rf"{field}: got .*{hint}"):
        WorkloadSpec(**kw)


def test_one_line_trace_scenario_from_toml(tmp_path: Path) -> None:
    trace = project_csv(tmp_path)
    path = write(tmp_path / "s.toml", f'name = "t"\n[model]\npreset = "tiny-llama"\n'
                 f'[hardware]\npreset = "H100-SXM"\n[workload]\ntrace = "{trace.name}"\n')
    s = load_scenario(path)
    assert s.workload.trace == str(trace) and workload_size(s.workload) == len(ARRIVAL)
    from frontier_jax.runner import prepare, run_vectorized
    run = run_vectorized(prepare(s))
    assert run.metrics["n_finished"] == len(ARRIVAL)
    from frontier_jax.spec import scenario_from_dict, scenario_to_dict
    assert scenario_from_dict(scenario_to_dict(s), s.source) == s
    from frontier_jax.spec import with_overrides
    from frontier_jax.sweep.plan import layout_label
    assert layout_label(s).endswith(" trace")
    assert layout_label(with_overrides(s, {"workload.time_scale": 2.0})).endswith(" trace x2")
    assert layout_label(with_overrides(s, {"workload.arrival.rate": 3.0})).endswith(" rate=3")


# ---- the shipped public sample ------------------------------------------------------------


def test_the_shipped_azure_sample_is_vidurs_splitwise_conv_head() -> None:
    w = load_trace_csv(AZURE_SAMPLE)
    assert len(w) == 1000 and (w.arrival_s[1], w.prompt_tokens[0]) == (4.314579, 374)
    vidur = shared_data_root() / "vidur" / "processed_traces" / "splitwise_conv.csv"
    if not vidur.is_file():
        pytest.skip(f"{vidur} not found (set FRONTIER_SHARED_DATA)")
    ref = load_trace_csv(vidur)
    # Vidur's file subtracted float times (5.8926549999999995); ours are exact (5.892655)
    np.testing.assert_allclose(w.arrival_s, ref.arrival_s[:1000], rtol=1e-15, atol=0)
    np.testing.assert_array_equal(w.prompt_tokens, ref.prompt_tokens[:1000])
    np.testing.assert_array_equal(w.output_tokens, ref.output_tokens[:1000])


def test_an_overloaded_run_warns_once(capsys) -> None:
    from types import SimpleNamespace

    from frontier_jax.runner import _warn_overload
    s = SimpleNamespace(source="over.toml")
    arrival = np.linspace(0.1, 10.0, 600)  # 60 req/s
    _warn_overload(s, arrival, {"throughput_rps": 24.0, "queue_p50": 20.0, "e2e_p50": 30.0})
    _warn_overload(s, arrival, {"throughput_rps": 24.0, "queue_p50": 20.0, "e2e_p50": 30.0})
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "arrive at 60 req/s but the layout completes 24 req/s" in err[0]
    # a short run whose throughput trails only by the last requests' latency is not overload
    _warn_overload(s, arrival, {"throughput_rps": 40.0, "queue_p50": 0.01, "e2e_p50": 5.0})
    assert capsys.readouterr().err == ""


# ---- frontier-jax workload ----------------------------------------------------------------


def test_workload_command_summarises_and_plots(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from frontier_jax.cli import main
    from frontier_jax.workload_summary import peak_window_s

    assert [peak_window_s(d) for d in (5000, 999, 216, 0.5)] == [10.0, 5.0, 2.0, 0.005]
    png = tmp_path / "w.png"
    scenario = ROOT / "scenarios" / "azure_conv_replay.toml"
    out = CliRunner().invoke(main, ["workload", str(scenario), "--json", "--plot", str(png)])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    w = load_trace_csv(AZURE_SAMPLE)
    assert summary["requests"] == 1000 and summary["duration_s"] == w.arrival_s[-1]
    assert summary["rate_mean"] == pytest.approx(1000 / w.arrival_s[-1])
    assert summary["output_p50"] == np.median(w.output_tokens)
    assert summary["prompt_max"] == w.prompt_tokens.max()
    window = summary["rate_peak_window_s"]
    most = np.histogram(w.arrival_s, bins=np.arange(0, w.arrival_s[-1] + window, window))[0].max()
    assert summary["rate_peak"] == most / window > summary["rate_mean"]
    assert png.stat().st_size > 10_000


def test_the_shipped_azure_replay_agrees_with_the_reference() -> None:
    from helpers import agree

    s = load_scenario(ROOT / "scenarios" / "azure_conv_replay.toml")
    assert s.workload.replays_trace and s.workload.num_requests is None
    c = agree(s, 300)  # the first 300 of its 1,000 requests
    assert c["n_requests"] == 300


def test_max_qps_rescales_a_replayed_trace_like_a_rate() -> None:
    from frontier_jax.spec import with_overrides

    s = with_overrides(load_scenario(ROOT / "scenarios" / "azure_conv_replay.toml"),
                       {"workload.time_scale": 3.0})
    unit = with_overrides(s, {"workload.arrival.rate": 1.0, "workload.time_scale": 1.0})
    at7 = with_overrides(unit, {"workload.arrival.rate": 7.0})
    a1, a7 = make_workload(unit.workload, 0), make_workload(at7.workload, 0)
    np.testing.assert_allclose(a1.arrival_s / 7.0, a7.arrival_s, rtol=1e-14)
    assert len(a7) / a7.arrival_s[-1] == pytest.approx(7.0)
    raw = load_trace_csv(AZURE_SAMPLE)
    np.testing.assert_allclose(a7.arrival_s[1:] / raw.arrival_s[1:],
                               (1000 / raw.arrival_s[-1]) / 7.0, rtol=1e-12)
