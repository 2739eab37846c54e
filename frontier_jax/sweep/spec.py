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
`{ choice = [...] }` axes (with `integer = true` to round).
"""

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frontier_jax.spec import Scenario, SpecError, load_scenario
from frontier_jax.spec.errors import did_you_mean

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


def _axis(name: str, v: Any, src: str) -> Axis:
    f = f"axes.{name}"
    if isinstance(v, list):
        if not v:
            raise _err(src, f, v, "a non-empty list of values")
        return Axis(name, "values", tuple(v))
    if not isinstance(v, dict):
        raise _err(src, f, v, "a list of values or a table with one of " + ", ".join(AXIS_FORMS))
    forms = [k for k in v if k in AXIS_FORMS]
    extra = [k for k in v if k not in AXIS_FORMS + ("num", "integer")]
    if len(forms) != 1 or extra:
        bad = extra[0] if extra else forms
        hint = did_you_mean(extra[0], AXIS_FORMS) if extra else ""
        raise _err(src, f, bad, "exactly one of " + ", ".join(AXIS_FORMS) + hint)
    kind, integer = forms[0], bool(v.get("integer", False))
    arg = v[kind]
    if kind in ("values", "choice"):
        if not isinstance(arg, list) or not arg:
            raise _err(src, f"{f}.{kind}", arg, "a non-empty list")
        return Axis(name, kind, tuple(arg), integer=integer)
    if (
        not isinstance(arg, list)
        or len(arg) != 2
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in arg)
        or not arg[0] <= arg[1]
    ):
        raise _err(src, f"{f}.{kind}", arg, "[low, high] numbers with low <= high")
    low, high = float(arg[0]), float(arg[1])
    if kind.startswith("log") and low <= 0:
        raise _err(src, f"{f}.{kind}", arg, "positive bounds for a log scale")
    if kind in ("range", "log_range"):
        num = v.get("num")
        if not isinstance(num, int) or isinstance(num, bool) or num < 1:
            raise _err(src, f"{f}.num", num, "an integer >= 1 (points in the range)")
        if num == 1:
            pts = [low]
        elif kind == "range":
            pts = [low + (high - low) * i / (num - 1) for i in range(num)]
        else:
            pts = [
                math.exp(math.log(low) + (math.log(high) - math.log(low)) * i / (num - 1))
                for i in range(num)
            ]
        pts = [round(x) for x in pts] if integer else pts
        return Axis(name, "values", tuple(dict.fromkeys(pts)), integer=integer)
    return Axis(name, kind, (), low, high, integer)


def sweep_from_dict(d: dict, source: str = "<dict>", base_dir: Path | None = None) -> SweepSpec:
    """Validate a sweep table (as parsed from TOML); relative paths resolve against base_dir."""
    for k in d:
        if k not in TOP_KEYS:
            raise _err(
                source,
                k,
                d[k],
                "unknown key; allowed: " + ", ".join(TOP_KEYS) + did_you_mean(k, TOP_KEYS),
            )
    if "base" not in d or not isinstance(d["base"], str):
        raise _err(source, "base", d.get("base"), "the path of a scenario TOML file")
    base_path = Path(d["base"])
    if not base_path.is_absolute() and base_dir is not None:
        base_path = base_dir / base_path
    if not base_path.is_file():
        raise _err(source, "base", d["base"], f"no such scenario file ({base_path})")
    base = load_scenario(base_path)
    mode = d.get("mode", "grid")
    if mode not in ("grid", "random"):
        raise _err(source, "mode", mode, "expected one of 'grid', 'random'")
    axes_t = d.get("axes", {})
    if not isinstance(axes_t, dict) or not axes_t:
        raise _err(source, "axes", axes_t, "a table with at least one axis")
    axes = tuple(_axis(k, v, source) for k, v in axes_t.items())
    for ax in axes:
        if mode == "grid" and ax.kind in RANDOM_FORMS:
            raise _err(source, f"axes.{ax.name}", ax.kind, "random draws need mode = 'random'")
    samples = d.get("samples", 0)
    if mode == "random" and (not isinstance(samples, int) or samples < 1):
        raise _err(source, "samples", samples, "an integer >= 1 for mode = 'random'")
    derived_t = d.get("derived", {})
    if not isinstance(derived_t, dict) or not all(isinstance(v, str) for v in derived_t.values()):
        raise _err(source, "derived", derived_t, "a table of name = 'expression' strings")
    cons_t = d.get("constraints", {})
    exprs = cons_t.get("expressions", []) if isinstance(cons_t, dict) else None
    if not isinstance(exprs, list) or not all(isinstance(e, str) for e in exprs):
        raise _err(source, "constraints.expressions", exprs, "a list of expression strings")
    chunk = d.get("chunk_size", 64)
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise _err(source, "chunk_size", chunk, "an integer >= 1")
    seed = d.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise _err(source, "seed", seed, "an integer")
    maxqps = None
    if "maxqps" in d:
        m = d["maxqps"]
        keys = ("target", "low", "high", "rounds")
        if not isinstance(m, dict) or any(k not in keys for k in m):
            raise _err(source, "maxqps", m, "a table with keys " + ", ".join(keys))
        maxqps = MaxQPS(**m)
        if not 0 < maxqps.target <= 1:
            raise _err(source, "maxqps.target", maxqps.target, "a fraction in (0, 1]")
        if not 0 < maxqps.low < maxqps.high:
            raise _err(source, "maxqps.low", maxqps.low, "0 < low < high")
        if not isinstance(maxqps.rounds, int) or maxqps.rounds < 1:
            raise _err(source, "maxqps.rounds", maxqps.rounds, "an integer >= 1")
        if base.slo.ttft_s is None and base.slo.tpot_s is None:
            raise _err(source, "maxqps", m, "needs [slo] ttft_s and/or tpot_s in the base scenario")
    spec = SweepSpec(
        name=str(d.get("name", Path(source).stem if not source.startswith("<") else "sweep")),
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
    try:
        d = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise _err(str(path), "<file>", str(path), "no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise _err(str(path), "<toml>", str(e), "valid TOML") from None
    return sweep_from_dict(d, source=str(path), base_dir=path.parent)
