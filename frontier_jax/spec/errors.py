"""`SpecError` and the small checks that raise it.

Every spec problem is reported on one line:
``{source}: {field}: got {value!r}; {allowed}``, where `source` is the file the value came from
(or a placeholder in angle brackets such as ``<dict>`` or ``<ParallelSpec>``) and `field` is the
dotted TOML path of the value (``scheduler.max_num_seqs``).

The spec dataclasses validate themselves in ``__post_init__`` with the ``check_*`` helpers below,
naming their own fields; loaders then move the error to the file and table it came from with
`SpecError.at`.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


class SpecError(ValueError):
    """A scenario, model, hardware or workload value that is missing, of the wrong type or out of
    range. The message is one line: ``{source}: {field}: got {value!r}; {allowed}``."""

    def __init__(self, source: str, field: str, value: object, allowed: str) -> None:
        self.source = str(source)
        self.field = field
        self.value = value
        self.allowed = " ".join(str(allowed).split())
        super().__init__(
            f"{one_line(self.source)}: {one_line(str(field))}: got {short_repr(value)}; "
            f"{one_line(self.allowed)}"
        )

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, str, object, str]]:
        return (type(self), (self.source, self.field, self.value, self.allowed))

    def at(self, source: str, prefix: str = "") -> SpecError:
        """Returns this error moved to `source` with `prefix` + "." prepended to its field, when it
        still carries a placeholder source (``<...>``); an error already tied to a file (such as
        a model's config.json) is returned unchanged."""
        if not self.source.startswith("<"):
            return self
        field = f"{prefix}.{self.field}" if prefix else self.field
        return SpecError(source, field, self.value, self.allowed)


# Longest value shown in a message; longer ones are cut in the middle.
_MAX_REPR = 300
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 4, 200, 200, 200
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 12


def one_line(text: str) -> str:
    """Returns `text` with every non-printable character (newlines, tabs, control and line
    separator characters) written as its escape, so that a message stays on one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(prefix: str, key: object) -> str:
    """Returns the dotted field name of `key` inside table `prefix` (which may be ""); a key
    that is empty or holds characters other than letters, digits, '_', '-' is quoted as TOML
    quotes it (``scheduler."max seqs"``), so that it reads unambiguously in a message."""
    text = key if isinstance(key, str) else str(key)
    if not _BARE_KEY.fullmatch(text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{prefix}.{text}" if prefix else text


def short_repr(value: object) -> str:
    """Returns repr(`value`) for an error message: one line, at most about 300 characters
    (nested or long values are abbreviated with '...'), and never raising (a huge integer or a
    deeply nested list is summarised)."""
    try:
        text = repr(value)
    except Exception:  # RecursionError, int too large to print, a broken __repr__
        text = None
    if text is None or len(text) > _MAX_REPR:
        try:
            text = _REPR.repr(value)
        except Exception:
            text = f"<{type(value).__name__}>"
        if isinstance(value, int) and not isinstance(value, bool) and text.startswith("<"):
            text = f"<an integer of {value.bit_length()} bits>"
        if len(text) > _MAX_REPR:
            text = text[: _MAX_REPR - 60] + "..." + text[-40:]
    return one_line(text)


# Largest TOML / JSON spec file read (bytes): a device such as /dev/zero is refused, not read
# until memory runs out.
MAX_SPEC_FILE_BYTES = 16 * 2**20


def read_spec_text(path: Path) -> str:
    """Returns the UTF-8 text of the spec file at `path` (a leading BOM dropped); raises
    OSError, UnicodeDecodeError, or SpecError when it holds more than MAX_SPEC_FILE_BYTES."""
    if "\0" in str(path):
        raise SpecError(str(path), "<file>", str(path), "expected a file path without NUL bytes")
    with open(path, "rb") as f:
        data = f.read(MAX_SPEC_FILE_BYTES + 1)
    if len(data) > MAX_SPEC_FILE_BYTES:
        raise SpecError(str(path), "<file>", f"over {MAX_SPEC_FILE_BYTES} bytes",
                        f"expected a spec file of at most {MAX_SPEC_FILE_BYTES // 2**20} MiB")
    return data.decode("utf-8-sig")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Returns ' (did you mean 'x'?)' for the closest of `choices` to `name`, or '' if none is
    close."""
    if not isinstance(name, str) or len(name) > 200:
        return ""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of(choices: Sequence[str]) -> str:
    """Returns 'expected one of 'a', 'b'' for an error's `allowed` part."""
    return "expected one of " + ", ".join(repr(c) for c in choices)


def check_keys(
    table: Mapping[str, Any],
    allowed: Sequence[str],
    source: str,
    prefix: str,
    required: Sequence[str] = (),
) -> None:
    """Returns None; raises SpecError for a key of `table` not in `allowed` (with a "did you
    mean") or a key of `required` that is missing. `prefix` is the table's dotted path."""

    def dotted(key: str) -> str:
        return key_path(prefix, key)

    for key in table:
        if key not in allowed:
            raise SpecError(
                source, dotted(key), table[key],
                f"unknown key{did_you_mean(key, allowed)}; {one_of(allowed)}",
            )
    for key in required:
        if key not in table:
            raise SpecError(source, dotted(key), None, "required key is missing")


def check_choice(obj: object, name: str, choices: Sequence[str]) -> None:
    """Returns None; raises SpecError unless field `name` of dataclass `obj` is one of
    `choices`."""
    value = getattr(obj, name)
    if value not in choices:
        raise SpecError(_placeholder(obj), name, value, one_of(choices) + did_you_mean(value, choices))


INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def check_int(
    obj: object,
    name: str,
    minimum: int | None = None,
    optional: bool = False,
    maximum: int = INT64_MAX,
) -> None:
    """Returns None; checks that field `name` of frozen dataclass `obj` is an integer (an
    integral float is converted) in [`minimum`, `maximum`] (default maximum: 2**63 - 1), or None
    when `optional`, and raises SpecError otherwise."""
    value = getattr(obj, name)
    if value is None and optional:
        return
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        converted = int(value)
    elif isinstance(value, float) and value.is_integer():
        converted = int(value)
    else:
        raise SpecError(_placeholder(obj), name, value, "expected an integer" + _or_none(optional))
    if minimum is not None and converted < minimum:
        raise SpecError(_placeholder(obj), name, value, f"expected an integer >= {minimum}")
    if converted > maximum:
        low = "" if minimum is None else f"{minimum}.."
        raise SpecError(_placeholder(obj), name, value,
                        f"expected an integer {low}{maximum} ({_power_of_two(maximum)})")
    object.__setattr__(obj, name, converted)


def check_float(
    obj: object,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    optional: bool = False,
) -> None:
    """Returns None; checks that field `name` of frozen dataclass `obj` is a finite number in
    [low, high] (or (low, high] when `low_open`), or None when `optional`, stores it as a float
    and raises SpecError otherwise."""
    value = getattr(obj, name)
    if value is None and optional:
        return
    try:
        is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        converted = float(value) if is_number else math.nan
    except (OverflowError, ValueError, TypeError):  # an integer too large for a float
        converted = math.nan
    if not math.isfinite(converted):
        raise SpecError(_placeholder(obj), name, value, "expected a finite number" + _or_none(optional))
    too_low = low is not None and (converted <= low if low_open else converted < low)
    too_high = high is not None and converted > high
    if too_low or too_high:
        left = "(" if low_open else "["
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}]"
        raise SpecError(_placeholder(obj), name, value, f"expected a number in {left}{lo}, {hi}")
    object.__setattr__(obj, name, converted)


def check_bool(obj: object, name: str) -> None:
    """Returns None; raises SpecError unless field `name` of dataclass `obj` is true or false."""
    value = getattr(obj, name)
    if not isinstance(value, bool):
        raise SpecError(_placeholder(obj), name, value, "expected true or false")


def check_str(obj: object, name: str, optional: bool = False) -> None:
    """Returns None; raises SpecError unless field `name` of dataclass `obj` is a non-empty
    string (or None when `optional`)."""
    value = getattr(obj, name)
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise SpecError(_placeholder(obj), name, value, "expected a non-empty string" + _or_none(optional))


def _power_of_two(maximum: int) -> str:
    bits = (maximum + 1).bit_length() - 1
    return f"2**{bits} - 1" if maximum + 1 == 2**bits else f"{maximum:.3g}"


def _placeholder(obj: object) -> str:
    return f"<{type(obj).__name__}>"


def _or_none(optional: bool) -> str:
    return " or nothing" if optional else ""
