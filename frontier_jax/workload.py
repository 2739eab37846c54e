"""Request arrays: arrival times (s) and prompt / output lengths (tokens), synthetic or from a
trace CSV."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

import numpy as np

from frontier_jax.spec.errors import SpecError
from frontier_jax.spec.scenario import ArrivalSpec, LengthSpec, WorkloadSpec

# Accepted trace header names (case-insensitive) for each column.
ARRIVAL_COLUMNS = ("arrival_s", "arrived_at", "arrival_time")
PROMPT_COLUMNS = ("prompt_tokens", "num_prefill_tokens", "prompt_len")
OUTPUT_COLUMNS = ("output_tokens", "num_decode_tokens", "output_len")

_INT32_MAX = np.iinfo(np.int32).max
# Longest trace line read (characters): a file without line breaks (such as /dev/zero) is
# refused instead of read into memory whole.
_MAX_LINE_CHARS = 2**20


@dataclass(frozen=True, eq=False)
class Workload:
    """N requests: `arrival_s` (float64 [N], seconds, non-decreasing, >= 0), `prompt_tokens` and
    `output_tokens` (int32 [N], >= 1). The arrays are read-only copies."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray

    def __post_init__(self) -> None:
        arrival = _frozen_array(self, "arrival_s", np.float64)
        prompt = _frozen_array(self, "prompt_tokens", np.int32)
        output = _frozen_array(self, "output_tokens", np.int32)
        if not (len(arrival) == len(prompt) == len(output)):
            raise SpecError("<Workload>", "prompt_tokens", (len(arrival), len(prompt), len(output)),
                            "arrival_s, prompt_tokens and output_tokens must have one length")
        bad = np.flatnonzero(~np.isfinite(arrival) | (arrival < 0))
        if bad.size:
            i = int(bad[0])
            raise SpecError("<Workload>", f"arrival_s[{i}]", float(arrival[i]),
                            "expected a finite time >= 0")
        bad = np.flatnonzero(np.diff(arrival) < 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise SpecError("<Workload>", f"arrival_s[{i}]", float(arrival[i]),
                            f"arrivals must not decrease (previous is {arrival[i - 1]!r})")

    def __len__(self) -> int:
        """Returns the number of requests."""
        return len(self.arrival_s)


def make_workload(spec: WorkloadSpec, seed: int) -> Workload:
    """Returns the `spec.num_requests` requests of `spec`, drawn from numpy's default_rng(seed)
    with separate sub-streams for arrivals, prompt and output lengths (so changing the rate does
    not change the lengths). When arrivals come from the trace, trace lengths are replayed row by
    row; otherwise "trace" lengths are sampled from the trace with replacement."""
    arrival_rng, prompt_rng, output_rng = np.random.default_rng(seed).spawn(3)
    replay = spec.arrival.process == "trace"
    trace = _read_trace(Path(spec.trace), need_arrival=replay) if spec.trace is not None else None
    n = spec.num_requests
    if replay and len(trace.prompt_tokens) < n:
        raise SpecError(spec.trace, "rows", len(trace.prompt_tokens),
                        f"need at least workload.num_requests = {n} when arrivals come from the trace")
    return Workload(
        arrival_s=_arrivals(spec.arrival, n, arrival_rng, trace),
        prompt_tokens=_lengths(spec.prompt, n, prompt_rng,
                               trace.prompt_tokens if trace else None, replay),
        output_tokens=_lengths(spec.output, n, output_rng,
                               trace.output_tokens if trace else None, replay),
    )


def load_trace_csv(path: str | Path) -> Workload:
    """Returns every request of the trace CSV at `path`, which needs an arrival-time column
    (seconds; one of ARRIVAL_COLUMNS), a prompt-tokens column (PROMPT_COLUMNS) and an
    output-tokens column (OUTPUT_COLUMNS); other columns are ignored. Raises SpecError naming
    the file, column and line of the first bad value."""
    trace = _read_trace(Path(path), need_arrival=True)
    return Workload(trace.arrival_s, trace.prompt_tokens, trace.output_tokens)


class _Trace(NamedTuple):
    arrival_s: np.ndarray | None
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray


def _frozen_array(obj: Workload, name: str, dtype: type) -> np.ndarray:
    """Returns field `name` of `obj` as a read-only 1-D copy of `dtype` (stored back on `obj`);
    token counts must be integers in [1, int32 max]."""
    raw = np.asarray(getattr(obj, name))
    if raw.ndim != 1:
        raise SpecError("<Workload>", name, raw.shape, "expected a 1-D array")
    if dtype is np.int32:
        if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
            raise SpecError("<Workload>", name, str(raw.dtype), "expected integer token counts")
        bad = np.flatnonzero((raw < 1) | (raw > _INT32_MAX) | (raw != np.round(raw)))
        if bad.size:
            i = int(bad[0])
            raise SpecError("<Workload>", f"{name}[{i}]", raw[i].item(),
                            "expected an integer token count >= 1")
    array = np.array(raw, dtype=dtype)
    array.setflags(write=False)
    object.__setattr__(obj, name, array)
    return array


def _arrivals(spec: ArrivalSpec, n: int, rng: np.random.Generator, trace: _Trace | None) -> np.ndarray:
    """Returns n arrival times in seconds; the first is one gap after 0 for synthetic arrivals."""
    if spec.process == "trace":
        return trace.arrival_s[:n]
    if spec.process == "poisson":
        gaps = rng.exponential(1.0 / spec.rate, size=n)
    else:
        shape = 1.0 / spec.cv**2
        gaps = rng.gamma(shape, 1.0 / (spec.rate * shape), size=n)
    with np.errstate(over="ignore"):
        arrival = np.cumsum(gaps)
    if not np.isfinite(arrival[-1]):
        raise SpecError("<WorkloadSpec>", "arrival.rate", spec.rate,
                        f"{n} arrivals at this rate overflow the clock: expected a larger rate")
    return arrival


def _lengths(
    spec: LengthSpec, n: int, rng: np.random.Generator, trace: np.ndarray | None, replay: bool
) -> np.ndarray:
    """Returns n token lengths: drawn, times spec.scale, rounded, clipped to [min, max]."""
    match spec.dist:
        case "fixed":
            raw = np.full(n, float(spec.value))
        case "uniform":
            raw = rng.integers(spec.low, spec.high, size=n, endpoint=True).astype(np.float64)
        case "lognormal":
            raw = rng.lognormal(math.log(spec.median), spec.sigma, size=n)
        case "zipf":
            ks = np.arange(spec.low, spec.high + 1, dtype=np.float64)
            weights = ks ** -spec.alpha
            raw = rng.choice(ks, size=n, p=weights / weights.sum())
        case "trace":
            raw = (trace[:n] if replay else rng.choice(trace, size=n)).astype(np.float64)
    high = _INT32_MAX if spec.max is None else spec.max
    return np.clip(np.rint(raw * spec.scale), spec.min, high).astype(np.int32)


def _read_trace(path: Path, need_arrival: bool) -> _Trace:
    """Returns the columns of a trace CSV (arrival_s None when absent and not needed); raises
    SpecError naming the file, column and line of the first problem."""
    source = str(path)
    if "\0" in source:
        raise SpecError(source, "<file>", source, "expected a file path without NUL bytes")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(_bounded_lines(f, source))
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise SpecError(source, "<file>", "", "empty file; expected a header row naming "
                                f"the columns {PROMPT_COLUMNS[0]}, {OUTPUT_COLUMNS[0]} ...")
            names = [h.strip().lower() for h in header]
            wanted = {"prompt_tokens": PROMPT_COLUMNS, "output_tokens": OUTPUT_COLUMNS}
            if need_arrival or any(a in names for a in ARRIVAL_COLUMNS):
                wanted["arrival_s"] = ARRIVAL_COLUMNS
            index: dict[str, int] = {}
            for role, aliases in wanted.items():
                found = [names.index(a) for a in aliases if a in names]
                if not found:
                    raise SpecError(source, "header", header,
                                    f"no {role} column; expected one of {', '.join(aliases)}"
                                    f"{_delimiter_hint(header)}")
                index[role] = found[0]
            columns: dict[str, list[float]] = {role: [] for role in index}
            lines: list[int] = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                lines.append(reader.line_num)
                for role, col in index.items():
                    columns[role].append(
                        _cell(row, col, role, header[col].strip(), reader.line_num, source))
    except FileNotFoundError:
        raise SpecError(source, "<file>", source, "file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SpecError(source, "<file>", str(exc), "expected a readable CSV file") from None
    except MemoryError:
        raise SpecError(source, "<file>", source, "too large to read") from None
    if not columns["prompt_tokens"]:
        raise SpecError(source, "<file>", 0, "no data rows after the header")
    arrival = columns.get("arrival_s")
    if arrival is not None:
        for i in range(1, len(arrival)):
            if arrival[i] < arrival[i - 1]:
                name = header[index["arrival_s"]].strip()
                raise SpecError(source, f"{name}[line {lines[i]}]", arrival[i],
                                f"arrivals must be sorted; the previous row has {arrival[i - 1]}")
    return _Trace(
        arrival_s=None if arrival is None else np.asarray(arrival, dtype=np.float64),
        prompt_tokens=np.asarray(columns["prompt_tokens"], dtype=np.int32),
        output_tokens=np.asarray(columns["output_tokens"], dtype=np.int32),
    )


def _bounded_lines(f: TextIO, source: str) -> Iterator[str]:
    """Yields the lines of text file `f`; raises SpecError at a line over _MAX_LINE_CHARS."""
    while True:
        line = f.readline(_MAX_LINE_CHARS + 1)
        if not line:
            return
        if len(line) > _MAX_LINE_CHARS:
            raise SpecError(source, "<file>", line[:40] + "...",
                            f"a line over {_MAX_LINE_CHARS} characters; expected a CSV file")
        yield line


def _cell(row: list[str], col: int, role: str, name: str, line: int, source: str) -> float:
    """Returns one trace value: an arrival time >= 0 (s) or a token count >= 1."""
    text = row[col].strip() if col < len(row) else ""
    try:
        value = float(text)
    except ValueError:
        raise SpecError(source, f"{name}[line {line}]", text, "expected a number") from None
    if role == "arrival_s":
        if not math.isfinite(value) or value < 0:
            raise SpecError(source, f"{name}[line {line}]", text,
                            "expected a finite time >= 0 in seconds")
    elif not (value.is_integer() and 1 <= value <= _INT32_MAX):
        raise SpecError(source, f"{name}[line {line}]", text,
                        "expected an integer token count >= 1 (at most 2**31 - 1)")
    return value


def _delimiter_hint(header: list[str]) -> str:
    """Returns a hint for a header that looks separated by something other than commas."""
    if len(header) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars"), (" ", "spaces")):
            if sep in header[0].strip():
                return f" (the header is one column: columns must be separated by commas, not {name})"
    return ""
