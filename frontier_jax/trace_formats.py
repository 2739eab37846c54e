"""Request traces in the project's CSV and in public formats, read to columns.

Formats (``[workload] format``; "auto", the default, tells them apart by the header or the
first character of the file):

    csv       the project's CSV: arrival_s (s), prompt_tokens, output_tokens. Vidur's processed
              traces load as they are (arrived_at, num_prefill_tokens, num_decode_tokens), as do
              the aliases in ARRIVAL_COLUMNS, PROMPT_COLUMNS and OUTPUT_COLUMNS.
    azure     the Azure LLM inference traces, 2023 and 2024: TIMESTAMP (a date-time such as
              "2023-11-16 18:15:46.6805900" or "2024-05-10 00:00:00.009930+00:00"),
              ContextTokens, GeneratedTokens. Arrivals count from the first row's timestamp.
    burstgpt  BurstGPT: Timestamp (s), Model, Request tokens, Response tokens, Total tokens,
              Log Type. Rows can be kept by Model (`trace_model`) and Log Type
              (`trace_log_type`).
    mooncake  Mooncake's JSONL: one object per line with timestamp (ms), input_length,
              output_length and hash_ids (the prompt's KV block hashes, kept as they are).

In the public formats a row with 0 output tokens is a failed request (BurstGPT marks its
failures so): such rows are dropped and counted (`drop_failed`, on by default) or refused.
Every problem is one SpecError line naming the file, the column and the line.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TextIO

import numpy as np

from frontier_jax.spec.errors import SpecError
from frontier_jax.spec.scenario import TRACE_FORMATS

# Accepted header names (case-insensitive) of the project CSV's columns.
ARRIVAL_COLUMNS = ("arrival_s", "arrived_at", "arrival_time")
PROMPT_COLUMNS = ("prompt_tokens", "num_prefill_tokens", "prompt_len")
OUTPUT_COLUMNS = ("output_tokens", "num_decode_tokens", "output_len")

# The public CSV formats' columns: role -> header name (case-insensitive).
_AZURE = {"arrival_s": "timestamp", "prompt_tokens": "contexttokens",
          "output_tokens": "generatedtokens"}
_BURSTGPT = {"arrival_s": "timestamp", "prompt_tokens": "request tokens",
             "output_tokens": "response tokens", "model": "model", "log_type": "log type"}
_MOONCAKE = {"arrival_s": "timestamp", "prompt_tokens": "input_length",
             "output_tokens": "output_length"}

INT32_MAX = np.iinfo(np.int32).max
# Longest trace line read (characters): a file without line breaks (such as /dev/zero) is
# refused instead of read into memory whole.
MAX_LINE_CHARS = 2**20

_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2})?$")


@dataclass(frozen=True)
class TraceFilter:
    """Which rows of a trace are kept: BurstGPT's `model` and `log_type` (None: all), and
    whether failed rows (0 output tokens, public formats) are dropped or refused."""

    model: str | None = None
    log_type: str | None = None
    drop_failed: bool = True


@dataclass(frozen=True, eq=False)
class TraceColumns:
    """One trace file's kept rows: `arrival_s` (float64 seconds, sorted; None for a lengths-only
    CSV), `prompt_tokens` and `output_tokens` (int32 >= 1), `hash_ids` (Mooncake's block hashes
    per row, else None), `format` (the one read), `dropped` (failed rows left out)."""

    arrival_s: np.ndarray | None
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    format: str
    hash_ids: tuple[tuple[int, ...], ...] | None = None
    dropped: int = 0

    def __post_init__(self) -> None:
        for a in (self.arrival_s, self.prompt_tokens, self.output_tokens):
            if a is not None:
                a.setflags(write=False)  # cached and shared: never changed in place

    def __len__(self) -> int:
        return len(self.prompt_tokens)


def read_trace(path: str | Path, fmt: str = "auto", keep: TraceFilter = TraceFilter(),
               need_arrival: bool = True) -> TraceColumns:
    """Returns the kept rows of the trace at `path` in format `fmt` (TRACE_FORMATS). A file
    read once is cached while its size and modification time stay the same, so a sweep of
    many configurations on one trace reads it once. Raises SpecError naming the file, column
    and line of the first problem."""
    source = str(path)
    if "\0" in source:
        raise SpecError(source, "<file>", source, "expected a file path without NUL bytes")
    if fmt not in TRACE_FORMATS:
        raise SpecError(source, "format", fmt, f"expected one of {', '.join(TRACE_FORMATS)}")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SpecError(source, "<file>", source, "file not found") from None
    except OSError as exc:
        raise SpecError(source, "<file>", str(exc), "expected a readable trace file (CSV or JSONL)") from None
    cols = _read_cached(source, st.st_size, st.st_mtime_ns, fmt, keep)
    if need_arrival and cols.arrival_s is None:
        _missing_arrival(source)
    return cols


@lru_cache(maxsize=8)
def _read_cached(source: str, _size: int, _mtime: int, fmt: str, keep: TraceFilter) -> TraceColumns:
    try:
        with open(source, newline="", encoding="utf-8-sig") as f:
            lines = _bounded_lines(f, source)
            if fmt == "auto":
                first = _first_text(f)
                fmt = "mooncake" if first.startswith("{") else "auto"  # CSV: by its header
            if fmt == "mooncake":
                cols = _read_jsonl(lines, source, keep)
            else:
                cols = _read_csv(csv.reader(lines), source, fmt, keep)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SpecError(source, "<file>", str(exc), "expected a readable trace file (CSV or JSONL)") from None
    except MemoryError:
        raise SpecError(source, "<file>", source, "too large to read") from None
    if (keep.model or keep.log_type) and cols.format != "burstgpt":
        raise SpecError(source, "format", cols.format,
                        "trace_model and trace_log_type filter BurstGPT traces only")
    if not len(cols):
        raise SpecError(source, "<file>", 0, "no data rows" + (
            " after the header" if not cols.dropped and not keep.model and not keep.log_type
            else f" kept ({cols.dropped} failed rows dropped; check trace_model / trace_log_type)"))
    return cols


def _first_text(f: TextIO) -> str:
    """The file's first non-blank characters (the file is rewound)."""
    head = f.read(4096)
    f.seek(0)
    return head.lstrip()


def _read_csv(reader, source: str, fmt: str, keep: TraceFilter) -> TraceColumns:
    header = next(reader, None)
    if header is None or not any(h.strip() for h in header):
        raise SpecError(source, "<file>", "", "empty file; expected a header row naming "
                        f"the columns {PROMPT_COLUMNS[0]}, {OUTPUT_COLUMNS[0]} ...")
    names = [h.strip().lower() for h in header]
    if fmt == "auto":
        fmt = _csv_format(names)
    index = _csv_columns(names, header, source, fmt)
    public = fmt != "csv"
    columns: dict[str, list] = {role: [] for role in index if role not in ("model", "log_type")}
    lines: list[int] = []
    dropped = 0
    t0: int | None = None  # the first row's time, integer nanoseconds
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        line = reader.line_num
        if fmt == "burstgpt" and not _kept(row, index, keep):
            continue
        values = {}
        for role in columns:
            col = index[role]
            name = header[col].strip()
            if role == "arrival_s" and fmt == "azure":
                ns = _datetime_ns(row, col, name, line, source)
                t0 = ns if t0 is None else t0
                values[role] = (ns - t0) / 1e9  # exact integers, one correctly rounded division
                if values[role] < 0:
                    raise SpecError(source, f"{name}[line {line}]", row[col].strip(),
                                    "arrivals must be sorted; this is before the first row")
            else:
                values[role] = _cell(row, col, role, name, line, source,
                                     failed_ok=public and role == "output_tokens")
        if values["output_tokens"] == 0:
            if not keep.drop_failed:
                raise SpecError(source, f"{header[index['output_tokens']].strip()}[line {line}]",
                                0, "a failed request (0 output tokens); drop_failed = true "
                                "leaves such rows out")
            dropped += 1
            continue
        lines.append(line)
        for role, v in values.items():
            columns[role].append(v)
    arrival = columns.get("arrival_s")
    if arrival is not None:
        _check_sorted(arrival, lines, header[index["arrival_s"]].strip(), source)
    return TraceColumns(
        arrival_s=None if arrival is None else np.asarray(arrival, dtype=np.float64),
        prompt_tokens=np.asarray(columns["prompt_tokens"], dtype=np.int32),
        output_tokens=np.asarray(columns["output_tokens"], dtype=np.int32),
        format=fmt, dropped=dropped)


def _csv_format(names: list[str]) -> str:
    """The CSV format whose columns the lowercased header `names` has."""
    for fmt, cols in (("azure", _AZURE), ("burstgpt", _BURSTGPT)):
        needed = [cols[r] for r in ("arrival_s", "prompt_tokens", "output_tokens")]
        if all(c in names for c in needed):
            return fmt
    return "csv"


def _csv_columns(names: list[str], header: list[str], source: str, fmt: str) -> dict[str, int]:
    """Column index per role for format `fmt`; a lengths-only project CSV has no arrival_s."""
    if fmt == "csv":
        wanted = {"prompt_tokens": PROMPT_COLUMNS, "output_tokens": OUTPUT_COLUMNS}
        if any(a in names for a in ARRIVAL_COLUMNS):
            wanted["arrival_s"] = ARRIVAL_COLUMNS
    else:
        spec = _AZURE if fmt == "azure" else _BURSTGPT
        wanted = {role: (name,) for role, name in spec.items()}
    index: dict[str, int] = {}
    for role, aliases in wanted.items():
        found = [names.index(a) for a in aliases if a in names]
        if not found:
            label = "column" if fmt == "csv" else f"column of format {fmt!r}"
            raise SpecError(source, "header", header,
                            f"no {role} {label}; expected one of {', '.join(aliases)}"
                            f"{_delimiter_hint(header)}")
        index[role] = found[0]
    return index


def _kept(row: list[str], index: dict[str, int], keep: TraceFilter) -> bool:
    """Whether a BurstGPT row passes the Model / Log Type filters (case-insensitive)."""
    for role, want in (("model", keep.model), ("log_type", keep.log_type)):
        if want is not None:
            col = index[role]
            if col >= len(row) or row[col].strip().lower() != want.strip().lower():
                return False
    return True


def _read_jsonl(lines: Iterator[str], source: str, keep: TraceFilter) -> TraceColumns:
    arrival: list[float] = []
    prompt: list[float] = []
    output: list[float] = []
    hashes: list[tuple[int, ...]] = []
    kept: list[int] = []
    dropped = 0
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise SpecError(source, f"<line {line}>", text.strip()[:40],
                            f"expected one JSON object per line ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise SpecError(source, f"<line {line}>", text.strip()[:40],
                            "expected one JSON object per line")
        row = []
        for role, key in _MOONCAKE.items():
            if key not in obj:
                raise SpecError(source, f"{key}[line {line}]", None,
                                f"missing; a Mooncake row has {', '.join(_MOONCAKE.values())}")
            row.append(_cell([_json_text(obj[key])], 0, role, key, line, source,
                             failed_ok=role == "output_tokens"))
        ids = obj.get("hash_ids", [])
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                for i in ids):
            raise SpecError(source, f"hash_ids[line {line}]", str(ids)[:40],
                            "expected a list of integer block hashes")
        if row[2] == 0:
            if not keep.drop_failed:
                raise SpecError(source, f"output_length[line {line}]", 0,
                                "a failed request (0 output tokens); drop_failed = true "
                                "leaves such rows out")
            dropped += 1
            continue
        arrival.append(row[0] / 1000.0)  # milliseconds
        prompt.append(row[1])
        output.append(row[2])
        hashes.append(tuple(ids))
        kept.append(line)
    _check_sorted(arrival, kept, "timestamp", source)
    return TraceColumns(np.asarray(arrival, dtype=np.float64), np.asarray(prompt, dtype=np.int32),
                        np.asarray(output, dtype=np.int32), "mooncake", tuple(hashes), dropped)


def _json_text(value) -> str:
    """A JSON value as the text a CSV cell would hold (numbers only pass _cell)."""
    return "" if isinstance(value, bool) or value is None else str(value)


def _check_sorted(arrival: list[float], lines: list[int], name: str, source: str) -> None:
    for i in range(1, len(arrival)):
        if arrival[i] < arrival[i - 1]:
            raise SpecError(source, f"{name}[line {lines[i]}]", arrival[i],
                            f"arrivals must be sorted; the previous row has {arrival[i - 1]}")


def _datetime_ns(row: list[str], col: int, name: str, line: int, source: str) -> int:
    """An Azure TIMESTAMP cell as integer nanoseconds (UTC) since day 1 of year 1."""
    text = row[col].strip() if col < len(row) else ""
    m = _DATETIME.match(text)
    try:
        if m is None:
            raise ValueError
        y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
        if h > 23 or mi > 59 or sec > 60:
            raise ValueError
        frac = m.group(7) or ""
        ns = (((date(y, mo, d).toordinal() * 24 + h) * 60 + mi) * 60 + sec) * 10**9
        ns += int(frac.ljust(9, "0")) if frac else 0
        tz = m.group(8)
        if tz and tz != "Z":
            sign = -1 if tz[0] == "-" else 1
            ns -= sign * (int(tz[1:3]) * 3600 + int(tz[-2:]) * 60) * 10**9
    except ValueError:
        raise SpecError(source, f"{name}[line {line}]", text,
                        "expected a date-time such as 2023-11-16 18:15:46.68") from None
    return ns


def _bounded_lines(f: TextIO, source: str) -> Iterator[str]:
    """Yields the lines of text file `f`; raises SpecError at a line over MAX_LINE_CHARS."""
    while True:
        line = f.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if len(line) > MAX_LINE_CHARS:
            raise SpecError(source, "<file>", line[:40] + "...",
                            f"a line over {MAX_LINE_CHARS} characters; expected a trace file (CSV or JSONL)")
        yield line


def _cell(row: list[str], col: int, role: str, name: str, line: int, source: str,
          failed_ok: bool = False) -> float:
    """Returns one trace value: an arrival time >= 0 (s) or a token count >= 1 (0 too where
    `failed_ok`: a failed request, dropped or refused by the caller)."""
    text = row[col].strip() if col < len(row) else ""
    try:
        value = float(text)
    except ValueError:
        raise SpecError(source, f"{name}[line {line}]", text, "expected a number") from None
    if role == "arrival_s":
        if not math.isfinite(value) or value < 0:
            raise SpecError(source, f"{name}[line {line}]", text,
                            "expected a finite time >= 0 in seconds")
    elif not (value.is_integer() and (0 if failed_ok else 1) <= value <= INT32_MAX):
        raise SpecError(source, f"{name}[line {line}]", text,
                        "expected an integer token count >= 1 (at most 2**31 - 1)")
    return value


def _missing_arrival(source: str) -> None:
    raise SpecError(source, "header", "(lengths only)",
                    f"no arrival_s column; expected one of {', '.join(ARRIVAL_COLUMNS)}")


def _delimiter_hint(header: list[str]) -> str:
    """Returns a hint for a header that looks separated by something other than commas."""
    if len(header) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars"), (" ", "spaces")):
            if sep in header[0].strip():
                return f" (the header is one column: columns must be separated by commas, not {name})"
    return ""
