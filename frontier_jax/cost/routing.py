"""MoE routing: expert popularity, expert placement on EP ranks, and sampled rank loads.

Two halves, so that the compiled step never does work that grows with the expert or token
count:

- Host side, once per configuration (numpy): :func:`popularity` draws each MoE layer's
  expert popularity (the share of routed rows each expert receives: uniform, Zipf(s) with a
  per-layer random order, Dirichlet(alpha), or a recorded routing trace's counts), and
  :func:`rank_shares` places the experts on the EP ranks (contiguous, round robin, or EPLB-style:
  the hottest experts get replicas on spare slots, then replicas are packed onto ranks,
  heaviest first, onto the least-loaded rank with a free slot) and sums each rank's share.
  The result is a [L, S] table (S rank slots, zero share past the EP degree), a cost-param
  leaf, so EP degree, skew and placement are data that ``vmap`` sweeps.
- Step side (numpy or jax.numpy, the same expression in both simulators):
  :func:`rank_loads` draws, per MoE layer and per iteration, how many of the iteration's
  ``rows = tokens x top_k`` routed rows land on each rank. The per-row model is a categorical
  draw of the rank from the shares (so the loads are Multinomial(rows, shares)); the sampler
  draws the loads, not the rows: a normal vector with exactly the multinomial covariance
  (``sqrt(q) z - q sum(sqrt(q) z)``, whose sum is 0 so the total stays ``rows``), a
  Cornish-Fisher term for each count's binomial skew, rounded to whole rows. Its cost is
  O(L x S) per iteration whatever the token count. ``tests/test_routing.py`` holds its max/mean
  statistics to a per-row Monte Carlo.

Normals come from :func:`frontier_jax.cost.context.random_bits` through a quantile table, so the reference
simulator and the vectorized one draw the same maps for the same (seed, instance, iteration).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np

from frontier_jax.cost.context import random_bits
from frontier_jax.spec.scenario import MOE_PLACEMENTS, MOE_ROUTINGS

ROUTINGS, PLACEMENTS = MOE_ROUTINGS, MOE_PLACEMENTS  # the spec's lists, the one place they live


def popularity(kind: str, experts: int, layers: int, *, skew: float = 0.0, seed: int = 0,
               trace: np.ndarray | None = None) -> np.ndarray:
    """float64 [layers, experts]: each MoE layer's expert popularity (rows sum to 1).

    ``uniform`` and ``balanced``: 1 / experts. ``zipf``: the i-th most popular expert gets a
    share proportional to (i + 1)^-skew, the order drawn at random per layer (fixed for the
    run). ``dirichlet``: a Dirichlet(skew) draw per layer (small alpha, more skew). ``trace``:
    ``trace`` ([layers, experts] routed-row counts, e.g. summed over a recorded run's
    iterations) normalised. Deterministic in ``seed``."""
    if kind in ("uniform", "balanced"):
        return np.full((layers, experts), 1.0 / experts)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x3E5])
    if kind == "zipf":
        base = (np.arange(experts) + 1.0) ** -float(skew)
        base /= base.sum()
        return np.stack([base[rng.permutation(experts)] for _ in range(layers)])
    if kind == "dirichlet":
        if skew <= 0:
            raise ValueError(f"dirichlet routing needs alpha > 0, got {skew}")
        return rng.dirichlet(np.full(experts, float(skew)), size=layers)
    if kind == "trace":
        t = np.asarray(trace, dtype=np.float64)
        if t.shape != (layers, experts):
            raise ValueError(f"routing trace has shape {t.shape}, expected ({layers}, {experts})")
        tot = t.sum(axis=1, keepdims=True)
        if np.any(tot <= 0):
            raise ValueError("routing trace has a layer with no routed rows")
        return t / tot
    raise ValueError(f"unknown routing {kind!r}; expected one of {', '.join(ROUTINGS)}")


def _place(pop: np.ndarray, ep: int, placement: str, redundant: int) -> np.ndarray:
    """[ep] shares of one layer's popularity ``pop`` [E] on ``ep`` ranks."""
    e = pop.shape[0]
    if placement == "contiguous":
        return pop.reshape(ep, e // ep).sum(axis=1)
    if placement == "round_robin":
        return pop.reshape(e // ep, ep).sum(axis=0)
    if placement != "eplb":
        raise ValueError(f"unknown placement {placement!r}; expected one of {', '.join(PLACEMENTS)}")
    # EPLB-style: give each of the `redundant` spare slots to the expert with the largest load
    # per replica, then pack the replicas heaviest first onto the least-loaded rank that still
    # has a free slot (each rank holds (E + redundant) / ep replicas).
    replicas = np.ones(e, np.int64)
    for _ in range(redundant):
        replicas[np.argmax(pop / replicas)] += 1
    per_replica = np.repeat(pop / replicas, replicas)
    slots = (e + redundant) // ep
    load, free = np.zeros(ep), np.full(ep, slots)
    for w in np.sort(per_replica)[::-1]:
        r = int(np.argmin(np.where(free > 0, load, np.inf)))
        load[r] += w
        free[r] -= 1
    return load


def rank_shares(pop: np.ndarray, ep: int, slots: int, placement: str = "contiguous",
                redundant: int = 0) -> np.ndarray:
    """float64 [L, slots]: the share of each layer's routed rows on each EP rank (ranks
    ``ep..slots-1`` get 0). ``pop`` [L, E]: :func:`popularity`. ``redundant`` (EPLB only):
    spare expert slots, a multiple of ``ep``."""
    layers, e = pop.shape
    if ep < 1 or e % ep or ep > slots:
        raise ValueError(f"EP degree {ep} must divide the {e} experts and be <= {slots} rank slots")
    if redundant and (placement != "eplb" or redundant % ep):
        raise ValueError(f"redundant experts ({redundant}) need placement 'eplb' and a multiple of EP = {ep}")
    out = np.zeros((layers, slots))
    for layer in range(layers):
        out[layer, :ep] = _place(pop[layer], ep, placement, redundant)
    return out


# Standard-normal quantiles at the midpoints of 4096 equal-probability cells: a normal draw is
# one table read (no log or cos: transcendentals were most of a window's routing cost on CPU).
# |z| <= 3.49; the variance is 0.9993.
_NORMAL_BITS = 12
_NORMAL_TABLE = np.array([NormalDist().inv_cdf((j + 0.5) / (1 << _NORMAL_BITS))
                          for j in range(1 << _NORMAL_BITS)])


def _normals(key, n: int, xp: Any):
    """float64 [..., n] standard normals from ``key``: the inverse normal CDF, tabulated at
    4096 cells, at the top 12 bits of one 32-bit draw each."""
    idx = (random_bits(key, n, xp) >> xp.uint64(32 - _NORMAL_BITS)).astype(xp.int32)
    return xp.asarray(_NORMAL_TABLE)[idx]


def rank_loads(shares, rows, key, xp: Any):
    """float64 [..., L, S]: routed rows on each EP rank, per MoE layer, for one iteration.

    ``shares`` [L, S] (:func:`rank_shares`); ``rows`` the iteration's routed rows (tokens x
    top_k; broadcasts against a leading axis of ``key``); ``key`` [..., 2] the iteration's key
    (:meth:`frontier_jax.cost.context.IterationContext.key`). Whole numbers, each in
    [0, rows]; a rank with share 0 gets 0."""
    layers, slots = shares.shape
    rows = xp.asarray(rows, dtype=xp.float64)[..., None, None]
    z = _normals(key, layers * slots, xp).reshape(key.shape[:-1] + (layers, slots))
    q = xp.clip(shares, 0.0, 1.0)
    a = xp.sqrt(q) * z
    y = xp.sqrt(rows) * (a - q * xp.sum(a, axis=-1, keepdims=True))  # Cov = rows (diag q - q q^T)
    var = rows * q * (1.0 - q)
    w = y / xp.sqrt(xp.where(var > 0, var, 1.0))
    x = rows * q + y + (1.0 - 2.0 * q) * (w * w - 1.0) / 6.0  # Cornish-Fisher: binomial skew
    x = xp.where(var > 0, x, rows * q)
    return xp.clip(xp.floor(x + 0.5), 0.0, rows)


__all__ = ["PLACEMENTS", "ROUTINGS", "popularity", "rank_loads", "rank_shares"]
