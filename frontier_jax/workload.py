"""Request arrays: arrival times (s) and prompt / output lengths (tokens), synthetic or from a
trace file (:mod:`frontier_jax.trace_formats` reads the formats)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frontier_jax.notices import warn
from frontier_jax.spec.errors import SpecError
from frontier_jax.spec.scenario import LengthSpec, WorkloadSpec
from frontier_jax.trace_formats import TraceColumns, TraceFilter, read_trace

_INT32_MAX = np.iinfo(np.int32).max


@dataclass(frozen=True, eq=False)
class Workload:
    """N requests: `arrival_s` (float64 [N], seconds, non-decreasing, >= 0), `prompt_tokens` and
    `output_tokens` (int32 [N], >= 1). The arrays are read-only copies. `block_hashes`: each
    request's prompt KV block hashes where the trace has them (Mooncake), else None; kept for
    prefix caching, not used by the simulators yet."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    block_hashes: tuple[tuple[int, ...], ...] | None = None

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

        if self.block_hashes is not None and len(self.block_hashes) != len(arrival):
            raise SpecError("<Workload>", "block_hashes", len(self.block_hashes),
                            f"expected one tuple of hashes per request ({len(arrival)})")

    def __len__(self) -> int:
        """Returns the number of requests."""
        return len(self.arrival_s)


def make_workload(spec: WorkloadSpec, seed: int) -> Workload:
    """Returns the requests of `spec` (:func:`workload_size` of them), drawn from numpy's
    default_rng(seed) with separate sub-streams for arrivals, prompt and output lengths (so
    changing the rate does not change the lengths). When arrivals come from the trace, its
    rows are replayed in order (windowed, rescaled and looped as the spec says); otherwise
    "trace" lengths are sampled from the trace with replacement. Surprising but legal values
    get a warning on stderr (:mod:`frontier_jax.notices`)."""
    arrival_rng, prompt_rng, output_rng = np.random.default_rng(seed).spawn(3)
    trace = _trace_rows(spec)
    n = workload_size(spec)
    arrival = _arrivals(spec, n, arrival_rng, trace)
    prompt = _lengths(spec.prompt, n, prompt_rng, trace, "prompt_tokens", spec.replays_trace)
    output = _lengths(spec.output, n, output_rng, trace, "output_tokens", spec.replays_trace)
    hashes = None
    if spec.replays_trace and trace.hash_ids is not None:
        hashes = tuple(trace.hash_ids[i % len(trace)] for i in range(n))
    for name, part, drawn in (("prompt", spec.prompt, prompt), ("output", spec.output, output)):
        _warn_clipped(name, part, drawn, spec)
    return Workload(arrival, prompt, output, block_hashes=hashes)


def workload_size(spec: WorkloadSpec) -> int:
    """Returns how many requests `spec` makes: `num_requests`, or without it every (kept,
    windowed) row of the trace; a replayed trace shorter than `num_requests` and not looped
    gives all its rows (with a warning)."""
    if not spec.replays_trace:
        return spec.num_requests if spec.num_requests is not None else len(_trace_rows(spec))
    rows = len(_trace_rows(spec))
    if spec.num_requests is None:
        return rows
    if rows < spec.num_requests and not spec.loop:
        warn(spec.trace, "num_requests", f"{spec.num_requests} asked but the trace has {rows} "
             "rows (after its window and filters): replaying those (set loop = true to repeat)")
        return rows
    return spec.num_requests


def load_trace_csv(path: str | Path) -> Workload:
    """Returns every request of the trace at `path` (any format of
    :mod:`frontier_jax.trace_formats`), which needs arrival times. Raises SpecError naming the
    file, column and line of the first bad value."""
    t = read_trace(path)
    return Workload(t.arrival_s, t.prompt_tokens, t.output_tokens, block_hashes=t.hash_ids)


def _trace_rows(spec: WorkloadSpec) -> TraceColumns | None:
    """The trace's kept rows, cut to the spec's window when arrivals are replayed."""
    if spec.trace is None:
        return None
    keep = TraceFilter(spec.trace_model, spec.trace_log_type, spec.drop_failed)
    t = read_trace(spec.trace, spec.format, keep, need_arrival=spec.replays_trace)
    if t.dropped:
        warn(spec.trace, "<rows>", f"{t.dropped} failed requests (0 output tokens) left out")
    if not spec.replays_trace or (spec.start == 0.0 and spec.duration is None):
        return t
    end = np.inf if spec.duration is None else spec.start + spec.duration
    lo, hi = np.searchsorted(t.arrival_s, [spec.start, end], side="left")
    if lo == hi:
        raise SpecError(spec.trace, "start", spec.start,
                        f"no rows arrive in the window [{spec.start:g}, {end:g}) s; the trace "
                        f"runs from {t.arrival_s[0]:g} to {t.arrival_s[-1]:g} s")
    return TraceColumns(t.arrival_s[lo:hi] - spec.start, t.prompt_tokens[lo:hi].copy(),
                        t.output_tokens[lo:hi].copy(), t.format,
                        None if t.hash_ids is None else t.hash_ids[lo:hi])


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


def _arrivals(spec: WorkloadSpec, n: int, rng: np.random.Generator,
              trace: TraceColumns | None) -> np.ndarray:
    """Returns n arrival times in seconds; the first is one gap after 0 for synthetic arrivals."""
    a = spec.arrival
    if a.process == "trace":
        return _replayed_arrivals(spec, n, trace.arrival_s)
    if a.process == "poisson":
        gaps = rng.exponential(1.0 / a.rate, size=n)
    else:
        shape = 1.0 / a.cv**2
        gaps = rng.gamma(shape, 1.0 / (a.rate * shape), size=n)
    with np.errstate(over="ignore"):
        arrival = np.cumsum(gaps)
    if not np.isfinite(arrival[-1]):
        raise SpecError("<WorkloadSpec>", "arrival.rate", a.rate,
                        f"{n} arrivals at this rate overflow the clock: expected a larger rate")
    return arrival


def _replayed_arrivals(spec: WorkloadSpec, n: int, times: np.ndarray) -> np.ndarray:
    """The trace's first n times, looped one period per pass, then rescaled."""
    rows = len(times)
    if n > rows:  # loop: pass k is shifted by k periods
        if spec.duration is not None:
            period = spec.duration
        elif rows > 1 and times[-1] > 0:
            period = times[-1] + times[-1] / (rows - 1)
        else:
            raise SpecError(spec.trace, "loop", True, "a trace of one instant has no period to "
                            "repeat with: give workload.duration")
        k = np.arange(n) // rows
        times = times[np.arange(n) % rows] + k * period
    else:
        times = times[:n]
    if spec.arrival.rate is not None:
        if times[-1] <= 0:
            raise SpecError(spec.trace, "arrival.rate", spec.arrival.rate,
                            "the trace's requests all arrive at time 0: no rate to rescale")
        return times * ((n / times[-1]) / spec.arrival.rate)
    return times * spec.time_scale if spec.time_scale != 1.0 else times.copy()


def _lengths(spec: LengthSpec, n: int, rng: np.random.Generator, trace: TraceColumns | None,
             column: str, replay: bool) -> np.ndarray:
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
            rows = getattr(trace, column)
            raw = (rows[np.arange(n) % len(rows)] if replay else rng.choice(rows, size=n))
            raw = raw.astype(np.float64)
    high = _INT32_MAX if spec.max is None else spec.max
    return np.clip(np.rint(raw * spec.scale), spec.min, high).astype(np.int32)


def _warn_clipped(name: str, part: LengthSpec, drawn: np.ndarray, spec: WorkloadSpec) -> None:
    """Warns when `max` (or `min`) clips at least half of the drawn lengths."""
    where = spec.trace or "<workload>"
    for bound, value, what in (("max", part.max, "clips {share:.0%} of the {name} lengths to "
                                "it: the distribution is mostly above it"),
                               ("min", part.min if part.min > 1 else None,
                                "lifts {share:.0%} of the {name} lengths to it")):
        if value is None or not drawn.size:
            continue
        share = float(np.mean(drawn == value))
        if share >= 0.5:
            warn(where, f"workload.{name}.{bound}", f"{value} " + what.format(share=share, name=name))
