"""Layout search: CMA-ES over a sweep spec's axes, each population one vmapped max-QPS batch.

The objective is goodput per GPU: the highest arrival rate at which the SLO
attainment reaches the target (:mod:`frontier_jax.sweep.maxqps`), divided by the
layout's GPUs. Only list axes are searched; a GPU budget and SLOs may override the
spec's.
"""

import dataclasses
import math

import numpy as np
import pandas as pd

from frontier_jax.optimize import Choice, OptimizeResult, SearchSpace, optimize
from frontier_jax.spec import SpecError, with_overrides
from frontier_jax.sweep.expand import config_for
from frontier_jax.sweep.maxqps import max_qps_rows
from frontier_jax.sweep.plan import group_plans, plan_config
from frontier_jax.sweep.spec import MaxQPS, SweepSpec


def with_budget_and_slo(
    spec: SweepSpec, gpus: int | None, ttft_s: float | None, tpot_s: float | None
) -> SweepSpec:
    """``spec`` with ``gpus <= budget`` added to its constraints and the SLOs replaced."""
    base = spec.base
    slo = {k: v for k, v in (("slo.ttft_s", ttft_s), ("slo.tpot_s", tpot_s)) if v is not None}
    if slo:
        base = with_overrides(base, slo)
    if base.slo.ttft_s is None and base.slo.tpot_s is None:
        raise SpecError(spec.source, "slo", None, "give --slo-ttft and/or --slo-tpot, or [slo]")
    cons = spec.constraints + ((f"gpus <= {gpus}",) if gpus else ())
    return dataclasses.replace(spec, base=base, constraints=cons, maxqps=spec.maxqps or MaxQPS())


def search_space(spec: SweepSpec) -> SearchSpace:
    """The discrete space of the spec's list axes, constrained like the sweep."""
    for ax in spec.axes:
        if ax.kind != "values":
            raise SpecError(
                spec.source,
                f"axes.{ax.name}",
                ax.kind,
                "the optimiser searches list or range axes only",
            )
    choices = tuple(Choice(ax.name, tuple(ax.values)) for ax in spec.axes)
    return SearchSpace(choices, constraint=lambda layout: config_for(spec, layout) is not None)


def goodput_per_gpu(spec: SweepSpec, layouts: list[dict], chunk_size: int) -> pd.DataFrame:
    """Max QPS under the SLOs per GPU for each layout (NaN when infeasible), with metrics."""
    rows = []
    plans = [plan_config(spec, config_for(spec, lay, i)) for i, lay in enumerate(layouts)]
    for group in group_plans(plans):  # one static shape and cost model per group
        members = group.members
        for k in range(0, len(members), chunk_size):
            part = members[k : k + chunk_size]
            size = chunk_size if len(members) > chunk_size else len(part)
            out, _ = max_qps_rows(spec.maxqps, group, part, size, None)
            rows += out
    rows += [
        {"config_id": p.config.config_id, "status": p.status} for p in plans if p.status != "ok"
    ]
    df = pd.DataFrame(rows).sort_values("config_id").reset_index(drop=True)
    df["objective"] = np.where(df["status"] == "ok", df.get("max_qps_per_gpu", np.nan), np.nan)
    return df


def optimize_layouts(
    spec: SweepSpec,
    *,
    budget: int | None = None,
    budget_fraction: float = 0.25,
    popsize: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> tuple[OptimizeResult, pd.DataFrame]:
    """Search the spec's layouts for the best goodput per GPU.

    Returns the optimiser's result and one row per evaluated layout (metrics at its
    max QPS). ``budget`` distinct layouts, default ``budget_fraction`` of the space rounded
    down (so "at most 25%" holds), at least one.
    """
    space = search_space(spec)
    size = space.size()
    if size == 0:
        raise SpecError(spec.source, "constraints", list(spec.constraints), "leave no layout")
    budget = budget or max(1, math.floor(budget_fraction * size))
    evaluated: list[pd.DataFrame] = []

    def evaluate(layouts: list[dict]) -> np.ndarray:
        df = goodput_per_gpu(spec, layouts, chunk_size=max(popsize, 1))
        for name in space.names:
            df[name] = [lay[name] for lay in layouts]
        evaluated.append(df)
        return df["objective"].to_numpy(dtype=float)

    result = optimize(
        space, evaluate, budget=budget, popsize=popsize, seed=seed, maximize=True, progress=progress
    )
    table = pd.concat(evaluated, ignore_index=True) if evaluated else pd.DataFrame()
    return result, table
