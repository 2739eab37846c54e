"""Fuzzing the input loaders (hypothesis): scenarios, sweep specs, config.json, trace CSVs and
hardware overrides must load or fail with one clear line, never crash or hang.

The strategies and the `attempt` / `simulate_tiny` checks here are shared with
`benchmarks/fuzz.py`, which runs them on >= 10,000 inputs; the tests run a few dozen per kind.

Every generated input is a `Case`: the main file's text (or bytes), the files it refers to, and
whether it must load (`valid`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import json
import math
import re
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontier_jax.spec import (
    HARDWARE_PRESETS,
    MODEL_PRESETS,
    SpecError,
    get_hardware,
    load_model_config,
    load_scenario,
)
from frontier_jax.spec.hardware import HARDWARE_FIELDS
from frontier_jax.sweep import expand, load_sweep, plan
from frontier_jax.workload import load_trace_csv

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"

# ==== cases, files and outcomes =============================================================


@dataclasses.dataclass
class Case:
    """One generated input: `main` (text or bytes of the file handed to the loader, or for
    hardware a (name, overrides) pair), `files` (relative name -> text or bytes, written beside
    it) and `valid` (True when the input must load)."""

    main: Any
    files: dict[str, Any] = dataclasses.field(default_factory=dict)
    valid: bool = False


@dataclasses.dataclass
class Outcome:
    """What a loader did with one input: status "ok", "error" (a clear SpecError), "unclear" (a
    SpecError that is not one line naming a file, field and value), "crash" (any other
    exception) or "hang" (stopped by the alarm); `seconds` it took; `message`; `result`."""

    status: str
    seconds: float
    message: str = ""
    result: Any = None


class _Timeout(BaseException):
    """Raised by the alarm in a loader that runs too long (BaseException: not caught by
    `except Exception` inside the code under test)."""


@contextlib.contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raises _Timeout inside the block after `seconds` (main thread only; no-op elsewhere)."""

    def fire(signum: int, frame: Any) -> None:
        raise _Timeout

    try:
        old = signal.signal(signal.SIGALRM, fire)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_MESSAGE = re.compile(r"^(?P<source>.+?): (?P<field>.+?): got .*; \S.*$")


def is_clear(err: SpecError, placeholder: str | None = None) -> bool:
    """Returns True when `err` is one line "{file}: {field}: got {value}; {allowed}" naming a
    file (not a "<placeholder>", unless it is `placeholder`: an input that is no file)."""
    msg = str(err)
    return (
        len(msg.splitlines()) == 1
        and (not err.source.startswith("<") or err.source == placeholder)
        and bool(err.allowed.strip())
        and _MESSAGE.match(msg) is not None
    )


def attempt(
    fn: Callable[[], Any],
    limit_s: float = 10.0,
    placeholder: str | None = None,
    clear: Callable[[SpecError], bool] | None = None,
    expected: type[SpecError] = SpecError,
) -> Outcome:
    """Returns the Outcome of calling `fn` (stopped after `limit_s` seconds); an `expected`
    error is clear when `clear(err)` (default `is_clear(err, placeholder)`), any other
    exception is a crash."""
    t0 = time.perf_counter()
    try:
        with alarm(limit_s):
            result = fn()
    except _Timeout:
        return Outcome("hang", time.perf_counter() - t0, f"stopped after {limit_s} s")
    except expected as e:
        ok = clear(e) if clear is not None else is_clear(e, placeholder)
        status = "error" if ok else "unclear"
        return Outcome(status, time.perf_counter() - t0, str(e))
    except Exception as e:  # noqa: BLE001  (anything else is what we are looking for)
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        return Outcome("crash", time.perf_counter() - t0, "".join(tb[-3:]).strip())
    return Outcome("ok", time.perf_counter() - t0, result=result)


def write_case(case: Case, folder: Path, main_name: str) -> Path:
    """Writes `case.main` to folder/main_name and its other files beside it; returns the main
    file's path."""
    for name, content in {**case.files, main_name: case.main}.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder / main_name


# ==== TOML text =============================================================================


def _toml_string(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v: Any) -> str:
    """Returns `v` (bool, int, float, str, date/time, list or dict) as a TOML value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_string(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def toml_text(d: dict) -> str:
    """Returns the TOML document of `d`: scalars first, then one [table] per dict value whose
    own dict values are written as [table.sub] tables (deeper ones inline)."""
    lines = [f"{_toml_string(k)} = {toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]

    def table(prefix: list[str], t: dict) -> None:
        lines.append("[" + ".".join(_toml_string(p) for p in prefix) + "]")
        subs = {k: v for k, v in t.items() if isinstance(v, dict) and len(prefix) < 2}
        for k, v in t.items():
            if k not in subs:
                lines.append(f"{_toml_string(k)} = {toml_value(v)}")
        for k, v in subs.items():
            table([*prefix, k], v)

    for k, v in d.items():
        if isinstance(v, dict):
            table([k], v)
    return "\n".join(lines) + "\n"


# ==== hostile values ========================================================================

# Any character that UTF-8 can write (no lone surrogates).
CHARS = st.characters(exclude_categories=("Cs",))

_NAMES = (
    "poisson", "gamma", "trace", "fixed", "uniform", "lognormal", "zipf", "round_robin",
    "least_outstanding", "roofline", "forest", "llama-3-8b", "tiny-llama", "H100-SXM", "h100",
    "", " ", "../../etc/passwd", "~nosuchuser_fuzz/x.csv", "/dev/zero", "nul\x00byte",
    "new\nline", "tab\tbed", "\u2028", "é", "🙂", "__import__", "None", "NaN", "1e3", "0x10",
)
_EDGE_INTS = (
    0, 1, -1, 2, 3, 7, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64,
    -(2**63), 10**100, 10**300, -(10**300),
)
_EDGE_FLOATS = (
    0.0, -0.0, 1e-320, 5e-324, 1e-300, 0.5, 1.0, 1.5, 1e300, 1.7976931348623157e308,
    math.inf, -math.inf, math.nan,
)

scalars = st.one_of(
    st.sampled_from(_EDGE_INTS),
    st.integers(-(2**70), 2**70),
    st.sampled_from(_EDGE_FLOATS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(_NAMES),
    st.text(CHARS, max_size=20),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.dates(),
    st.times(),
)
hostile = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(CHARS, max_size=8), inner, max_size=3),
    ),
    max_leaves=6,
)


def _typo(key: str, i: int) -> str:
    if not key:
        return "x"
    i %= len(key)
    return key[:i] + key[i + 1 :] if i % 2 else key[:i] + key[i] + key[i:]


def _paths(d: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: dict, max_mutations: int = 3) -> dict:
    """Returns a deep copy of `base` with 1..max_mutations mutations: a value replaced by a
    hostile one (wrong type, out of range, huge, NaN/inf, a table, unicode), a key deleted,
    renamed with a typo or an unknown key added."""
    d = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_mutations))):
        paths = _paths(d)
        action = draw(st.sampled_from(["set", "set", "set", "delete", "typo", "add"]))
        if not paths:
            action = "add"
        if action == "add":
            tables = [()] + [p for p in paths if isinstance(_get(d, p), dict)]
            where = draw(st.sampled_from(tables))
            key = draw(st.one_of(st.text(CHARS, max_size=12),
                                 st.sampled_from(["rate", "tp", "dist", "x.y", ""])))
            _get(d, where)[key] = draw(hostile)
            continue
        path = draw(st.sampled_from(paths))
        parent = _get(d, path[:-1])
        if action == "set":
            parent[path[-1]] = draw(hostile)
        elif action == "delete":
            del parent[path[-1]]
        else:
            parent[_typo(path[-1], draw(st.integers(0, 50)))] = parent.pop(path[-1])
    return d


def _get(d: dict, path: tuple) -> Any:
    for p in path:
        d = d[p]
    return d


# ==== config.json ===========================================================================


@st.composite
def valid_config(draw: st.DrawFn) -> dict:
    """Returns a consistent Hugging Face config.json dict (dense or MoE)."""
    heads = draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64]))
    kv = draw(st.sampled_from([k for k in (1, 2, 4, 8, 16, 32, 64) if heads % k == 0]))
    head_dim = draw(st.sampled_from([16, 32, 64, 128]))
    c: dict[str, Any] = {
        "hidden_size": heads * head_dim,
        "num_attention_heads": heads,
        "num_hidden_layers": draw(st.integers(1, 48)),
        "intermediate_size": draw(st.integers(1, 30000)),
        "vocab_size": draw(st.integers(1, 200000)),
    }
    if draw(st.booleans()):
        c["num_key_value_heads"] = kv
    if draw(st.booleans()):
        c["head_dim"] = head_dim
    if draw(st.booleans()):
        c["torch_dtype"] = draw(st.sampled_from(["bfloat16", "float16", "float32", "torch.float8_e4m3fn"]))
    if draw(st.booleans()):
        c["tie_word_embeddings"] = draw(st.booleans())
    if draw(st.booleans()):
        c["model_type"] = draw(st.sampled_from(["llama", "qwen2", "gpt_neox", "opt", "mixtral"]))
    if draw(st.integers(0, 3)) == 0:
        experts = draw(st.integers(2, 64))
        c[draw(st.sampled_from(["num_local_experts", "num_experts", "n_routed_experts"]))] = experts
        c["num_experts_per_tok"] = draw(st.integers(1, experts))
        if draw(st.booleans()):
            c["moe_intermediate_size"] = draw(st.integers(1, 4096))
        if draw(st.booleans()):
            c["n_shared_experts"] = draw(st.integers(1, 2))
    if draw(st.integers(0, 5)) == 0:
        c = {"model_type": "llava", "text_config": c}
    if draw(st.booleans()):
        c["_name_or_path"] = draw(st.sampled_from(["org/model", "m", ""]))
    return c


def _json_bytes(d: Any) -> str:
    return json.dumps(d, allow_nan=True, default=str)  # dates and times as strings


@st.composite
def config_cases(draw: st.DrawFn, valid: bool | None = None) -> Case:
    """Returns a config.json Case: valid, or broken (mutated values, garbage, deep nesting,
    huge numbers, not an object)."""
    config = draw(valid_config())
    if valid is None:
        valid = draw(st.booleans())
    if valid:
        return Case(_json_bytes(config), valid=True)
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        return Case(_json_bytes(draw(mutated(config))))
    if kind == 6:
        return Case(draw(st.binary(max_size=200)))
    if kind == 7:
        depth = draw(st.integers(10, 200_000))
        return Case("[" * depth + "]" * depth if draw(st.booleans()) else '{"a":' * depth + "1" + "}" * depth)
    if kind == 8:  # a number of thousands of digits (the last value of a key wins)
        digits = draw(st.integers(4000, 20_000))
        key = draw(st.sampled_from(["hidden_size", "num_hidden_layers", "vocab_size", "x"]))
        return Case(_json_bytes(config)[:-1] + f', "{key}": {"9" * digits}}}')
    text = _json_bytes(config)
    cut = draw(st.integers(0, len(text)))
    return Case(draw(st.sampled_from([text[:cut], "\ufeff" + text, "null", "[]", '"x"', "1", "NaN", text + "x"])))


# ==== trace CSV =============================================================================

_ARRIVAL_NAMES = ("arrival_s", "arrived_at", "arrival_time", "Arrival_S", " arrival_time ")
_PROMPT_NAMES = ("prompt_tokens", "num_prefill_tokens", "prompt_len", "PROMPT_TOKENS")
_OUTPUT_NAMES = ("output_tokens", "num_decode_tokens", "output_len")


@st.composite
def trace_rows(draw: st.DrawFn, min_rows: int = 1, max_rows: int = 30) -> list[tuple[float, int, int]]:
    """Returns sorted (arrival s, prompt tokens, output tokens) rows."""
    n = draw(st.integers(min_rows, max_rows))
    gaps = draw(st.lists(st.floats(0, 100, allow_nan=False), min_size=n, max_size=n))
    arrivals = [round(a, 6) for a in np.cumsum(gaps).tolist()]  # the same in any format
    prompts = draw(st.lists(st.integers(1, 4096), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 512), min_size=n, max_size=n))
    return list(zip(arrivals, prompts, outputs, strict=True))


@st.composite
def valid_trace_text(draw: st.DrawFn, min_rows: int = 1, max_rows: int = 30) -> str:
    """Returns a valid trace CSV: aliased headers, extra columns, blank lines, CRLF, BOM."""
    rows = draw(trace_rows(min_rows, max_rows))
    cols = [draw(st.sampled_from(_ARRIVAL_NAMES)), draw(st.sampled_from(_PROMPT_NAMES)),
            draw(st.sampled_from(_OUTPUT_NAMES))]
    order = draw(st.permutations(range(3)))
    extra = draw(st.booleans())
    header = [cols[i] for i in order] + (["id"] if extra else [])
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [",".join(header)]
    for k, (a, p, o) in enumerate(rows):
        vals = [repr(float(a)) if draw(st.booleans()) else f"{a:.6f}", str(p), str(o)]
        if draw(st.integers(0, 9)) == 0:
            vals[1] = f"{p}.0"
        cells = [vals[i] for i in order] + ([f"r{k}"] if extra else [])
        lines.append(",".join(cells))
        if draw(st.integers(0, 9)) == 0:
            lines.append("")
    text = nl.join(lines) + nl
    return ("\ufeff" if draw(st.integers(0, 5)) == 0 else "") + text


@st.composite
def trace_cases(draw: st.DrawFn, valid: bool | None = None) -> Case:
    """Returns a trace CSV Case: valid, or broken (missing column, negative / non-numeric /
    NaN / inf / fractional values, unsorted arrivals, empty, header only, wrong delimiter,
    binary garbage, invalid UTF-8, NUL bytes, a huge field)."""
    if valid is None:
        valid = draw(st.booleans())
    if valid:
        return Case(draw(valid_trace_text()), valid=True)
    rows = draw(trace_rows(1, 10))
    header = ["arrival_s", "prompt_tokens", "output_tokens"]
    table = [[repr(a), str(p), str(o)] for a, p, o in rows]
    kind = draw(st.integers(0, 11))
    delim = ","
    if kind == 0:
        header[draw(st.integers(0, 2))] = draw(st.sampled_from(["arrival", "prompt", "", "x"]))
    elif kind in (1, 2, 3):
        r, c = draw(st.integers(0, len(table) - 1)), draw(st.integers(0, 2))
        table[r][c] = draw(st.sampled_from(
            ["-1", "-0.5", "0", "nan", "NaN", "inf", "-inf", "1e400", "2.5", "abc", "", " ",
             "1,5", "0x10", "1e10", "4294967296", "١٢", "None", '"3"', "1_0", "9" * 400]))
    elif kind == 4 and len(table) > 1:
        table[0][0], table[-1][0] = str(rows[-1][0] + 1.0), "0"
    elif kind == 5:
        return Case(draw(st.sampled_from(["", "\n", "\n\n", ",,\n", "\ufeff"])))
    elif kind == 6:
        return Case(",".join(header) + draw(st.sampled_from(["\n", "\r\n", "\n\n,,\n"])))
    elif kind == 7:
        delim = draw(st.sampled_from([";", "\t", "|", " "]))
    elif kind == 8:
        return Case(draw(st.binary(max_size=300)))
    elif kind == 9:
        text = ",".join(header) + "\n" + "\n".join(",".join(r) for r in table) + "\n"
        return Case(text.encode("utf-8").replace(b"0", b"\xff\xfe", 1) if draw(st.booleans())
                    else text.encode("utf-8").replace(b",", b"\x00", 1))
    elif kind == 10:
        table[0][1] = "9" * draw(st.integers(100_000, 300_000))
    else:
        extra = draw(st.sampled_from(['"unterminated', "a,b,c,d,e,f", ",,", '"1""2"', "\r"]))
        table.insert(draw(st.integers(0, len(table))), [extra])
    text = delim.join(header) + "\n" + "\n".join(delim.join(r) for r in table) + "\n"
    return Case(text)


# ==== scenarios =============================================================================

_HW_ALIASES = ("H100-SXM", "h100", "A100-80G", "a100", "a800", "H800", "h200", "H200-141G",
               "a100_80g", "H100 SXM5")


@st.composite
def valid_hardware(draw: st.DrawFn) -> dict:
    """Returns a valid [hardware] table: a preset (any alias) with valid overrides, or a whole
    HardwareSpec inline."""
    values = {
        "peak_flops": st.floats(1e12, 5e15),
        "hbm_bytes": st.integers(16 * 10**9, 300 * 10**9),
        "hbm_bw": st.floats(1e11, 1e13),
        "nvlink_bw": st.floats(1e9, 1e12),
        "nvlink_latency_s": st.floats(0, 1e-4),
        "net_bw": st.floats(1e9, 1e12),
        "net_latency_s": st.floats(0, 1e-4),
        "gpus_per_node": st.integers(1, 16),
        "name": st.text(CHARS, min_size=1, max_size=10),
    }
    if draw(st.integers(0, 4)) == 0:
        return {k: draw(v) for k, v in values.items()}
    table = {"preset": draw(st.sampled_from(_HW_ALIASES))}
    for k in draw(st.lists(st.sampled_from(sorted(values)), max_size=3, unique=True)):
        table[k] = draw(values[k])
    return table


@st.composite
def valid_length(draw: st.DrawFn, trace_ok: bool, high_cap: int) -> dict:
    dists = ["fixed", "uniform", "lognormal", "zipf"] + (["trace"] if trace_ok else [])
    dist = draw(st.sampled_from(dists))
    t: dict[str, Any] = {"dist": dist}
    if dist == "fixed":
        t["value"] = draw(st.integers(1, high_cap))
    elif dist in ("uniform", "zipf"):
        low = draw(st.integers(1, high_cap))
        t["low"], t["high"] = low, draw(st.integers(low, min(high_cap, low + 2000)))
        if dist == "zipf":
            t["alpha"] = draw(st.floats(0.05, 3.0))
    elif dist == "lognormal":
        t["median"] = draw(st.floats(1.0, high_cap))
        t["sigma"] = draw(st.floats(0.0, 2.0))
    if draw(st.booleans()):
        t["scale"] = draw(st.floats(0.1, 4.0))
    if draw(st.booleans()):
        t["min"] = draw(st.integers(1, 8))
    if draw(st.booleans()):
        t["max"] = draw(st.integers(t.get("min", 1), high_cap))
    return t


@st.composite
def valid_scenario(draw: st.DrawFn) -> Case:
    """Returns a valid scenario Case: TOML text plus the config.json / trace CSV it names."""
    files: dict[str, Any] = {}
    d: dict[str, Any] = {}
    if draw(st.booleans()):
        d["name"] = draw(st.text(CHARS, min_size=1, max_size=12))
    if draw(st.booleans()):
        d["seed"] = draw(st.integers(0, 2**63 - 1))
    source = draw(st.sampled_from(["preset", "preset", "config", "inline"]))
    if source == "preset":
        preset = draw(st.sampled_from(sorted(MODEL_PRESETS)))
        d["model"] = {"preset": draw(st.sampled_from([preset, preset.upper()]))}
        heads = MODEL_PRESETS[preset].num_attention_heads
        layers = MODEL_PRESETS[preset].num_hidden_layers
        if draw(st.booleans()):
            d["model"]["vocab_size"] = draw(st.integers(1, 200_000))
    elif source == "config":
        config = draw(valid_config())
        files["cfg/config.json"] = _json_bytes(config)
        d["model"] = {"config": "cfg/config.json"}
        text = config.get("text_config", config)
        heads, layers = text["num_attention_heads"], text["num_hidden_layers"]
    else:
        heads = draw(st.sampled_from([1, 2, 4, 8, 16]))
        layers = draw(st.integers(1, 32))
        d["model"] = {
            "name": "inline", "hidden_size": heads * 64, "num_attention_heads": heads,
            "num_key_value_heads": draw(st.sampled_from([k for k in (1, 2, 4) if heads % k == 0])),
            "num_hidden_layers": layers, "intermediate_size": draw(st.integers(1, 8192)),
            "vocab_size": draw(st.integers(1, 64000)), "head_dim": 64,
        }
    d["hardware"] = draw(valid_hardware())
    if draw(st.booleans()):
        d["parallel"] = {"tp": draw(st.sampled_from([t for t in (1, 2, 4, 8) if heads % t == 0])),
                         "pp": draw(st.integers(1, min(layers, 4)))}
    if draw(st.booleans()):
        seqs = draw(st.integers(1, 512))
        d["scheduler"] = {"max_num_seqs": seqs,
                          "max_num_batched_tokens": draw(st.integers(max(seqs, 16), 16384)),
                          "chunked_prefill": draw(st.booleans()),
                          "block_size": draw(st.sampled_from([1, 8, 16, 32])),
                          "gpu_memory_utilization": draw(st.floats(0.05, 1.0))}
    if draw(st.booleans()):
        d["cluster"] = {"replicas": draw(st.integers(1, 4)),
                        "router": draw(st.sampled_from(["round_robin", "least_outstanding"]))}
    n = draw(st.integers(1, 20))
    use_trace = draw(st.integers(0, 3)) == 0
    workload: dict[str, Any] = {"num_requests": n}
    if use_trace:
        files["data/trace.csv"] = draw(valid_trace_text(min_rows=n, max_rows=n + 5))
        workload["trace"] = "data/trace.csv"
    process = draw(st.sampled_from(["poisson", "gamma"] + (["trace"] * 2 if use_trace else [])))
    arrival: dict[str, Any] = {"process": process}
    if process != "trace":
        arrival["rate"] = draw(st.floats(0.01, 10_000.0))
    if process == "gamma":
        arrival["cv"] = draw(st.floats(0.01, 10.0))
    workload["arrival"] = arrival
    workload["prompt"] = draw(valid_length(use_trace, 4096))
    workload["output"] = draw(valid_length(use_trace, 256))
    if use_trace and "trace" not in (process, workload["prompt"]["dist"], workload["output"]["dist"]):
        workload["prompt"] = {"dist": "trace"}
    d["workload"] = workload
    if draw(st.booleans()):
        d["slo"] = {"ttft_s": draw(st.floats(1e-3, 10.0)), "tpot_s": draw(st.floats(1e-4, 1.0))}
    if draw(st.booleans()):
        d["cost"] = {"gemm_efficiency": draw(st.floats(0.05, 1.0)),
                     "memory_efficiency": draw(st.floats(0.05, 1.0)),
                     "cpu_overhead_s": draw(st.floats(0.0, 0.01))}
    if draw(st.integers(0, 4)) == 0:
        d["sim"] = {"max_steps": draw(st.integers(1, 10**7)),
                    "queue_capacity": draw(st.integers(1, 10**4))}
    # Tables as [headers] (toml_text) or, sometimes, the whole document inline.
    return Case(toml_text(d), files, valid=True)


@st.composite
def scenario_dicts(draw: st.DrawFn) -> tuple[dict, dict]:
    """Returns (scenario dict, files) of a valid scenario, for mutation."""
    import tomllib

    case = draw(valid_scenario())
    return tomllib.loads(case.main), case.files


@st.composite
def mutated_scenario(draw: st.DrawFn) -> Case:
    """Returns a mutated scenario Case: wrong types, out-of-range numbers, unknown keys,
    missing tables, unicode strings, huge ints, NaN/inf, tables where scalars belong; and
    sometimes broken referenced files."""
    d, files = draw(scenario_dicts())
    d = draw(mutated(d))
    files = dict(files)
    if "data/trace.csv" in files and draw(st.booleans()):
        files["data/trace.csv"] = draw(trace_cases(valid=False)).main
    if "cfg/config.json" in files and draw(st.booleans()):
        files["cfg/config.json"] = draw(config_cases(valid=False)).main
    return Case(toml_text(d), files)


@st.composite
def raw_toml(draw: st.DrawFn) -> Case:
    """Returns a scenario Case whose text is broken TOML: garbage bytes, truncated or spliced
    text, deep nesting, integer literals of thousands of digits, invalid UTF-8, a BOM."""
    good = (SCENARIOS / "demo.toml").read_text()
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return Case(draw(st.binary(max_size=300)))
    if kind == 1:
        return Case(good[: draw(st.integers(0, len(good)))])
    if kind == 2:
        at = draw(st.integers(0, len(good)))
        return Case(good[:at] + draw(st.text(CHARS, max_size=10)) + good[at:])
    if kind == 3:
        depth = draw(st.integers(10, 100_000))
        return Case(good + "x = " + draw(st.sampled_from(["[" * depth + "]" * depth,
                                                          "{a=" * depth + "1" + "}" * depth])))
    if kind == 4:
        digits = draw(st.integers(1000, 20_000))
        return Case(good.replace("max_num_seqs = 256", "max_num_seqs = " + "9" * digits))
    if kind == 5:
        return Case(good.encode().replace(b"demo", b"d\xffmo", 1))
    if kind == 6:
        return Case("\ufeff" + good)
    return Case(draw(st.sampled_from(["", "[model\n", "a = 1\na = 2\n", "model = 1\n",
                                      "[[model]]\npreset = 'x'\n", "= 1\n", "\x00"])))


# ==== sweeps ================================================================================

_EXPR_NAMES = ("tp", "pp", "replicas", "gpus", "max_num_seqs", "max_num_batched_tokens",
               "block_size", "rate", "num_attention_heads", "hidden_size", "x", "seed")
_HOSTILE_EXPRS = (
    "10**10**10", "9**9**9**9", "2**2**2**2**2**2", "(10**308)**308", "10.0**1000",
    "__import__('os').system('true')", "().__class__.__bases__[0].__subclasses__()",
    "tp.__class__", "(lambda: 1)()", "open('/etc/passwd')", "eval('1')", "exec('x=1')",
    "[1] * 10**9", "'a' * 10**9", "1 << 10**9", "(-1) ** 0.5", "max(*[1, 2])",
    "min(tp, key=abs)", "x := 1", "yield 1", "f'{tp}'", "{1: 2}", "...", "b'x'", "1j",
    "tp if tp else 1", "not", "", " ", "\x00", "1" * 5000, "(" * 200 + "1" + ")" * 200,
    "-" * 900 + "1", "+".join(["tp"] * 400), "1/0", "tp % 0", "log2(0)", "log2(-1)",
    "int(1e308 * 10)", "float(10**400)", "round(1.5, 10**9)", "round(tp, -10**9)",
    "min()", "max(1)", "abs()", "__builtins__", "gpus ** gpus ** gpus", "tp < 'a'",
    "rate * gpus", "é + 1", "import os", "globals()", "vars()", "[x for x in range(10**9)]",
    "tp @ tp", "~tp", "tp is None", "tp in [1]", "tp ^ 1",
)


@st.composite
def expressions(draw: st.DrawFn, safe: bool) -> str:
    """Returns an expression: for `safe` only + * min max and comparisons over known names and
    small numbers (always computable); otherwise random arithmetic with any operator, big
    constants and the hostile forms of _HOSTILE_EXPRS."""
    if not safe and draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(_HOSTILE_EXPRS))
    names = ("tp", "pp", "replicas", "gpus", "max_num_seqs", "block_size")
    leaf = st.one_of(st.sampled_from(names if safe else _EXPR_NAMES),
                     st.integers(0, 64) if safe else st.integers(-(10**20), 10**20).map(str),
                     ).map(str)
    ops = ["+", "*"] if safe else ["+", "-", "*", "/", "//", "%", "**", "<", "==", "and", "or"]

    def grow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(children, st.sampled_from(ops), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
        call = st.tuples(st.sampled_from(["min", "max"] if safe else ["min", "max", "round", "int", "float", "abs", "log2"]),
                         st.lists(children, min_size=1 if not safe else 2, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})")
        return st.one_of(binary, call)

    return draw(st.recursive(leaf, grow, max_leaves=8))


_AXIS_VALUES = {
    "parallel.tp": st.sampled_from([1, 2, 4, 8]),
    "cluster.replicas": st.integers(1, 8),
    "scheduler.max_num_seqs": st.integers(1, 256),
    "scheduler.max_num_batched_tokens": st.integers(256, 16384),
    "scheduler.gpu_memory_utilization": st.floats(0.1, 1.0),
    "workload.arrival.rate": st.floats(0.1, 100.0),
    "workload.num_requests": st.integers(1, 50),
    "cluster.router": st.sampled_from(["round_robin", "least_outstanding"]),
    "seed": st.integers(0, 1000),
    "x": st.floats(0.1, 10.0),
}


@st.composite
def valid_axis(draw: st.DrawFn, name: str, mode: str) -> Any:
    values = _AXIS_VALUES[name]
    numeric = name not in ("cluster.router",)
    forms = ["list", "values"] + (["range", "log_range"] if numeric else [])
    if mode == "random":
        forms += ["choice"] + (["uniform", "log_uniform"] if numeric else [])
    form = draw(st.sampled_from(forms))
    if form == "list":
        return draw(st.lists(values, min_size=1, max_size=4))
    if form in ("values", "choice"):
        return {form: draw(st.lists(values, min_size=1, max_size=4))}
    a, b = sorted([draw(values), draw(values)])
    a, b = max(a, 1), max(b, 1)
    axis: dict[str, Any] = {form: [a, b]}
    if form in ("range", "log_range"):
        axis["num"] = draw(st.integers(1, 4))
    if isinstance(a, int):
        axis["integer"] = True
    return axis


@st.composite
def sweep_dicts(draw: st.DrawFn) -> tuple[dict, dict]:
    """Returns (valid sweep dict, files): a base scenario (shipped, by absolute or relative
    path, or a generated one beside the sweep), 1-3 axes in any form, safe derived values and
    constraints."""
    files: dict[str, Any] = {}
    base = draw(st.sampled_from(["demo", "light", "four_replicas", "generated"]))
    if base == "generated":
        case = draw(valid_scenario())
        files.update({f"b/{k}": v for k, v in case.files.items()})
        files["b/base.toml"] = case.main
        base_path = "b/base.toml"
    else:
        base_path = str(SCENARIOS / f"{base}.toml")
    mode = draw(st.sampled_from(["grid", "grid", "random"]))
    d: dict[str, Any] = {"base": base_path, "mode": mode}
    names = draw(st.lists(st.sampled_from(sorted(_AXIS_VALUES)), min_size=1, max_size=3, unique=True))
    d["axes"] = {n: draw(valid_axis(n, mode)) for n in names}
    if mode == "random":
        d["samples"] = draw(st.integers(1, 20))
    if draw(st.booleans()):
        d["seed"] = draw(st.integers(0, 2**32))
    if draw(st.booleans()):
        d["chunk_size"] = draw(st.integers(1, 128))
    if draw(st.booleans()):
        d["name"] = draw(st.text(CHARS, min_size=1, max_size=10))
    if draw(st.booleans()):
        d["derived"] = {"y": draw(expressions(safe=True))}
        if "cluster.replicas" not in d["axes"] and draw(st.booleans()):
            d["derived"]["cluster.replicas"] = draw(st.sampled_from(["1", "max(1, 8 // tp)", "2"]))
    if draw(st.booleans()):
        d["constraints"] = {"expressions": draw(st.lists(
            st.tuples(expressions(safe=True), st.sampled_from(["<=", ">=", "==", "!="]),
                      expressions(safe=True)).map(" ".join), max_size=2))}
    if base == "demo" and draw(st.integers(0, 4)) == 0:
        d["maxqps"] = {"target": draw(st.floats(0.1, 1.0)), "low": 0.5,
                       "high": draw(st.floats(1.0, 500.0)), "rounds": draw(st.integers(1, 12))}
    return d, files


@st.composite
def valid_sweep(draw: st.DrawFn) -> Case:
    d, files = draw(sweep_dicts())
    return Case(toml_text(d), files, valid=True)


@st.composite
def mutated_sweep(draw: st.DrawFn) -> Case:
    """Returns a mutated sweep Case: hostile values anywhere, hostile or random expressions in
    [derived] and [constraints], odd axis forms (huge num, NaN bounds, empty lists)."""
    d, files = draw(sweep_dicts())
    kind = draw(st.integers(0, 3))
    if kind == 0:
        d = draw(mutated(d))
    elif kind == 1:
        d.setdefault("derived", {})[draw(st.sampled_from(["y", "cluster.replicas", "seed", "z.q", "1x"]))] = (
            draw(expressions(safe=False)))
    elif kind == 2:
        d["constraints"] = {"expressions": draw(st.lists(expressions(safe=False), min_size=1, max_size=3))}
    else:
        name = draw(st.sampled_from([
            "parallel.tp", "x", "scheduler.max_num_sqs", "model", "a..b", "gpus", "", "seed",
            "workload.prompt", "hardware.preset", "hardware.hbm_bytes", "model.preset",
            "model.config", "workload.trace", "cluster.router", "workload.arrival.cv",
            "scheduler.block_size", "sim.max_steps", "min", "a b", "é"]))
        d["axes"][name] = draw(st.one_of(
            hostile,
            st.fixed_dictionaries({draw(st.sampled_from(["range", "log_range", "uniform", "log_uniform", "choice", "values", "grid"])): hostile}),
            st.fixed_dictionaries({"range": st.lists(st.sampled_from(_EDGE_FLOATS + _EDGE_INTS), min_size=0, max_size=3),
                                   "num": st.sampled_from(_EDGE_INTS), "integer": hostile}),
            st.fixed_dictionaries({"log_range": st.just([1.0, 1e308]), "num": st.integers(1, 10**7),
                                   "integer": st.booleans()}),
        ))
        if draw(st.booleans()):
            d["mode"] = "random"
            d["samples"] = draw(st.sampled_from(_EDGE_INTS))
    return Case(toml_text(d), files)


# ==== hardware overrides ====================================================================


@st.composite
def hardware_cases(draw: st.DrawFn) -> Case:
    """Returns Case((name, overrides)): preset names and aliases or anything else, and override
    tables of known and unknown fields with valid or hostile values (or not a table)."""
    name = draw(st.one_of(st.sampled_from(_HW_ALIASES + tuple(HARDWARE_PRESETS)), scalars, hostile))
    keys = st.one_of(st.sampled_from(HARDWARE_FIELDS), st.text(CHARS, max_size=10))
    overrides = draw(st.one_of(st.none(), st.dictionaries(keys, hostile, max_size=4),
                               st.dictionaries(st.sampled_from(HARDWARE_FIELDS),
                                               st.floats(1e-3, 1e15), max_size=4), hostile))
    return Case((name, overrides))


# ==== loaders per kind ======================================================================


def load_case(kind: str, case: Case, folder: Path) -> Outcome:
    """Writes `case` under `folder` and returns the Outcome of the loader of `kind` (for sweeps:
    load, then plan it when it has at most 50 configurations or expand it when at most
    2,000)."""
    if kind == "hardware":
        name, overrides = case.main
        return attempt(lambda: get_hardware(name, overrides), placeholder="<dict>")
    main = {"scenario": "s.toml", "sweep": "sweep.toml", "config": "config.json",
            "trace": "trace.csv"}[kind]
    path = write_case(case, folder, main)
    loader: Callable[[], Any] = {
        "scenario": lambda: load_scenario(path),
        "sweep": lambda: _load_and_expand(path),
        "config": lambda: load_model_config(path),
        "trace": lambda: load_trace_csv(path),
    }[kind]
    return attempt(loader)


def _load_and_expand(path: Path) -> Any:
    spec = load_sweep(path)
    size = spec.samples if spec.mode == "random" else math.prod(len(a.values) for a in spec.axes)
    if size <= 50:
        plans, _ = plan(spec)
        return spec, plans
    if size <= 2000:
        expand(spec)
    return spec, None


def simulate_tiny(scenario: Any) -> str | None:
    """Runs the reference simulator on `scenario` (its [sim] limits dropped, at most 20
    requests); returns None when every request finished exactly once or was rejected, or what
    went wrong. Raises SpecError for an infeasible scenario."""
    from frontier_jax.runner import prepare, run_reference
    from frontier_jax.spec import SimSpec

    s = dataclasses.replace(scenario, sim=SimSpec())
    assert s.workload.num_requests <= 20
    prep = prepare(s)
    out = run_reference(prep)
    res = out.result
    done = np.isfinite(np.asarray(res.finish_s))
    rejected = np.asarray(res.replica) == -2
    if bool(res.incomplete) or bool(res.overflow) or bool(res.backwards):
        return f"run flags: incomplete={res.incomplete} overflow={res.overflow} backwards={res.backwards}"
    if not np.array_equal(done, ~rejected):
        return f"finished {done.tolist()} vs rejected {rejected.tolist()}"
    if not np.array_equal(np.asarray(res.generated)[done], np.asarray(prep.params.workload.output)[done]):
        return "a finished request did not emit its output tokens"
    return None


# ==== tests =================================================================================

FUZZ = settings(max_examples=25, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def _check(kind: str, case: Case) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        out = load_case(kind, case, Path(tmp))
    assert out.status not in ("crash", "hang", "unclear"), (kind, out.status, out.message, case)
    assert out.seconds < 5.0, (kind, out.seconds, case)
    if case.valid:
        assert out.status == "ok", (kind, out.message, case)
    return out


@FUZZ
@given(valid_scenario())
def test_valid_scenarios_load(case: Case) -> None:
    _check("scenario", case)


@FUZZ
@given(st.one_of(mutated_scenario(), raw_toml()))
def test_mutated_scenarios_load_or_fail_clearly(case: Case) -> None:
    _check("scenario", case)


@settings(FUZZ, max_examples=15)
@given(valid_sweep())
def test_valid_sweeps_load(case: Case) -> None:
    _check("sweep", case)


@FUZZ
@given(mutated_sweep())
def test_mutated_sweeps_load_or_fail_clearly(case: Case) -> None:
    _check("sweep", case)


@FUZZ
@given(config_cases())
def test_config_json(case: Case) -> None:
    _check("config", case)


@FUZZ
@given(trace_cases())
def test_trace_csv(case: Case) -> None:
    _check("trace", case)


@FUZZ
@given(hardware_cases())
def test_hardware_overrides(case: Case) -> None:
    _check("hardware", case)


@settings(FUZZ, max_examples=3)
@given(valid_scenario())
def test_valid_scenarios_simulate(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = load_case("scenario", case, Path(tmp))
        try:
            problem = simulate_tiny(out.result)
        except SpecError as e:  # infeasible (weights do not fit): clear, nothing to run
            assert is_clear(e), str(e)
            return
    assert problem is None, problem


# ---- regressions: inputs that crashed, hung or gave an unclear error before ---------------


def _scenario_text(**tables: str) -> str:
    text = (SCENARIOS / "demo.toml").read_text()
    for old, new in tables.items():
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(("kind", "main", "hint"), [
    ("scenario", "x = " + "[" * 5000 + "]" * 5000, "nesting"),
    ("scenario", _scenario_text(**{"max_num_seqs = 256": "max_num_seqs = " + "9" * 5000}), "4300 digits"),
    ("scenario", _scenario_text(**{"max_num_seqs = 256": "max_num_seqs = " + "9" * 30}), "2**31 - 1"),
    ("scenario", _scenario_text(**{"rate = 20.0": "rate = " + "9" * 400}), "finite number"),
    ("scenario", _scenario_text(**{'preset = "llama-3-8b"': "preset = [1]"}), "unknown model"),
    ("scenario", _scenario_text(**{'[slo]': '"bad\\nkey" = 1\n[slo]'}), "unknown key"),
    ("scenario", _scenario_text(**{'[workload]\n': '[workload]\ntrace = "~nosuchuser_fuzz/t.csv"\n'}), "file"),
    ("scenario", _scenario_text(**{'[workload]\n': '[workload]\ntrace = "' + "a" * 5000 + '"\n'}), "file"),
    ("scenario", _scenario_text(**{'process = "poisson"': 'process = "gamma"\ncv = 1e-200'}), "cv"),
    ("scenario", _scenario_text(**{"max = 4096": "max = 99999999999"}), "2**31 - 1"),
    ("scenario", _scenario_text(**{'dist = "lognormal"\nmedian = 512\nsigma = 0.8':
                                   'dist = "zipf"\nalpha = 1.0\nlow = 1\nhigh = 2000000000'}), "zipf"),
    ("scenario", "\ufeff" + _scenario_text(**{"max_num_seqs = 256": "max_num_seqs = 0"}), ">= 1"),
    ("config", "[" * 100_000 + "]" * 100_000, "nesting"),
    ("config", '{"hidden_size": ' + "9" * 5000 + "}", "4300 digits"),
    ("config", '{"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 2, '
               '"intermediate_size": 1, "vocab_size": 10, "model_type": ["llama"]}', "model_type"),
    ("config", '{"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 2, '
               '"intermediate_size": 1, "vocab_size": 10, "torch_dtype": {"a": 1}}', "torch_dtype"),
    ("config", '{"hidden_size": 99999999999, "num_attention_heads": 1, "num_hidden_layers": 2, '
               '"intermediate_size": 1, "vocab_size": 10}', "2**31 - 1"),
    ("trace", "arrival_s;prompt_tokens;output_tokens\n0;1;1\n", "not semicolons"),
    ("trace", "arrival_s,prompt_tokens,output_tokens\nnan,1,1\n", "finite time"),
    ("trace", "arrival_s,prompt_tokens,output_tokens\n0," + "9" * 200_000 + ",1\n", "CSV"),
])
def test_regressions(kind: str, main: str, hint: str) -> None:
    out = _check(kind, Case(main))
    assert out.status == "error" and hint in out.message, out.message


@pytest.mark.parametrize("loader", [load_scenario, load_sweep, load_model_config, load_trace_csv])
@pytest.mark.parametrize("path", ["/dev/zero", "a\0b", "x" * 5000, "/", "/nonexistent/f"])
def test_odd_paths_fail_clearly(loader: Callable[[], Any], path: str) -> None:
    out = attempt(lambda: loader(path), limit_s=20.0)
    assert out.status == "error" and out.seconds < 5.0, out


def test_bom_trace_loads(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("\ufeffarrival_s,prompt_tokens,output_tokens\n0,3,4\n", encoding="utf-8")
    assert load_trace_csv(path).prompt_tokens.tolist() == [3]


_SWEEP = f'base = "{SCENARIOS / "demo.toml"}"\n[axes]\n"parallel.tp" = [1, 2]\n'


@pytest.mark.parametrize(("expr", "hint"), [
    ("10**10**10", "over 2**1024"),
    ("9**9**9**9", "over 2**1024"),
    ("'a' * 10**9", "not a number"),
    ("[1] * 10**9", "List"),
    ("1 << 10**9", "LShift"),
    ("__import__('os')", "calls allowed"),
    ("tp.__class__", "Attribute"),
    ("(lambda: 1)()", "calls allowed"),
    ("1 / (tp - 1)", "ZeroDivisionError"),
    ("log2(0)", "math domain"),
    ("round(tp, 10**9)", "digits"),
    ("-" * 900 + "1", "nest"),
    ("1" * 5000, "at most 1000 characters"),
    ("float(10**400)", "over 2**1024"),
    ("(-8) ** 0.5", "complex"),
])
def test_hostile_expressions_are_rejected_fast(expr: str, hint: str) -> None:
    for table in ("derived", "constraints"):
        key = "[derived]\ny" if table == "derived" else "[constraints]\nexpressions"
        value = _toml_string(expr) if table == "derived" else f"[{_toml_string(expr)}]"
        out = _check("sweep", Case(_SWEEP + f"{key} = {value}\n"))
        assert out.status == "error" and hint in out.message and out.seconds < 1.0, out.message


@pytest.mark.parametrize(("lines", "hint"), [
    ('"scheduler.max_num_sqs" = [1, 2]', "did you mean 'scheduler.max_num_seqs'"),
    ('"x" = { range = [0, 1e308], num = 100000000 }', "1..100000"),
    ('"x" = { range = [-1.7e308, 1.7e308], num = 3, integer = true }', None),
    ('"x" = { range = [0, inf], num = 3 }', "finite"),
    ('"x" = { values = [1], integer = "yes" }', "true or false"),
    ('"x" = { range = [1, 2], num = 2, integr = true }', "did you mean 'integer'"),
    ('"cluster.replicas" = ["a", "b"]', None),
    ('"a" = [1]\n"b" = [1]\n"c" = { range = [1, 2], num = 100000 }\n"d" = { range = [1, 2], num = 100000 }',
     "over 1000000 configurations"),
])
def test_bad_axes(lines: str, hint: str | None) -> None:
    case = Case(f'base = "{SCENARIOS / "demo.toml"}"\n[axes]\n{lines}\n')
    out = _check("sweep", case)
    if hint is not None:
        assert out.status == "error" and hint in out.message, out.message


@pytest.mark.parametrize(("extra", "hint"), [
    ("samples = 3", "only used by mode = 'random'"),
    ('mode = "random"\nsamples = 100000000000', "1..1000000"),
    ("seed = -1", "0.."),
    ("chunk_size = true", "integer"),
    ('maxqps = { target = "x" }', "finite number"),
    ("maxqps = { rounds = 1000000000 }", "1..100"),
    ('constraints = { expresions = ["tp > 1"] }', "did you mean 'expressions'"),
    ('name = { a = 1 }', "non-empty string"),
    ("slo = { ttft_s = 0.5 }", "base scenario's [slo]"),
    ('derived = { "parallel.tp" = "2" }', "also an axis"),
])
def test_bad_top_level_sweep_keys(extra: str, hint: str) -> None:
    text = f'base = "{SCENARIOS / "demo.toml"}"\n{extra}\n[axes]\n"parallel.tp" = [1, 2]\n'
    out = _check("sweep", Case(text))
    assert out.status == "error" and hint in out.message, out.message


def test_spec_error_message_stays_on_one_line_and_short() -> None:
    err = SpecError("a\nb.toml", "x\ny", "v" * 10_000, "fine")
    assert len(str(err).splitlines()) == 1 and len(str(err)) < 400
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert len(str(SpecError("f", "k", deep, "ok")).splitlines()) == 1
    assert "bits" in str(SpecError("f", "k", 10**10000, "ok"))
