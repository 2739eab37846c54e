"""Sweep specs: a base scenario plus axes, derived values and constraints (TOML).

```toml
name = "demo"
base = "../scenarios/demo.toml"     # relative to this file
mode = "grid"                       # grid: every combination; random: `samples` draws
chunk_size = 64                     # configurations per compiled call
[axes]
"cluster.replicas" = [1, 2, 4]                                  # a list
"scheduler.max_num_batched_tokens" = { log_range = [512, 8192], num = 5, integer = true }
"workload.arrival.rate" = { range = [2.0, 20.0], num = 4 }
rate_per_gpu = [0.5, 1.0]                                        # a free variable
[derived]
"workload.arrival.rate" = "rate_per_gpu * gpus"
[constraints]
expressions = ["gpus <= 16", "num_attention_heads % tp == 0"]
[maxqps]                            # optional: max arrival rate meeting the SLOs
target = 0.9
```

Random mode also takes `{ uniform = [a, b] }`, `{ log_uniform = [a, b] }` and
`{ choice = [...] }` axes (with `integer = true` to round uniform draws).

A base scenario with a ``[layout]`` is swept through its pools: ``"layout.<pool>.count"``,
``"layout.<pool>.tp"``, ``"layout.<pool>.hardware"``, ``"layout.<pool>.scheduler.max_num_seqs"``.

Validation (one-line SpecError naming the file and field): a dotted axis or derived name must be
a scenario field (``scheduler.max_num_seqs``; typos get a "did you mean"; a pool path names a
pool of the base and one of its fields), a free variable a
Python identifier; range bounds are finite; at most MAX_AXIS_POINTS points per range axis and
MAX_CONFIGS configurations per sweep; expressions are parsed, bounded and computed at the first
configuration when the spec loads (see `frontier_jax.sweep.expand`).
"""

import keyword
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from frontier_jax.spec import (
    AFSpec,
    ArrivalSpec,
    ClusterSpec,
    CostSpec,
    HardwareSpec,
    LengthSpec,
    ModelSpec,
    MoESpec,
    ParallelSpec,
    Scenario,
    SchedulerSpec,
    SimSpec,
    SLOSpec,
    SpecError,
    WorkloadSpec,
    load_scenario,
)
from frontier_jax.spec.errors import did_you_mean, key_path
from frontier_jax.spec.scenario import pool_path, read_toml
from frontier_jax.sweep.expand import FUNCS

TOP_KEYS = (
    "name",
    "base",
    "mode",
    "samples",
    "seed",
    "chunk_size",
    "axes",
    "derived",
    "constraints",
    "maxqps",
    "slo",
)
AXIS_FORMS = ("values", "range", "log_range", "uniform", "log_uniform", "choice")
RANDOM_FORMS = ("uniform", "log_uniform", "choice")


@dataclass(frozen=True)
class Axis:
    """One swept name: a dotted scenario path or a free variable.

    kind: one of AXIS_FORMS; values: the grid values (lists and ranges) or the choices;
    low/high: bounds of a random draw; integer: round drawn or ranged values.
    """

    name: str
    kind: str
    values: tuple = ()
    low: float = 0.0
    high: float = 0.0
    integer: bool = False


@dataclass(frozen=True)
class MaxQPS:
    """Search the highest arrival rate whose SLO attainment is >= target, per configuration.

    low/high bracket the rate (requests/s); rounds of bisection (geometric midpoints).
    """

    target: float = 0.9
    low: float = 0.05
    high: float = 256.0
    rounds: int = 12


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: base scenario, axes, derived expressions, constraints."""

    name: str
    base: Scenario
    axes: tuple[Axis, ...]
    derived: tuple[tuple[str, str], ...] = ()
    constraints: tuple[str, ...] = ()
    mode: str = "grid"
    samples: int = 0
    seed: int = 0
    chunk_size: int = 64
    maxqps: MaxQPS | None = None
    source: str = "<dict>"
    raw: dict = field(default_factory=dict, compare=False, repr=False)


def _err(source: str, fieldname: str, value: Any, allowed: str) -> SpecError:
    return SpecError(source, fieldname, value, allowed)


# Bounds that keep loading and expansion fast: configurations in one sweep (grid product or
# random samples), points of one range axis, configurations per compiled call, bisection rounds.
MAX_CONFIGS = 1_000_000
MAX_AXIS_POINTS = 100_000
MAX_CHUNK_SIZE = 2**31 - 1
MAX_ROUNDS = 100

# Scenario tables and their fields, for checking dotted axis / derived names.
_SCENARIO_TABLES: dict[str, tuple[str, ...]] = {
    "model": ("preset", "config", *(f.name for f in fields(ModelSpec))),
    "hardware": ("preset", *(f.name for f in fields(HardwareSpec))),
    "workload": tuple(f.name for f in fields(WorkloadSpec)),
    "workload.arrival": tuple(f.name for f in fields(ArrivalSpec)),
    "workload.prompt": tuple(f.name for f in fields(LengthSpec)),
    "workload.output": tuple(f.name for f in fields(LengthSpec)),
    **{
        table: tuple(f.name for f in fields(cls))
        for table, cls in (
            ("parallel", ParallelSpec),
            ("scheduler", SchedulerSpec),
            ("cluster", ClusterSpec),
            ("slo", SLOSpec),
            ("cost", CostSpec),
            ("sim", SimSpec),
            ("moe", MoESpec),
            ("af", AFSpec),
        )
    },
}
SCENARIO_PATHS: tuple[str, ...] = (
    "seed",
    *(f"{table}.{name}" for table, names in _SCENARIO_TABLES.items() for name in names),
)
# Names that expressions define themselves, so no axis or derived value may take them.
_RESERVED = ("gpus", *FUNCS)
_DOTTED = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def _where(prefix: str, name: Any) -> str:
    """Returns the field name of axis / derived `name` in table `prefix` (``axes.parallel.tp``);
    an odd name is quoted (``axes."a b"``)."""
    if isinstance(name, str) and _DOTTED.fullmatch(name):
        return f"{prefix}.{name}"
    return key_path(prefix, name)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


_POOL_PATHS: tuple[str, ...] = (
    "role", "count", "tp", "pp", "dp", "ep", "hardware",
    *(f"hardware.{n}" for n in _SCENARIO_TABLES["hardware"]),
    *(f"scheduler.{f.name}" for f in fields(SchedulerSpec)),
)
# With a [layout] base these shorthand fields are the pools' own, so not sweepable.
_SHORTHAND_ONLY = ("parallel.tp", "parallel.pp", "parallel.dp", "cluster.replicas")


def _check_layout_name(name: str, src: str, where: str, base: Scenario | None) -> None:
    """Raises SpecError unless `name` (``layout.<pool>.<field>``) names a field of a pool of
    the base scenario's [layout]."""
    pools = [p.name for p in base.layout] if base is not None else []
    if base is not None and not pools:
        raise _err(src, where, name, "the base scenario has no [layout]: sweep its one pool with "
                   "'parallel.tp', 'cluster.replicas', 'scheduler.*'")
    pool, _, field = name[len("layout."):].partition(".")
    if base is not None and pool not in pools:
        raise _err(src, where, name, f"unknown pool; the base scenario's pools: {', '.join(pools)}")
    if field not in _POOL_PATHS:
        raise _err(src, where, name, f"unknown pool field{did_you_mean(field, _POOL_PATHS)}; "
                   f"expected layout.<pool>.<field>, field one of {', '.join(_POOL_PATHS[:5])}, "
                   "hardware.<field>, scheduler.<field>")


def _check_name(name: Any, src: str, where: str, base: Scenario | None = None) -> None:
    """Raises SpecError unless `name` is a scenario path (dotted, or ``seed``) that exists, or
    a free variable name usable in expressions. Paths into the layout's pools
    (``layout.<pool>.tp``) are checked against the base scenario's pools."""
    if not isinstance(name, str) or not name:
        raise _err(src, where, name, "expected a non-empty name")
    if name.startswith(("layout.", "prefill.", "decode.")):
        _check_layout_name(pool_path(name), src, where, base)
        return
    if base is not None and base.layout and name in _SHORTHAND_ONLY:
        raise _err(src, where, name, "the base scenario has a [layout]: sweep its pools' fields "
                   "(layout.<pool>.tp, layout.<pool>.count, ...)")
    if "." in name or name == "seed":
        if name not in SCENARIO_PATHS:
            raise _err(
                src,
                where,
                name,
                f"unknown scenario field{did_you_mean(name, SCENARIO_PATHS)}; expected a dotted "
                "path such as 'scheduler.max_num_seqs', or a free variable name without dots",
            )
        return
    if not name.isidentifier() or keyword.iskeyword(name) or name in _RESERVED:
        raise _err(
            src,
            where,
            name,
            "a free variable needs a Python identifier name (letters, digits, _) that is not "
            "a keyword or one of " + ", ".join(_RESERVED),
        )
    tables = {*_SCENARIO_TABLES, "layout", "kv_transfer"}
    if name in tables:  # a table's name as a free variable would set nothing
        fields_ = [p for p in SCENARIO_PATHS if p.startswith(name + ".")]
        raise _err(src, where, name, f"[{name}] is a scenario table, not a field: sweep one of its "
                   f"fields ({', '.join(repr(f) for f in fields_[:3])}, ...)")


def _range_points(kind: str, low: float, high: float, num: int) -> list[float]:
    """Returns `num` evenly spaced points from low to high (geometrically for log_range)."""
    if num == 1:
        return [low]
    if kind == "range":
        width = high - low
        if math.isfinite(width):
            return [low + width * i / (num - 1) for i in range(num)]
        # The bounds span more than the largest float: interpolate without the difference.
        return [low * (1 - i / (num - 1)) + high * (i / (num - 1)) for i in range(num)]
    return [
        math.exp(math.log(low) + (math.log(high) - math.log(low)) * i / (num - 1))
        for i in range(num)
    ]


def _axis(name: str, v: Any, src: str, base: Scenario | None = None) -> Axis:
    f = _where("axes", name)
    _check_name(name, src, f, base)
    if isinstance(v, list):
        if not v:
            raise _err(src, f, v, "a non-empty list of values")
        return Axis(name, "values", tuple(v))
    if not isinstance(v, dict):
        raise _err(src, f, v, "a list of values or a table with one of " + ", ".join(AXIS_FORMS))
    keys = AXIS_FORMS + ("num", "integer")
    forms = [k for k in v if k in AXIS_FORMS]
    extra = [k for k in v if k not in keys]
    if extra:
        raise _err(
            src, f, extra[0],
            f"unknown key{did_you_mean(extra[0], keys)}; allowed: " + ", ".join(keys),
        )
    if len(forms) != 1:
        raise _err(src, f, forms, "exactly one of " + ", ".join(AXIS_FORMS))
    kind = forms[0]
    integer = v.get("integer", False)
    if not isinstance(integer, bool):
        raise _err(src, f"{f}.integer", integer, "expected true or false")
    if "num" in v and kind not in ("range", "log_range"):
        raise _err(src, f"{f}.num", v["num"], "only used by range and log_range")
    if integer and kind in ("values", "choice"):
        raise _err(src, f"{f}.integer", integer, "only used by range, log_range and draws")
    arg = v[kind]
    if kind in ("values", "choice"):
        if not isinstance(arg, list) or not arg:
            raise _err(src, f"{f}.{kind}", arg, "a non-empty list")
        return Axis(name, kind, tuple(arg), integer=integer)
    if (
        not isinstance(arg, list)
        or len(arg) != 2
        or not all(_is_number(x) and math.isfinite(x) for x in arg)
        or not arg[0] <= arg[1]
    ):
        raise _err(src, f"{f}.{kind}", arg, "[low, high] finite numbers with low <= high")
    low, high = float(arg[0]), float(arg[1])
    if kind.startswith("log") and low <= 0:
        raise _err(src, f"{f}.{kind}", arg, "positive bounds for a log scale")
    if kind in ("range", "log_range"):
        num = v.get("num")
        if not isinstance(num, int) or isinstance(num, bool) or not 1 <= num <= MAX_AXIS_POINTS:
            raise _err(
                src, f"{f}.num", num, f"an integer 1..{MAX_AXIS_POINTS} (points in the range)"
            )
        pts = _range_points(kind, low, high, num)
        pts = [round(x) for x in pts] if integer else pts
        return Axis(name, "values", tuple(dict.fromkeys(pts)), integer=integer)
    return Axis(name, kind, (), low, high, integer)


def _check_int(d: dict, key: str, default: int, low: int, high: int, src: str, why: str = "") -> int:
    value = d.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _err(src, key, value, f"an integer {low}..{high}{why}")
    return value


def _maxqps(m: Any, base: Scenario, src: str) -> MaxQPS:
    keys = ("target", "low", "high", "rounds")
    if not isinstance(m, dict):
        raise _err(src, "maxqps", m, "a table with keys " + ", ".join(keys))
    for k in m:
        if k not in keys:
            raise _err(
                src, key_path("maxqps", k), m[k], "unknown key; allowed: " + ", ".join(keys)
                + did_you_mean(k, keys)
            )
    for k in ("target", "low", "high"):
        if k in m and not (_is_number(m[k]) and math.isfinite(m[k])):
            raise _err(src, f"maxqps.{k}", m[k], "a finite number")
    if "rounds" in m and (not isinstance(m["rounds"], int) or isinstance(m["rounds"], bool)):
        raise _err(src, "maxqps.rounds", m["rounds"], f"an integer 1..{MAX_ROUNDS}")
    maxqps = MaxQPS(**m)
    if not 0 < maxqps.target <= 1:
        raise _err(src, "maxqps.target", maxqps.target, "a fraction in (0, 1]")
    if not 0 < maxqps.low < maxqps.high:
        raise _err(src, "maxqps.low", maxqps.low, f"0 < low < high = {maxqps.high}")
    if not 1 <= maxqps.rounds <= MAX_ROUNDS:
        raise _err(src, "maxqps.rounds", maxqps.rounds, f"an integer 1..{MAX_ROUNDS}")
    if base.slo.ttft_s is None and base.slo.tpot_s is None:
        raise _err(src, "maxqps", m, "needs [slo] ttft_s and/or tpot_s in the base scenario")
    return maxqps


def _base_path(d: dict, source: str, base_dir: Path | None) -> Path:
    base = d.get("base")
    if not isinstance(base, str) or not base.strip() or "\0" in base:
        raise _err(source, "base", base, "the path of a scenario TOML file")
    base_path = Path(base)
    if not base_path.is_absolute() and base_dir is not None:
        base_path = base_dir / base_path
    try:
        found = base_path.is_file()
    except (OSError, ValueError) as e:  # a name too long for the file system
        raise _err(source, "base", base, f"the path of a scenario TOML file ({e})") from None
    if not found:
        raise _err(source, "base", base, f"no such scenario file ({base_path})")
    return base_path


def sweep_from_dict(d: dict, source: str = "<dict>", base_dir: Path | None = None) -> SweepSpec:
    """Validate a sweep table (as parsed from TOML); relative paths resolve against base_dir.
    Raises SpecError (one line naming the field) for any invalid value."""
    if not isinstance(d, dict):
        raise _err(source, "<root>", d, "a table")
    for k in d:
        if k not in TOP_KEYS:
            raise _err(
                source,
                key_path("", k),
                d[k],
                "unknown key; allowed: " + ", ".join(TOP_KEYS) + did_you_mean(k, TOP_KEYS),
            )
    name = d.get("name", Path(source).stem if not source.startswith("<") else "sweep")
    if not isinstance(name, str) or not name:
        raise _err(source, "name", name, "a non-empty string")
    base = load_scenario(_base_path(d, source, base_dir))
    mode = d.get("mode", "grid")
    if mode not in ("grid", "random") or not isinstance(mode, str):
        raise _err(source, "mode", mode, "expected one of 'grid', 'random'")
    axes_t = d.get("axes", {})
    if not isinstance(axes_t, dict) or not axes_t:
        raise _err(source, "axes", axes_t, "a table with at least one axis")
    axes = tuple(_axis(k, v, source, base) for k, v in axes_t.items())
    for ax in axes:
        if mode == "grid" and ax.kind in RANDOM_FORMS:
            raise _err(source, f"axes.{ax.name}", ax.kind, "random draws need mode = 'random'")
    if mode == "random":
        samples = _check_int(d, "samples", 0, 1, MAX_CONFIGS, source, " for mode = 'random'")
    elif "samples" in d:
        raise _err(source, "samples", d["samples"], "only used by mode = 'random'")
    else:
        samples = 0
    if mode == "grid":
        size = 1
        for ax in axes:
            size *= len(ax.values)
            if size > MAX_CONFIGS:
                raise _err(
                    source,
                    "axes",
                    [ax.name for ax in axes],
                    f"the grid has over {MAX_CONFIGS} configurations; use fewer values "
                    "or mode = 'random'",
                )
    derived_t = d.get("derived", {})
    if not isinstance(derived_t, dict) or not all(isinstance(v, str) for v in derived_t.values()):
        raise _err(source, "derived", derived_t, "a table of name = 'expression' strings")
    axis_names = {ax.name for ax in axes}
    for key in derived_t:
        _check_name(key, source, _where("derived", key), base)
        if key in axis_names:
            raise _err(
                source, _where("derived", key), derived_t[key],
                "is also an axis: give each name as an axis or a derived value, not both",
            )
    cons_t = d.get("constraints", {})
    if not isinstance(cons_t, dict):
        raise _err(source, "constraints", cons_t, "a table with expressions = [...]")
    for k in cons_t:
        if k != "expressions":
            raise _err(
                source, key_path("constraints", k), cons_t[k],
                "unknown key; allowed: expressions" + did_you_mean(k, ("expressions",)),
            )
    exprs = cons_t.get("expressions", [])
    if not isinstance(exprs, list) or not all(isinstance(e, str) for e in exprs):
        raise _err(source, "constraints.expressions", exprs, "a list of expression strings")
    chunk = _check_int(d, "chunk_size", 64, 1, MAX_CHUNK_SIZE, source)
    seed = _check_int(d, "seed", 0, 0, 2**64 - 1, source)
    maxqps = _maxqps(d["maxqps"], base, source) if "maxqps" in d else None
    if "slo" in d:  # a key sweeps once read; refused rather than silently ignored
        raise _err(
            source,
            "slo",
            d["slo"],
            "a sweep does not read [slo]: set ttft_s / tpot_s in the base scenario's [slo], "
            "or sweep them as axes 'slo.ttft_s' / 'slo.tpot_s'",
        )
    spec = SweepSpec(
        name=name,
        base=base,
        axes=axes,
        derived=tuple(derived_t.items()),
        constraints=tuple(exprs),
        mode=mode,
        samples=int(samples),
        seed=seed,
        chunk_size=chunk,
        maxqps=maxqps,
        source=source,
        raw=d,
    )
    from frontier_jax.sweep.expand import check_expressions

    check_expressions(spec)
    return spec


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep TOML file; raises SpecError (one line) on bad input."""
    path = Path(path)
    d = read_toml(path, "expected a TOML sweep file")
    return sweep_from_dict(d, source=str(path), base_dir=path.parent)
