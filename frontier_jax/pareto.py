"""Pareto fronts of two objectives, in O(n log n) by sorting.

A point is on the front (non-dominated) when no other point is at least as good on both
objectives and strictly better on one. Exact duplicates do not dominate each other, so a
point repeated on the front is kept every time. Rows with NaN or +-inf in either objective
are never on the front and never dominate anything.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _as_float(values) -> np.ndarray:
    """``values`` (array-like or pandas Series, nullable dtypes allowed) as float64, NA -> NaN."""
    if isinstance(values, pd.Series):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.asarray(values, dtype=float)


def pareto_mask(x, y, maximize_x: bool, maximize_y: bool) -> np.ndarray:
    """Boolean mask, same length as ``x``, True where the point (x[i], y[i]) is non-dominated.

    ``maximize_x`` / ``maximize_y`` say whether larger is better on each objective.
    Non-finite points are always False. Duplicated front points are all True.
    Runs in O(n log n): sort by (x, y) from best to worst and sweep once.
    """
    xs, ys = _as_float(x), _as_float(y)
    if xs.ndim != 1 or ys.ndim != 1 or xs.shape != ys.shape:
        raise ValueError(
            f"pareto_mask: x and y must be 1-D of equal length, got {xs.shape} and {ys.shape}"
        )
    mask = np.zeros(xs.shape[0], dtype=bool)
    # Turn both objectives into "smaller is better".
    a = -xs if maximize_x else xs
    b = -ys if maximize_y else ys
    idx = np.flatnonzero(np.isfinite(a) & np.isfinite(b))
    if idx.size == 0:
        return mask
    a, b = a[idx], b[idx]
    order = np.lexsort((b, a))  # by a, then by b within equal a
    a_s, b_s = a[order], b[order]
    new_group = np.empty(a_s.shape[0], dtype=bool)
    new_group[0] = True
    new_group[1:] = a_s[1:] != a_s[:-1]
    starts = np.flatnonzero(new_group)
    group_min = b_s[starts]  # b is sorted within each group of equal a
    # Best b among groups with strictly smaller a (those dominate anything with b >= it).
    best_before = np.empty_like(group_min)
    best_before[0] = np.inf
    best_before[1:] = np.minimum.accumulate(group_min)[:-1]
    gid = np.cumsum(new_group) - 1
    keep = (b_s == group_min[gid]) & (b_s < best_before[gid])
    mask[idx[order[keep]]] = True
    return mask


def pareto_front(
    df: pd.DataFrame, x: str, y: str, maximize_x: bool, maximize_y: bool
) -> pd.DataFrame:
    """The rows of ``df`` on the Pareto front of columns ``x`` and ``y``.

    Returns a copy sorted along the front (by ``x`` ascending, ties by ``y``; stable), with the
    original index kept, so it can be drawn directly as a line.
    """
    missing = [c for c in (x, y) if c not in df.columns]
    if missing:
        raise ValueError(f"pareto_front: missing columns {', '.join(missing)}")
    front = df.loc[pareto_mask(df[x], df[y], maximize_x, maximize_y)]
    return front.sort_values([x, y], kind="stable").copy()
