"""Expand a sweep spec into configurations: grid or random axes, derived values, constraints.

Expressions (derived values and constraints) are small arithmetic over names: each
axis or derived key by its last dotted component (``replicas``, ``tp``, ``rate``; the
full path with dots as underscores when the short name is ambiguous), the base
scenario's knobs and model sizes (``num_attention_heads``, ``hidden_size`` ...) and
``gpus`` (:func:`frontier_jax.spec.layout_gpus`: replicas x tp x pp x dp for the one-pool
shorthand, the sum over a [layout]'s pools of count x tp x pp x dp). With a [layout] base,
``replicas`` is every pool's instances and each pool has ``<pool>_count``, ``<pool>_tp``,
``<pool>_pp``, ``<pool>_dp``, all
following the configuration's axes and derived values. Allowed: numbers, + - * / // % **, comparisons,
and/or/not, min, max, round, int, float, abs, log2.

Expressions are computed by walking their syntax tree (never ``eval``), within bounds that
keep hostile input cheap: at most MAX_EXPR_CHARS characters and MAX_EXPR_DEPTH levels of
nesting, operands that are numbers (strings only compare), and no integer over
2**MAX_INT_BITS (``10**10**10`` is refused before it is computed). Any failure is a one-line
SpecError naming the expression's field and the configuration it failed at.
"""

import ast
import functools
import itertools
import math
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np

from frontier_jax.spec import SpecError, layout_gpus, pool_path
from frontier_jax.spec.errors import short_repr
from frontier_jax.workload import workload_size

FUNCS = {
    "min": min,
    "max": max,
    "round": round,
    "int": int,
    "float": float,
    "abs": abs,
    "log2": math.log2,
}
_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: None,  # _power: bounded
}
_UNARYOPS = {ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Not: operator.not_}
_CMPOPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Call,
    ast.And,
    ast.Or,
    *_BINOPS,
    *_UNARYOPS,
    *_CMPOPS,
)
# Limits that keep every expression cheap: its length, its nesting, the size of any integer it
# computes (bits) and the digits `round` may be asked for.
MAX_EXPR_CHARS = 1000
MAX_EXPR_DEPTH = 64
MAX_INT_BITS = 1024
_MAX_ROUND_DIGITS = 400
_ALLOWED = (
    "numbers, names, + - * / // % **, comparisons, and/or/not and the functions "
    + ", ".join(FUNCS)
)


class _Invalid(Exception):
    """An expression that cannot be evaluated; the message says why."""


@dataclass(frozen=True)
class Config:
    """One configuration of a sweep.

    config_id: position in the expansion (stable across runs of the same spec);
    values: every axis and derived value by its full name; overrides: the subset that
    sets scenario fields (dotted paths, and ``seed``).
    """

    config_id: int
    values: dict
    overrides: dict


def _scenario_names(s) -> dict[str, Any]:
    m, sc = s.model, s.scheduler
    shape = _layout_names(s, {}) if s.layout else {
        "replicas": s.cluster.replicas, "tp": s.parallel.tp, "pp": s.parallel.pp,
        "dp": s.parallel.dp}
    return {
        **shape,
        "max_num_seqs": sc.max_num_seqs,
        "max_num_batched_tokens": sc.max_num_batched_tokens,
        "block_size": sc.block_size,
        "gpu_memory_utilization": sc.gpu_memory_utilization,
        "chunked_prefill": sc.chunked_prefill,
        "rate": s.workload.arrival.rate,
        "num_requests": workload_size(s.workload),
        "seed": s.seed,
        "num_attention_heads": m.num_attention_heads,
        "num_key_value_heads": m.num_key_value_heads,
        "hidden_size": m.hidden_size,
        "num_hidden_layers": m.num_hidden_layers,
        "intermediate_size": m.intermediate_size,
        "num_experts": m.num_experts,
    }


def is_scenario_path(name: str) -> bool:
    """A dotted name (or ``seed``) sets a scenario field; anything else is a free variable."""
    return "." in name or name == "seed"


def expression_names(spec) -> dict[str, str]:
    """Expression name -> full name, for every axis and derived key."""
    full = [a.name for a in spec.axes] + [k for k, _ in spec.derived]
    short = [n.split(".")[-1] for n in full]
    out = {}
    for n, s in zip(full, short, strict=True):
        out[s if short.count(s) == 1 or n == s else n.replace(".", "_")] = n
    return out


def _parse(expr: str, source: str, where: str) -> ast.Expression:
    """Returns the syntax tree of `expr`; raises SpecError naming `where` unless it is a short
    arithmetic expression of the allowed forms."""
    if not isinstance(expr, str):
        raise SpecError(source, where, expr, "expected an expression string")
    try:
        return _parse_cached(expr)
    except _Invalid as e:
        raise SpecError(source, where, expr, str(e)) from None


@functools.lru_cache(maxsize=1024)
def _parse_cached(expr: str) -> ast.Expression:
    if len(expr) > MAX_EXPR_CHARS:
        raise _Invalid(f"expected an expression of at most {MAX_EXPR_CHARS} characters")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise _Invalid("a valid arithmetic expression") from None
    depth = {id(tree): 0}
    for node in ast.walk(tree):
        level = depth[id(node)]
        if level > MAX_EXPR_DEPTH:
            raise _Invalid(f"expressions may nest at most {MAX_EXPR_DEPTH} levels")
        for child in ast.iter_child_nodes(node):
            depth[id(child)] = level + 1
        if not isinstance(node, _NODES):
            raise _Invalid(f"only {_ALLOWED} are allowed ({type(node).__name__})")
        if isinstance(node, ast.Constant) and type(node.value) not in (int, float, bool, str):
            raise _Invalid(f"only {_ALLOWED} are allowed (constant {node.value!r})")
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in FUNCS and not node.keywords
        ):
            raise _Invalid("calls allowed: " + ", ".join(FUNCS) + " (positional arguments)")
    return tree


def _number(x: Any, what: str) -> Any:
    """Returns `x` when it is a number (bool, int or float); raises _Invalid otherwise."""
    if isinstance(x, bool | int | float | np.integer | np.floating | np.bool_):
        return x
    raise _Invalid(f"{what} is {short_repr(x)}, not a number")


def _bounded(x: Any) -> Any:
    """Returns `x` unless it is an integer over MAX_INT_BITS bits or a complex number."""
    if isinstance(x, int) and x.bit_length() > MAX_INT_BITS:
        raise _Invalid(f"an integer result is over 2**{MAX_INT_BITS}")
    if isinstance(x, complex):
        raise _Invalid("a result is a complex number (a negative number to a fractional power)")
    return x


def _power(a: Any, b: Any) -> Any:
    """Returns a ** b, refusing integer results over MAX_INT_BITS bits before computing them."""
    if isinstance(a, int | np.integer) and isinstance(b, int | np.integer) and b > 0:
        a, b = int(a), int(b)
        if abs(a) > 1 and (b > MAX_INT_BITS or (abs(a).bit_length() - 1) * b > MAX_INT_BITS):
            raise _Invalid(f"{a} ** {b} is over 2**{MAX_INT_BITS}")
    return a**b


def _call(name: str, args: list[Any]) -> Any:
    if name == "round" and len(args) == 2:
        digits = args[1]
        if not isinstance(digits, int | np.integer) or abs(digits) > _MAX_ROUND_DIGITS:
            raise _Invalid(f"round's digits must be an integer in -{_MAX_ROUND_DIGITS}..."
                           f"{_MAX_ROUND_DIGITS}")
    return FUNCS[name](*args)


def _eval(node: ast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body, names)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise _Invalid(f"unknown name {node.id!r}")
        return names[node.id]
    if isinstance(node, ast.BinOp):
        left = _number(_eval(node.left, names), "an operand")
        right = _number(_eval(node.right, names), "an operand")
        op = _BINOPS[type(node.op)] or _power
        return _bounded(op(left, right))
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, names)
        if not isinstance(node.op, ast.Not):
            _number(value, "an operand")
        return _bounded(_UNARYOPS[type(node.op)](value))
    if isinstance(node, ast.BoolOp):
        is_and = isinstance(node.op, ast.And)
        value = None
        for operand in node.values:
            value = _eval(operand, names)
            if bool(value) != is_and:
                return value
        return value
    if isinstance(node, ast.Compare):
        left = _eval(node.left, names)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, names)
            if not bool(_CMPOPS[type(op)](left, right)):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        args = [_number(_eval(a, names), f"an argument of {node.func.id}") for a in node.args]
        return _bounded(_call(node.func.id, args))
    raise _Invalid(f"only {_ALLOWED} are allowed ({type(node).__name__})")


def _names(tree: ast.Expression) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(FUNCS)


def check_expressions(spec) -> None:
    """Parse every derived value and constraint and compute them at the sweep's first point;
    unknown names, forbidden forms and values that cannot be computed raise SpecError."""
    known = set(_scenario_names(spec.base)) | set(expression_names(spec)) | {"gpus"}
    fields = [(f"derived.{key}", expr) for key, expr in spec.derived]
    fields += [(f"constraints.expressions[{i}]", e) for i, e in enumerate(spec.constraints)]
    for field, expr in fields:
        unknown = _names(_parse(expr, spec.source, field)) - known
        if unknown:
            raise SpecError(
                spec.source,
                field,
                expr,
                f"unknown name {sorted(unknown)[0]!r}; known: {', '.join(sorted(known))}",
            )
    first = next(_points(spec), None)
    if first is not None:
        config_for(spec, first)


def evaluate(expr: str, names: dict[str, Any]) -> Any:
    """Value of an expression under ``names`` (a number, or a bool for a comparison).

    The expression is checked as in :func:`check_expressions` and computed by walking its
    syntax tree (no ``eval``): operands must be numbers, integer results stay under
    2**MAX_INT_BITS (so ``10**10**10`` is refused at once) and every failure (a division by
    zero, ``log2(0)``, an unknown name, an overflow) raises a one-line SpecError whose source is
    ``<expression>``.
    """
    tree = _parse(expr, "<expression>", "<expr>")
    try:
        return _eval(tree, names)
    except _Invalid as e:
        raise SpecError("<expression>", "<expr>", expr, str(e)) from None
    except (ArithmeticError, ValueError, TypeError, RecursionError, MemoryError) as e:
        raise SpecError(
            "<expression>", "<expr>", expr, f"cannot be computed: {type(e).__name__}: {e}"
        ) from None


def _draw(ax, rng: np.random.Generator):
    if ax.kind == "choice":
        return ax.values[int(rng.integers(len(ax.values)))]
    if ax.kind == "uniform" and not math.isfinite(ax.high - ax.low):
        u = float(rng.random())  # bounds wider than the largest float: no difference taken
        x = ax.low * (1 - u) + ax.high * u
    elif ax.kind == "uniform":
        x = float(rng.uniform(ax.low, ax.high))
    else:
        x = float(math.exp(rng.uniform(math.log(ax.low), math.log(ax.high))))
    return round(x) if ax.integer else x


def _points(spec):
    if spec.mode == "grid":
        for combo in itertools.product(*(ax.values for ax in spec.axes)):
            yield dict(zip((ax.name for ax in spec.axes), combo, strict=True))
        return
    rng = np.random.default_rng(spec.seed)
    for _ in range(spec.samples):
        yield {
            ax.name: (
                _draw(ax, rng)
                if ax.kind != "values"
                else ax.values[int(rng.integers(len(ax.values)))]
            )
            for ax in spec.axes
        }


def config_for(spec, point: dict, config_id: int = 0) -> Config | None:
    """The configuration of one point (axis name -> value) with its derived values, or None
    when a constraint rejects it."""
    short = expression_names(spec)
    ns = _scenario_names(spec.base)
    ns.update({s: point[f] for s, f in short.items() if f in point})
    values = dict(point)
    _update_layout_names(spec, ns, values, short)
    for key, expr in spec.derived:
        values[key] = _evaluate_at(spec, f"derived.{key}", expr, ns, point)
        ns.update({s: values[f] for s, f in short.items() if f == key})
        _update_layout_names(spec, ns, values, short)
    for i, expr in enumerate(spec.constraints):
        if not _evaluate_at(spec, f"constraints.expressions[{i}]", expr, ns, point):
            return None
    overrides = {k: v for k, v in values.items() if is_scenario_path(k)}
    return Config(config_id, values, overrides)


_POOL_NAME_FIELDS = ("count", "tp", "pp", "dp")


def _layout_names(base, values: dict[str, Any]) -> dict[str, Any]:
    """Expression names of a [layout] base's pools, following the configuration's values:
    ``<pool>_count``, ``<pool>_tp``, ``<pool>_pp`` each, and ``replicas`` (all instances).
    (``tp`` and ``pp`` alone are left undefined: a layout has one per pool.)"""
    values = {pool_path(k): v for k, v in values.items()}  # prefill.replicas -> layout.prefill.count
    out = {f"{p.name}_{k}".replace("-", "_"): values.get(f"layout.{p.name}.{k}", getattr(p, k))
           for p in base.layout for k in _POOL_NAME_FIELDS}
    counts = [values.get(f"layout.{p.name}.count", p.count) for p in base.layout]
    if all(isinstance(c, int | float) and not isinstance(c, bool) for c in counts):
        out["replicas"] = sum(counts)
    return out


def _gpus(base, ns: dict[str, Any], values: dict[str, Any]) -> Any:
    """Returns the GPUs of the configuration so far (:func:`frontier_jax.spec.layout_gpus`),
    or None unless every factor is a number. One-pool shorthand: replicas x tp x pp by their
    expression names (with [af]: replicas x (attention x tp x pp + ffn x ffn_tp), from
    ``af.<field>`` values or the base's); a [layout] base: each pool's count x tp x pp, from the axis or derived
    value ``layout.<pool>.<field>`` when there is one, else the base's."""
    if base.layout:
        values = {pool_path(k): v for k, v in values.items()}
        pools = [tuple(values.get(f"layout.{p.name}.{k}", getattr(p, k)) for k in ("count", "tp", "pp", "dp"))
                 for p in base.layout]
    else:
        pools = [tuple(ns.get(k) for k in ("replicas", "tp", "pp", "dp"))]
        m, n, ftp = (values.get(f"af.{k}", getattr(base.af, k)) for k in ("attention", "ffn", "ffn_tp"))
        pools = [(*pools[0], m, n, ftp)]  # an AF group: dp x attention ranks, ffn x ffn_tp GPUs beside
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for f in pools for x in f):
        return None
    if not base.layout:
        r, tp, pp, dp, m, n, ftp = pools[0]
        pools = [(r, tp, pp, dp * m, n * ftp) if n > 0 else (r, tp, pp, dp)]
    try:
        return _bounded(layout_gpus(pools))
    except _Invalid:
        return None


def _update_layout_names(spec, ns: dict[str, Any], values: dict[str, Any], short: dict) -> None:
    """Recompute ``gpus`` (and, for a [layout] base, the pool names) in ``ns`` from the values
    so far; axis and derived names keep precedence."""
    if spec.base.layout:
        taken = set(short)
        ns.update({k: v for k, v in _layout_names(spec.base, values).items() if k not in taken})
    ns["gpus"] = _gpus(spec.base, ns, values)


def _evaluate_at(spec, where: str, expr: str, ns: dict[str, Any], point: dict) -> Any:
    """Returns `expr` evaluated under `ns`; a failure is reported at the spec's `where` with the
    point (axis values) it happened at."""
    try:
        value = evaluate(expr, ns)
        return bool(value) if where.startswith("constraints") else value
    except SpecError as e:
        raise SpecError(spec.source, where, expr, f"{e.allowed} (at {short_repr(point)})") from None
    except Exception as e:  # bool() of an odd value
        raise SpecError(
            spec.source, where, expr, f"cannot be computed: {e} (at {short_repr(point)})"
        ) from None


def expand(spec) -> tuple[list[Config], int]:
    """All configurations of ``spec`` that pass the constraints, and how many were dropped."""
    configs, dropped = [], 0
    for point in _points(spec):
        cfg = config_for(spec, point, len(configs))
        if cfg is None:
            dropped += 1
        else:
            configs.append(cfg)
    return configs, dropped
