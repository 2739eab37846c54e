"""Expand a sweep spec into configurations: grid or random axes, derived values, constraints.

Expressions (derived values and constraints) are small arithmetic over names: each
axis or derived key by its last dotted component (``replicas``, ``tp``, ``rate``; the
full path with dots as underscores when the short name is ambiguous), the base
scenario's knobs and model sizes (``num_attention_heads``, ``hidden_size`` ...) and
``gpus = replicas x tp x pp``. Allowed: numbers, + - * / // % **, comparisons,
and/or/not, min, max, round, int, float, abs, log2.
"""

import ast
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from frontier_jax.spec import SpecError

FUNCS = {
    "min": min,
    "max": max,
    "round": round,
    "int": int,
    "float": float,
    "abs": abs,
    "log2": math.log2,
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
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)


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
    return {
        "replicas": s.cluster.replicas,
        "tp": s.parallel.tp,
        "pp": s.parallel.pp,
        "max_num_seqs": sc.max_num_seqs,
        "max_num_batched_tokens": sc.max_num_batched_tokens,
        "block_size": sc.block_size,
        "gpu_memory_utilization": sc.gpu_memory_utilization,
        "chunked_prefill": sc.chunked_prefill,
        "rate": s.workload.arrival.rate,
        "num_requests": s.workload.num_requests,
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
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise SpecError(source, where, expr, "a valid arithmetic expression") from None
    for node in ast.walk(tree):
        if not isinstance(node, _NODES):
            raise SpecError(
                source,
                where,
                expr,
                f"only arithmetic, comparisons and "
                f"{', '.join(FUNCS)} are allowed ({type(node).__name__})",
            )
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in FUNCS
        ):
            raise SpecError(source, where, expr, "calls allowed: " + ", ".join(FUNCS))
    return tree


def _names(tree: ast.Expression) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(FUNCS)


def check_expressions(spec) -> None:
    """Parse every derived value and constraint; unknown names raise SpecError."""
    known = set(_scenario_names(spec.base)) | set(expression_names(spec)) | {"gpus"}
    for key, expr in spec.derived:
        unknown = _names(_parse(expr, spec.source, f"derived.{key}")) - known
        if unknown:
            raise SpecError(
                spec.source,
                f"derived.{key}",
                expr,
                f"unknown name {sorted(unknown)[0]!r}; known: {', '.join(sorted(known))}",
            )
    for i, expr in enumerate(spec.constraints):
        unknown = _names(_parse(expr, spec.source, f"constraints.expressions[{i}]")) - known
        if unknown:
            raise SpecError(
                spec.source,
                f"constraints.expressions[{i}]",
                expr,
                f"unknown name {sorted(unknown)[0]!r}; known: {', '.join(sorted(known))}",
            )


def evaluate(expr: str, names: dict[str, Any]) -> Any:
    """Value of a (pre-checked) expression under ``names``."""
    return eval(
        compile(ast.parse(expr, mode="eval"), "<expr>", "eval"),  # noqa: S307
        {"__builtins__": {}, **FUNCS},
        names,
    )


def _draw(ax, rng: np.random.Generator):
    if ax.kind == "choice":
        return ax.values[int(rng.integers(len(ax.values)))]
    if ax.kind == "uniform":
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
    ns["gpus"] = ns["replicas"] * ns["tp"] * ns["pp"]
    values = dict(point)
    for key, expr in spec.derived:
        values[key] = evaluate(expr, ns)
        ns.update({s: values[f] for s, f in short.items() if f == key})
        ns["gpus"] = ns["replicas"] * ns["tp"] * ns["pp"]
    if not all(bool(evaluate(c, ns)) for c in spec.constraints):
        return None
    overrides = {k: v for k, v in values.items() if is_scenario_path(k)}
    return Config(config_id, values, overrides)


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
