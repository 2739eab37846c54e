"""Gradient-free search over discrete serving layouts (ask/tell, CMA-ES from ``cma``).

The optimiser knows nothing about the simulator.  The caller describes a discrete search
space (:class:`SearchSpace`: ordered axes of values plus an optional validity constraint) and
an ``evaluate`` function that scores a whole population of layouts in one call (the simulator
evaluates each population as one vmapped batch) and returns one objective per layout, NaN or
±inf for failed/infeasible ones.

How a continuous evolution strategy searches a discrete space here:

* Each axis is one coordinate of ``z`` in ``[0, 1]``, split into equal-width cells, one per
  value, in the axis's order; a value sits at the centre of its cell, so
  :meth:`SearchSpace.decode` rounds ``z`` to the nearest value and neighbouring values are
  neighbours in ``z``.
* Samples that break the constraint are resampled a few times from the same distribution;
  the ones still invalid are projected onto the nearest valid layout (Euclidean distance in
  ``z``) when the space is small enough to enumerate, and otherwise given a penalty worse than
  every score seen.
* Every distinct layout is evaluated once (cache); each generation calls ``evaluate`` at most
  once, with only the layouts that are not cached yet; the budget counts distinct evaluated
  layouts.  Cached members still inform the strategy, at no cost.
* A CMA-ES run restarts (alternately around the best layout so far and from a random point)
  when it stops by its own criteria or finds nothing new for a few generations, so a run
  collapsed onto a plateau does not spin on cached layouts.
* The last ``polish`` share of the budget goes to a local search around the best layout so
  far: whenever that share is reached and the incumbent has valid neighbours not evaluated
  yet (one cell up or down on one axis; when those are all done, two cells on one axis or
  one on each of two axes), the generation evaluates up to ``popsize`` of them (seeded
  random order) instead of a CMA-ES sample, and the best becomes the new incumbent.  A continuous
  strategy rounded to a grid tends to stop one cell short of a discrete optimum; the polish
  checks the cells next to it for a few evaluations.  With no untried neighbour left,
  CMA-ES goes on with what remains of the budget.
* ``strategy="cmaes-int"`` instead runs CMA-ES on the cell indices with pycma's own
  mixed-integer handling (LB+IC); ``"random"`` is a uniform baseline under the same rules.
* Everything random is drawn from one ``numpy.random.Generator`` seeded with ``seed`` (the
  global NumPy random state is neither used nor touched), so a run is deterministic.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Choice", "SearchSpace", "OptimizeResult", "optimize", "STRATEGIES"]

STRATEGIES = ("cmaes", "cmaes-int", "sep-cmaes", "random")

# minimal CMA-ES standard deviation per axis, in cells of that axis
_MINSTD_CELLS = 0.35
# step size of a restart around the best layout, relative to sigma0
_LOCAL_SIGMA = 0.5

Key = tuple[int, ...]

_RESERVED = {"generation", "restart", "member", "value", "evaluated", "repaired", "rank"}


# --------------------------------------------------------------------------------------------
# Search space
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One axis of the search space: a name and its ordered discrete values."""

    name: str
    values: tuple

    def __post_init__(self):
        values = tuple(self.values)
        if not values:
            raise ValueError(f"choice {self.name!r} has no values")
        object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return len(self.values)

    def index(self, value) -> int:
        for i, v in enumerate(self.values):
            if v == value:
                return i
        raise ValueError(f"{value!r} is not a value of choice {self.name!r} {self.values}")


@dataclass(frozen=True)
class SearchSpace:
    """A product of :class:`Choice` axes, restricted by ``constraint(layout) -> bool``.

    A layout is a ``dict`` ``{choice.name: value}``.  Spaces whose product of axis sizes is at
    most ``enumerate_limit`` are enumerated when needed (exact :meth:`size`, projection of
    invalid samples); larger ones never are.
    """

    choices: tuple[Choice, ...]
    constraint: Callable[[dict], bool] | None = None
    enumerate_limit: int = field(default=200_000, compare=False)

    def __post_init__(self):
        choices = tuple(self.choices)
        if not choices:
            raise ValueError("a search space needs at least one choice")
        names = [c.name for c in choices]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate choice names in {names}")
        object.__setattr__(self, "choices", choices)

    # ---- shape ----------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.choices)

    @property
    def ndim(self) -> int:
        return len(self.choices)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.choices)

    def raw_size(self) -> int:
        """Number of layouts ignoring the constraint (product of axis sizes)."""
        return math.prod(self.cardinalities)

    @property
    def enumerable(self) -> bool:
        return self.raw_size() <= self.enumerate_limit

    def size(self) -> int:
        """Number of valid layouts.

        Exact when there is no constraint or the space is enumerable; otherwise an estimate
        from 20,000 uniform samples (fixed seed), rounded.
        """
        if self.constraint is None:
            return self.raw_size()
        if self.enumerable:
            return len(self._valid_keys)
        rng = np.random.default_rng(0)
        card = np.asarray(self.cardinalities)
        n = 20_000
        idx = np.floor(rng.random((n, self.ndim)) * card).astype(int)
        ok = sum(self.is_valid_key(tuple(int(i) for i in row)) for row in idx)
        return int(round(self.raw_size() * ok / n))

    # ---- layouts <-> indices <-> z -------------------------------------------------------

    def layout_of(self, key: Sequence[int]) -> dict:
        """Layout from one index per axis."""
        return {c.name: c.values[int(i)] for c, i in zip(self.choices, key, strict=True)}

    def key_of(self, layout: dict) -> Key:
        """One index per axis from a layout (extra keys in ``layout`` are ignored)."""
        missing = [c.name for c in self.choices if c.name not in layout]
        if missing:
            raise KeyError(f"layout lacks {missing}")
        return tuple(c.index(layout[c.name]) for c in self.choices)

    def key_from_z(self, z: np.ndarray) -> Key:
        z = np.asarray(z, dtype=float).reshape(-1)
        if z.shape[0] != self.ndim:
            raise ValueError(f"z has {z.shape[0]} coordinates, space has {self.ndim} axes")
        if not np.all(np.isfinite(z)):
            raise ValueError(f"z must be finite, got {z}")
        card = np.asarray(self.cardinalities)
        idx = np.floor(np.clip(z, 0.0, 1.0) * card).astype(int)
        return tuple(int(i) for i in np.minimum(idx, card - 1))

    def z_of_key(self, key: Sequence[int]) -> np.ndarray:
        card = np.asarray(self.cardinalities, dtype=float)
        return (np.asarray(key, dtype=float) + 0.5) / card

    def decode(self, z: np.ndarray) -> dict:
        """Layout nearest to ``z`` (one coordinate per axis in ``[0, 1]``; clipped)."""
        return self.layout_of(self.key_from_z(z))

    def encode(self, layout: dict) -> np.ndarray:
        """Centre in ``[0, 1]^ndim`` of the cell of ``layout``; ``decode(encode(l)) == l``."""
        return self.z_of_key(self.key_of(layout))

    # ---- validity and enumeration ---------------------------------------------------------

    def is_valid_key(self, key: Key) -> bool:
        return self.constraint is None or bool(self.constraint(self.layout_of(key)))

    def is_valid(self, layout: dict) -> bool:
        return self.is_valid_key(self.key_of(layout))

    @cached_property
    def _valid_keys(self) -> tuple[Key, ...]:
        if not self.enumerable:
            raise ValueError(
                f"space has {self.raw_size()} raw layouts > enumerate_limit={self.enumerate_limit}"
            )
        ranges = [range(n) for n in self.cardinalities]
        return tuple(k for k in itertools.product(*ranges) if self.is_valid_key(k))

    @cached_property
    def _valid_z(self) -> np.ndarray:
        return np.array([self.z_of_key(k) for k in self._valid_keys]).reshape(-1, self.ndim)

    def enumerate(self) -> list[dict]:
        """All valid layouts, in lexicographic index order."""
        return [self.layout_of(k) for k in self._valid_keys]

    def nearest_valid_key(self, z: np.ndarray) -> Key | None:
        """Valid layout whose cell centre is nearest to ``z`` (enumerable spaces only)."""
        if not self.enumerable or not self._valid_keys:
            return None
        z = np.clip(np.asarray(z, dtype=float).reshape(-1), 0.0, 1.0)
        d = np.sum((self._valid_z - z) ** 2, axis=1)
        return self._valid_keys[int(np.argmin(d))]


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass
class OptimizeResult:
    """Outcome of :func:`optimize`.

    ``history`` has one row per scored population member: ``generation``, ``restart``,
    ``member``, one column per axis, ``value`` (as returned by ``evaluate``), ``evaluated``
    (True when the layout was evaluated in that generation, False when it came from the cache)
    and ``repaired`` (the sample broke the constraint and was projected onto this layout).
    ``evaluations`` has one row per distinct evaluated layout, in evaluation order.
    """

    space: SearchSpace
    maximize: bool
    best_layout: dict | None
    best_value: float
    n_evaluations: int
    n_generations: int
    n_restarts: int
    n_calls: int
    n_rejected: int
    history: pd.DataFrame
    evaluations: pd.DataFrame

    @property
    def n_distinct(self) -> int:
        return self.n_evaluations

    def top(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` best distinct evaluated layouts (failed ones excluded), best first."""
        ev = self.evaluations
        ok = ev[np.isfinite(ev["value"].to_numpy(dtype=float))]
        ok = ok.sort_values("value", ascending=not self.maximize, kind="stable")
        out = ok.head(k).reset_index(drop=True)
        out.insert(0, "rank", np.arange(1, len(out) + 1))
        return out

    def top_layouts(self, k: int = 10) -> list[dict]:
        """Like :meth:`top`, as layout dicts."""
        names = list(self.space.names)
        return [
            dict(zip(names, row, strict=True)) for row in self.top(k)[names].itertuples(index=False)
        ]

    def save(self, path: str | Path, *, which: str = "history") -> Path:
        """Write ``history`` (or ``evaluations``) as CSV or Parquet, chosen by the suffix."""
        df = {"history": self.history, "evaluations": self.evaluations}[which]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            df.to_csv(path, index=False)
        elif path.suffix in (".parquet", ".pq"):
            df.to_parquet(path, index=False)
        else:
            raise ValueError(f"unknown history format {path.suffix!r} (use .csv or .parquet)")
        return path


# --------------------------------------------------------------------------------------------
# Strategies (ask/tell)
# --------------------------------------------------------------------------------------------


class _CMA:
    """Thin wrapper over ``cma.CMAEvolutionStrategy``, seeded by ``rng``.

    ``integer=False``: the strategy samples ``z`` in ``[0, 1]^d`` and layouts come from
    :meth:`SearchSpace.key_from_z`.  ``integer=True``: it samples cell indices directly in
    ``[-0.5, n_i - 0.5]`` with pycma's integer handling (LB+IC-CMA-ES: lower bounds on the
    integer standard deviations plus integer centering, Marty et al., PPSN 2024).
    """

    def __init__(
        self,
        space: SearchSpace,
        popsize: int,
        rng: np.random.Generator,
        x0: np.ndarray,
        sigma0: float,
        diagonal: bool,
        integer: bool,
    ):
        import cma

        self.space, self.integer, self.d = space, integer, space.ndim
        card = np.asarray(space.cardinalities, dtype=float)
        x0 = np.clip(np.asarray(x0, dtype=float), 0.0, 1.0)
        if space.ndim == 1:  # pycma needs two dimensions: add an ignored one
            card, x0 = np.append(card, 2.0), np.append(x0, 0.5)
        self.card = card
        opts = cma.CMAOptions()
        opts.set(
            {
                "popsize": popsize,
                "randn": lambda *shape: rng.standard_normal(shape),
                "seed": np.nan,  # do not touch numpy's global random state
                "verbose": -9,
                "verb_log": 0,
                "verb_disp": 0,
                "CMA_diagonal": bool(diagonal),
                "tolfun": 1e-12,
                "tolflatfitness": 3,
            }
        )
        if integer:
            opts.set(
                {
                    "bounds": [list(np.full_like(card, -0.5)), list(card - 0.5)],
                    "integer_variables": list(range(space.ndim)),
                    "CMA_stds": list(card),
                }
            )
            x0 = np.clip(x0 * card - 0.5, 0.0, card - 1.0)
        else:
            opts.set(
                {
                    "bounds": [0.0, 1.0],
                    # keep sampling at least ~a third of a cell wide on every axis, so the
                    # rounded population never collapses onto one layout for good
                    "minstd": list(_MINSTD_CELLS / card),
                }
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.es = cma.CMAEvolutionStrategy(list(x0), sigma0, opts)

    def key(self, x: np.ndarray) -> Key:
        x = np.asarray(x, dtype=float)[: self.d]
        if not self.integer:
            return self.space.key_from_z(x)
        idx = np.clip(np.floor(x + 0.5), 0, self.card[: self.d] - 1)
        return tuple(int(i) for i in idx)

    def z(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)[: self.d]
        return (x + 0.5) / self.card[: self.d] if self.integer else x

    def ask(self, n: int | None = None) -> list[np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.es.ask(n)

    def tell(self, xs: list[np.ndarray], f: list[float]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.es.tell(xs, f)

    def stop(self) -> bool:
        return bool(self.es.stop())


class _Random:
    """Uniform random sampling in ``[0, 1]^d`` (baseline; the same cache and budget rules)."""

    def __init__(self, space: SearchSpace, popsize: int, rng: np.random.Generator):
        self.space, self.popsize, self.rng = space, popsize, rng

    def ask(self, n: int | None = None) -> list[np.ndarray]:
        return list(self.rng.random((n or self.popsize, self.space.ndim)))

    def key(self, x: np.ndarray) -> Key:
        return self.space.key_from_z(x)

    def z(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=float)

    def tell(self, xs, f) -> None:
        pass

    def stop(self) -> bool:
        return False


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def optimize(
    space: SearchSpace,
    evaluate: Callable[[list[dict]], Any],
    *,
    budget: int,
    popsize: int = 16,
    seed: int = 0,
    maximize: bool = True,
    strategy: str = "cmaes",
    progress: bool = False,
    sigma0: float = 0.3,
    resample: int = 10,
    patience: int = 3,
    max_generations: int | None = None,
    polish: float = 0.15,
) -> OptimizeResult:
    """Search ``space`` for the layout with the best ``evaluate`` score.

    ``evaluate(layouts)`` gets a list of distinct, valid, not-yet-evaluated layouts (one call
    per generation at most) and returns one number per layout; non-finite numbers (NaN, ±inf)
    mark failed/infeasible layouts and rank below every finite one.  The search stops once
    ``budget`` distinct layouts have been evaluated, every valid layout has been evaluated
    (enumerable spaces), or after ``max_generations`` generations (default
    ``50 + 20 * ceil(budget / popsize)``; generations that only hit the cache cost no
    evaluations).

    ``strategy``: ``"cmaes"`` (CMA-ES in ``z``, full covariance), ``"cmaes-int"`` (CMA-ES on
    cell indices with pycma's LB+IC integer handling), ``"sep-cmaes"`` (diagonal covariance)
    or ``"random"`` (uniform random search, a baseline).  ``sigma0``: initial step size in
    ``[0, 1]`` units.  ``resample``: redraws of a sample that breaks the constraint before it
    is projected or penalised (``n_rejected`` counts the samples still invalid after them).
    ``patience``: generations without a new layout before a CMA-ES restart.  ``polish``:
    share of the budget kept for the local search around the incumbent (CMA-ES strategies;
    0 turns it off); polish generations have ``restart == -1`` in the history.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if budget < 1:
        raise ValueError("budget must be >= 1")
    if popsize < 4:
        raise ValueError("popsize must be >= 4")
    if not 0.0 <= polish < 1.0:
        raise ValueError("polish must be in [0, 1)")
    if max_generations is None:
        max_generations = 50 + 20 * math.ceil(budget / popsize)
    clash = _RESERVED & set(space.names)
    if clash:
        raise ValueError(f"choice names {sorted(clash)} clash with history columns")

    rng = np.random.default_rng(seed)
    n_valid = space.size() if space.enumerable else None
    names = list(space.names)
    sign = -1.0 if maximize else 1.0  # strategies minimise sign * value

    cache: dict[Key, float] = {}
    eval_rows: list[dict] = []
    hist_rows: list[dict] = []
    best_key: Key | None = None
    best_f = math.inf  # in minimisation units
    worst_f = -math.inf
    n_calls = 0
    n_rejected = 0
    restart = 0

    validity: dict[Key, bool] = {}

    def valid(key: Key) -> bool:
        if key not in validity:
            validity[key] = space.is_valid_key(key)
        return validity[key]

    def new_strategy():
        if strategy == "random":
            return _Random(space, popsize, rng)
        if restart == 0:
            x0, s0 = np.full(space.ndim, 0.5), sigma0
        elif restart % 2 == 1 and best_key is not None:
            x0, s0 = space.z_of_key(best_key), _LOCAL_SIGMA * sigma0
        else:
            x0, s0 = rng.random(space.ndim), sigma0
        return _CMA(
            space,
            popsize,
            rng,
            x0,
            s0,
            diagonal=(strategy == "sep-cmaes"),
            integer=(strategy == "cmaes-int"),
        )

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=min(budget, n_valid or budget), desc=f"optimize[{strategy}]", unit="layout"
        )

    card = space.cardinalities
    moves1 = [
        tuple(d if j == i else 0 for j in range(space.ndim))
        for i in range(space.ndim)
        for d in (-1, 1)
    ]
    moves2 = [tuple(2 * m for m in mv) for mv in moves1] + [
        tuple(da if j == a else db if j == b else 0 for j in range(space.ndim))
        for a, b in itertools.combinations(range(space.ndim), 2)
        for da in (-1, 1)
        for db in (-1, 1)
    ]

    def untried_neighbours(key: Key) -> list[Key]:
        for moves in (moves1, moves2):
            out = []
            for mv in moves:
                k = tuple(i + d for i, d in zip(key, mv, strict=True))
                if all(0 <= i < n for i, n in zip(k, card, strict=True)):
                    if k not in cache and valid(k):
                        out.append(k)
            if out:
                return [out[i] for i in rng.permutation(len(out))]
        return []

    def evaluate_new(new: list[Key], generation: int) -> None:
        """One ``evaluate`` call on distinct new layouts: cache, rows, incumbent, progress."""
        nonlocal n_calls, best_f, best_key, worst_f
        values = np.asarray(evaluate([space.layout_of(k) for k in new]), dtype=float).reshape(-1)
        n_calls += 1
        if values.shape[0] != len(new):
            raise ValueError(f"evaluate returned {values.shape[0]} values for {len(new)} layouts")
        for k, v in zip(new, values, strict=True):
            v = float(v)
            cache[k] = v
            eval_rows.append({"generation": generation, **space.layout_of(k), "value": v})
            if math.isfinite(v):
                f = sign * v
                worst_f = max(worst_f, f)
                if f < best_f:
                    best_f, best_key = f, k
        if bar is not None:
            bar.update(len(new))
            bar.set_postfix(best=None if best_key is None else sign * best_f)

    reserve = 0 if strategy == "random" else math.floor(polish * budget)
    strat = new_strategy()
    no_new = 0
    generation = 0
    while generation < max_generations and n_valid != 0:
        if len(cache) >= budget or (n_valid is not None and len(cache) >= n_valid):
            break
        polishing: list[Key] = []
        if best_key is not None and budget - len(cache) <= reserve:
            polishing = untried_neighbours(best_key)
        if polishing:
            new = polishing[: min(popsize, budget - len(cache))]
            evaluate_new(new, generation)
            for m, k in enumerate(new):
                hist_rows.append({"generation": generation, **space.layout_of(k),
                                  "value": cache[k], "restart": -1, "member": m,
                                  "evaluated": True, "repaired": False})
            generation += 1
            continue
        # ---- ask, with resampling and repair of constraint violations ----
        xs = strat.ask()
        keys: list[Key | None] = []
        repaired: list[bool] = []
        for i, x in enumerate(xs):
            key = strat.key(x)
            tries = 0
            while not valid(key) and tries < resample:
                x = strat.ask(1)[0]
                key = strat.key(x)
                tries += 1
            xs[i] = x
            if valid(key):
                keys.append(key)
                repaired.append(False)
                continue
            n_rejected += 1
            proj = space.nearest_valid_key(strat.z(x))
            keys.append(proj)
            repaired.append(proj is not None)

        # ---- evaluate the new distinct layouts in one call ----
        new: list[Key] = []
        seen: set[Key] = set()
        for k in keys:
            if k is not None and k not in cache and k not in seen:
                seen.add(k)
                new.append(k)
        truncated = len(new) > budget - len(cache)
        new = new[: budget - len(cache)]
        if new:
            evaluate_new(new, generation)

        # ---- history ----
        fresh = set(new)  # a layout's first member in this generation carries the flag
        for m, (k, rep) in enumerate(zip(keys, repaired, strict=True)):
            if k is None or k not in cache:
                continue
            evaluated = k in fresh
            fresh.discard(k)
            hist_rows.append(
                {
                    "generation": generation,
                    "restart": restart,
                    "member": m,
                    **space.layout_of(k),
                    "value": cache[k],
                    "evaluated": evaluated,
                    "repaired": rep,
                }
            )
        generation += 1
        if truncated:
            break

        # ---- tell ----
        scale = 1.0 if not math.isfinite(worst_f) else 1.0 + abs(worst_f) + abs(worst_f - best_f)
        fail_f = (worst_f if math.isfinite(worst_f) else 0.0) + scale
        fs = []
        for k in keys:
            v = cache.get(k, math.nan) if k is not None else math.nan
            if math.isfinite(v):
                fs.append(sign * v)
            else:
                fs.append(fail_f if k is not None else fail_f + scale)
        strat.tell(xs, fs)

        no_new = 0 if new else no_new + 1
        if strategy != "random" and (strat.stop() or no_new >= patience):
            restart += 1
            no_new = 0
            strat = new_strategy()

    if bar is not None:
        bar.close()

    fields = {n: pd.Series(dtype=object) for n in names}
    history = (
        pd.DataFrame(hist_rows)
        if hist_rows
        else pd.DataFrame(
            {
                "generation": pd.Series(dtype=int),
                "restart": pd.Series(dtype=int),
                "member": pd.Series(dtype=int),
                **fields,
                "value": pd.Series(dtype=float),
                "evaluated": pd.Series(dtype=bool),
                "repaired": pd.Series(dtype=bool),
            }
        )
    )
    evaluations = (
        pd.DataFrame(eval_rows)
        if eval_rows
        else pd.DataFrame(
            {
                "generation": pd.Series(dtype=int),
                **fields,
                "value": pd.Series(dtype=float),
            }
        )
    )
    return OptimizeResult(
        space=space,
        maximize=maximize,
        best_layout=None if best_key is None else space.layout_of(best_key),
        best_value=math.nan if best_key is None else sign * best_f,
        n_evaluations=len(cache),
        n_generations=generation,
        n_restarts=restart,
        n_calls=n_calls,
        n_rejected=n_rejected,
        history=history,
        evaluations=evaluations,
    )
