"""The package's layers: no import circles, and a roofline run without the training stack."""

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "frontier_jax"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the frontier_jax modules it imports (at any level: module, function or
    class body), resolved to modules (``from pkg import name`` counts ``pkg.name`` when that
    is a module, else ``pkg``)."""
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [f"{target}.{a.name}" if f"{target}.{a.name}" in files else target
                         for a in node.names]
            else:
                continue
            deps |= {n for n in names if n in files and n != mod}
        graph[mod] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_scanner_sees_a_circle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(g) == [["a", "b", "c"]]
    graph = import_graph()
    assert "frontier_jax.contract" in graph["frontier_jax.sim.route"]
    assert "frontier_jax.cost.mlp" in graph["frontier_jax.cost.surrogate"]  # from pkg import module


def test_no_import_circles():
    assert _cycles(import_graph()) == []


def test_reference_imports_nothing_from_sim():
    graph = import_graph()
    for mod in ("frontier_jax.reference", "frontier_jax.reference.simulator",
                "frontier_jax.contract"):
        assert not {d for d in graph[mod] if d.startswith("frontier_jax.sim")}, mod


def test_a_roofline_run_leaves_the_training_stack_out():
    code = """
import sys
import numpy as np
import frontier_jax.sim, frontier_jax.cost
from frontier_jax.cost import ROOFLINE, BatchSlots, CostParams
p = CostParams(*[np.float64(x) for x in (4096, 32, 8, 128, 14336, 128256, 32, 2, 1, 0, 0, 0, 0, 0,
               1, 1, 989e12, 3.35e12, 450e9, 5e-6, 50e9, 1e-5, 8, 0.7, 0.5, 0.8, 1e-3, 5e-6)])
b = BatchSlots(np.array([512, 1]), np.array([0, 100]), np.array([False, True]),
               np.array([True, True]), np.array([True, True]))
assert float(ROOFLINE.iteration_time(b, p, np)) > 0
heavy = sorted(m for m in ("flax", "optax", "pandas", "sklearn") if m in sys.modules)
print(",".join(heavy))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"a roofline run imported {out.stdout.strip()}"


def test_loading_a_predictor_set_skips_training():
    code = """
import sys
from frontier_jax.cost.surrogate import surrogate_cost
surrogate_cost("predictors/cpu-llama-512", "cpu")
print(",".join(sorted(m for m in ("flax", "optax", "pandas", "sklearn", "frontier_jax.predict.train")
                      if m in sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PKG.parent)
    assert out.stdout.strip() == ""
