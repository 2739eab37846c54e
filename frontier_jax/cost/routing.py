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
from typing import Any, NamedTuple

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
    return _eplb(pop, ep, redundant)[0]


def _eplb(pop: np.ndarray, ep: int, redundant: int) -> tuple[np.ndarray, np.ndarray]:
    """EPLB-style placement of one layer: ([ep] rank loads, [E, ep] share of each expert's
    rows each rank serves). Each of the `redundant` spare slots goes to the expert with the
    largest load per replica, then the replicas are packed heaviest first onto the
    least-loaded rank that still has a free slot (each rank holds (E + redundant) / ep)."""
    e = pop.shape[0]
    replicas = np.ones(e, np.int64)
    for _ in range(redundant):
        replicas[np.argmax(pop / replicas)] += 1
    expert = np.repeat(np.arange(e), replicas)
    per_replica = (pop / replicas)[expert]
    slots = (e + redundant) // ep
    load, free, frac = np.zeros(ep), np.full(ep, slots), np.zeros((e, ep))
    for i in np.argsort(per_replica, kind="stable")[::-1]:
        r = int(np.argmin(np.where(free > 0, load, np.inf)))
        load[r] += per_replica[i]
        frac[expert[i], r] += 1.0 / replicas[expert[i]]
        free[r] -= 1
    return load, frac


def placement_matrix(pop: np.ndarray, ep: int, placement: str, redundant: int = 0) -> np.ndarray:
    """[E, ep]: the share of each expert's rows each EP rank serves, for the placement drawn
    from one layer's popularity ``pop`` [E] (``pop @ matrix`` is :func:`rank_shares`' row)."""
    e = pop.shape[0]
    if placement == "contiguous":
        return np.kron(np.eye(ep), np.ones((e // ep, 1)))
    if placement == "round_robin":
        return np.tile(np.eye(ep), (e // ep, 1))
    if placement != "eplb":
        raise ValueError(f"unknown placement {placement!r}; expected one of {', '.join(PLACEMENTS)}")
    return _eplb(pop, ep, redundant)[1]


def iteration_shares(counts: np.ndarray, pop: np.ndarray, ep: int, slots: int,
                     placement: str = "contiguous", redundant: int = 0) -> np.ndarray:
    """float64 [I, L, slots]: each recorded iteration's rank shares, its counts [I, L, E]
    routed through the placement drawn from the run's popularity ``pop`` [L, E] (a layer an
    iteration routes nothing through keeps the run's shares)."""
    iters, layers, e = counts.shape
    out = np.zeros((iters, layers, slots))
    for layer in range(layers):
        m = placement_matrix(pop[layer], ep, placement, redundant)
        c = counts[:, layer, :]
        tot = c.sum(axis=1, keepdims=True)
        share = np.where(tot > 0, c / np.where(tot > 0, tot, 1.0), pop[layer])
        out[:, layer, :ep] = share @ m
    return out


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
    layers, slots = shares.shape[-2:]
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


_ANCHORS = 0x40000000  # drift anchors are keyed as iterations from 2**30 on (no instance gets there)


class RoutingKey(NamedTuple):
    """What a time-varying popularity needs of one iteration (or [k] of a window): the
    iteration's own ``key`` [..., 2] and index ``it`` [...] (int32), and with drift the keys of
    the anchors before and after it and the weight ``w`` [...] of the one after."""

    key: Any
    it: Any
    before: Any = None
    after: Any = None
    w: Any = None


def routing_key(ctx: Any, moe: Any, xp: Any, offset: Any = 0) -> RoutingKey:
    """:class:`RoutingKey` of iteration ``ctx.iteration + offset`` (``offset`` may be an
    array); drift anchors every ``moe.drift_period`` iterations, each keyed like an iteration."""
    it = xp.asarray(ctx.iteration).astype(xp.int32) + xp.asarray(offset).astype(xp.int32)
    key = ctx.key(xp, offset)
    if moe.drift is None:
        return RoutingKey(key, it)
    per = xp.maximum(xp.asarray(moe.drift_period), 1.0).astype(xp.int32)
    a = it // per
    w = (it - a * per).astype(xp.float64) / per.astype(xp.float64)
    return RoutingKey(key, it, ctx._replace(iteration=_ANCHORS + a).key(xp),
                      ctx._replace(iteration=_ANCHORS + a + 1).key(xp), w)


def layer_shares(moe: Any, key: Any, xp: Any):
    """Rank shares [..., G, S] of the iteration(s) ``key`` prices: ``moe.shares`` (popularity
    fixed for the run); a replayed trace's iteration ``it mod I`` (``moe.iter_shares``
    [I, G, S]); with drift each share times exp(drift x z - drift^2 / 2), renormalised over
    the ranks, z a standard normal per layer and rank interpolated between the anchors
    (variance kept at 1): successive iterations share most of their perturbation, iterations
    a period or more apart are independent."""
    if not isinstance(key, RoutingKey):
        return moe.shares
    base = moe.shares
    if moe.iter_shares is not None:
        base = moe.iter_shares[key.it % moe.iter_shares.shape[-3]]
    if moe.drift is None:
        return base
    layers, slots = moe.shares.shape[-2:]
    shape = key.w.shape + (layers, slots)
    za = _normals(key.before, layers * slots, xp).reshape(shape)
    zb = _normals(key.after, layers * slots, xp).reshape(shape)
    w = key.w[..., None, None]
    z = ((1.0 - w) * za + w * zb) / xp.sqrt((1.0 - w) ** 2 + w * w)
    m = base * xp.exp(moe.drift * z - 0.5 * moe.drift * moe.drift)
    return m / xp.maximum(xp.sum(m, axis=-1, keepdims=True), 1e-300)


def routed_loads(moe: Any, rows, key, xp: Any):
    """:func:`rank_loads` of the iteration(s) ``key`` prices, from :func:`layer_shares`."""
    it_key = key.key if isinstance(key, RoutingKey) else key
    return rank_loads(layer_shares(moe, key, xp), rows, it_key, xp)


__all__ = ["PLACEMENTS", "ROUTINGS", "RoutingKey", "iteration_shares", "layer_shares",
           "placement_matrix", "popularity", "rank_loads", "rank_shares", "routed_loads",
           "routing_key"]
