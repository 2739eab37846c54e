"""Workload arrays: synthetic arrivals and lengths, trace CSV parsing, the Vidur traces."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data_root

from frontier_jax.spec import ArrivalSpec, LengthSpec, SpecError, WorkloadSpec
from frontier_jax.workload import Workload, load_trace_csv, make_workload

SHARED_DATA = shared_data_root()
VIDUR_TRACES = SHARED_DATA / "vidur" / "processed_traces"


def spec(n: int = 1000, rate: float = 5.0, **arrival: object) -> WorkloadSpec:
    return WorkloadSpec(
        num_requests=n,
        arrival=ArrivalSpec(rate=rate, **arrival),
        prompt=LengthSpec("lognormal", median=512, sigma=0.8, max=4096),
        output=LengthSpec("uniform", low=10, high=300),
    )


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- synthetic ----------------------------------------------------------------------------


def test_same_seed_same_arrays_and_other_seed_differs() -> None:
    a, b, c = make_workload(spec(), 7), make_workload(spec(), 7), make_workload(spec(), 8)
    for field in ("arrival_s", "prompt_tokens", "output_tokens"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert not np.array_equal(getattr(a, field), getattr(c, field))
    assert len(a) == 1000
    assert a.arrival_s.dtype == np.float64 and a.prompt_tokens.dtype == np.int32
    assert a.arrival_s[0] > 0 and np.all(np.diff(a.arrival_s) >= 0)


def test_changing_the_rate_keeps_the_lengths() -> None:
    slow, fast = make_workload(spec(rate=2.0), 3), make_workload(spec(rate=50.0), 3)
    np.testing.assert_array_equal(slow.prompt_tokens, fast.prompt_tokens)
    np.testing.assert_array_equal(slow.output_tokens, fast.output_tokens)
    np.testing.assert_allclose(slow.arrival_s * 2.0, fast.arrival_s * 50.0, rtol=1e-12)


def test_poisson_mean_gap() -> None:
    w = make_workload(spec(n=20000, rate=4.0), 0)
    gaps = np.diff(np.concatenate([[0.0], w.arrival_s]))
    assert gaps.mean() == pytest.approx(1 / 4.0, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("cv", [0.5, 3.0])
def test_gamma_mean_and_cv(cv: float) -> None:
    w = make_workload(spec(n=20000, rate=10.0, process="gamma", cv=cv), 1)
    gaps = np.diff(np.concatenate([[0.0], w.arrival_s]))
    assert gaps.mean() == pytest.approx(0.1, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.10)


def test_length_distributions() -> None:
    def lengths(length: LengthSpec) -> np.ndarray:
        return make_workload(replace(spec(n=20000), prompt=length), 0).prompt_tokens

    assert np.all(lengths(LengthSpec("fixed", value=77)) == 77)
    uniform = lengths(LengthSpec("uniform", low=5, high=9))
    assert set(np.unique(uniform)) == {5, 6, 7, 8, 9}
    lognormal = lengths(LengthSpec("lognormal", median=300, sigma=0.5))
    assert np.median(lognormal) == pytest.approx(300, rel=0.03)
    zipf = lengths(LengthSpec("zipf", alpha=1.2, low=1, high=50))
    counts = np.bincount(zipf, minlength=51)
    assert zipf.min() >= 1 and zipf.max() <= 50 and counts.argmax() == 1
    assert counts[1] / counts[2] == pytest.approx(2**1.2, rel=0.1)
    clipped = lengths(LengthSpec("uniform", low=10, high=100, scale=2.0, min=30, max=150))
    assert clipped.min() == 30 and clipped.max() == 150 and np.all(clipped % 2 == 0)


# ---- Workload validation ------------------------------------------------------------------


@pytest.mark.parametrize(("arrays", "field"), [
    (([0.0, 2.0, 1.0], [1, 1, 1], [1, 1, 1]), "arrival_s[2]"),
    (([-1.0, 2.0, 3.0], [1, 1, 1], [1, 1, 1]), "arrival_s[0]"),
    (([0.0, 1.0, 2.0], [1, 0, 1], [1, 1, 1]), "prompt_tokens[1]"),
    (([0.0, 1.0, 2.0], [1, 1, 1], [1, 1, 2.5]), "output_tokens[2]"),
    (([0.0, 1.0], [1, 1, 1], [1, 1, 1]), "prompt_tokens"),
    (([[0.0, 1.0]], [[1, 1]], [[1, 1]]), "arrival_s"),
])
def test_workload_rejects_bad_arrays(arrays: tuple, field: str) -> None:
    with pytest.raises(SpecError, match=rf"^<Workload>: {re.escape(field)}: got "):
        Workload(*(np.asarray(a) for a in arrays))


def test_workload_arrays_are_read_only_copies() -> None:
    arrival = np.array([0.0, 1.0])
    w = Workload(arrival, [3, 4], np.array([5.0, 6.0]))
    arrival[0] = 9.0
    assert w.arrival_s[0] == 0.0 and w.output_tokens.dtype == np.int32
    with pytest.raises(ValueError):
        w.prompt_tokens[0] = 1


# ---- trace CSV ----------------------------------------------------------------------------


def test_trace_csv_with_aliases_extra_columns_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "id, Arrival_Time ,prompt_len,output_len\n"
                           "a,0.5,10,3\n\nb,0.5,20,4\nc,2.25,30,5\n")
    w = load_trace_csv(path)
    np.testing.assert_array_equal(w.arrival_s, [0.5, 0.5, 2.25])
    np.testing.assert_array_equal(w.prompt_tokens, [10, 20, 30])
    np.testing.assert_array_equal(w.output_tokens, [3, 4, 5])


@pytest.mark.parametrize(("text", "field", "hint"), [
    ("", "<file>", "empty file"),
    ("arrival_s,prompt_tokens,output_tokens\n", "<file>", "no data rows"),
    ("arrival_s,prompt,output_tokens\n0,1,1\n", "header", "num_prefill_tokens"),
    ("prompt_tokens,output_tokens\n1,1\n", "header", "arrived_at"),
    ("arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,x,1\n", r"prompt_tokens\[line 3\]",
     "expected a number"),
    ("arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,5,0\n", r"output_tokens\[line 3\]",
     "token count >= 1"),
    ("arrival_s,prompt_tokens,output_tokens\n0,-4,1\n", r"prompt_tokens\[line 2\]",
     "token count >= 1"),
    ("arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,2.5,1\n", r"prompt_tokens\[line 3\]",
     "token count >= 1"),
    ("arrival_s,prompt_tokens,output_tokens\n-1,1,1\n", r"arrival_s\[line 2\]", "time >= 0"),
    ("arrival_s,prompt_tokens,output_tokens\n0,1,1\n\n3,1,1\n2,1,1\n", r"arrival_s\[line 5\]",
     "sorted"),
    ("arrival_s,prompt_tokens,output_tokens\n0,1\n", r"output_tokens\[line 2\]",
     "expected a number"),
])
def test_bad_trace_files(tmp_path: Path, text: str, field: str, hint: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError, match=rf"^{re.escape(str(path))}: {field}: got .*{hint}") as info:
        load_trace_csv(path)
    assert "\n" not in str(info.value)


def test_missing_trace_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_trace_csv(tmp_path / "nope.csv")


def test_trace_lengths_are_sampled_and_scaled(tmp_path: Path) -> None:
    path = write(tmp_path, "num_prefill_tokens,num_decode_tokens\n100,7\n200,8\n300,9\n")
    s = WorkloadSpec(num_requests=500, arrival=ArrivalSpec(rate=1.0),
                     prompt=LengthSpec("trace"), output=LengthSpec("trace", scale=10.0, max=85),
                     trace=str(path))
    w = make_workload(s, 0)
    assert set(np.unique(w.prompt_tokens)) == {100, 200, 300}
    assert set(np.unique(w.output_tokens)) == {70, 80, 85}
    np.testing.assert_array_equal(w.prompt_tokens, make_workload(s, 0).prompt_tokens)


def test_trace_arrivals_replay_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "arrived_at,num_prefill_tokens,num_decode_tokens\n"
                           "1.0,100,7\n2.0,200,8\n4.0,300,9\n")
    s = WorkloadSpec(num_requests=2, arrival=ArrivalSpec("trace"), prompt=LengthSpec("trace"),
                     output=LengthSpec("fixed", value=5), trace=str(path))
    w = make_workload(s, 0)
    np.testing.assert_array_equal(w.arrival_s, [1.0, 2.0])
    np.testing.assert_array_equal(w.prompt_tokens, [100, 200])
    np.testing.assert_array_equal(w.output_tokens, [5, 5])
    assert len(make_workload(replace(s, num_requests=4), 0)) == 3  # all rows, and a warning
    lengths_only = write(tmp_path, "num_prefill_tokens,num_decode_tokens\n1,1\n", "l.csv")
    with pytest.raises(SpecError, match="no arrival_s column"):
        make_workload(replace(s, trace=str(lengths_only)), 0)


# ---- Vidur traces -------------------------------------------------------------------------


def vidur_trace(name: str) -> Path:
    path = VIDUR_TRACES / name
    if not path.is_file():
        pytest.skip(f"{path} not found (set FRONTIER_SHARED_DATA)")
    return path


def test_vidur_splitwise_conv_trace() -> None:
    w = load_trace_csv(vidur_trace("splitwise_conv.csv"))
    assert len(w) == 19366
    assert (w.arrival_s[0], w.prompt_tokens[0], w.output_tokens[0]) == (0.0, 374, 44)
    assert w.arrival_s[-1] == pytest.approx(3501.72, abs=0.01)


def test_vidur_arxiv_trace_feeds_length_sampling() -> None:
    path = vidur_trace("arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv")
    with pytest.raises(SpecError, match="no arrival_s column"):
        load_trace_csv(path)
    s = WorkloadSpec(num_requests=2000, arrival=ArrivalSpec(rate=3.0), prompt=LengthSpec("trace"),
                     output=LengthSpec("trace"), trace=str(path))
    w = make_workload(s, 0)
    assert w.prompt_tokens.max() <= 4054 and w.output_tokens.max() <= 4056
    assert w.prompt_tokens.mean() == pytest.approx(2588, rel=0.05)
