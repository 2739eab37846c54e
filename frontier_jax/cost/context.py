"""The iteration context a cost function receives, and stateless random draws from it.

A stochastic cost (a sampled MoE routing map, say) must draw the same numbers for the same
iteration in both simulators, and inside a decode fast-forward window, which prices K
iterations in one step. So no key is carried or split in any state: the draws of an
iteration come from a key derived from (seed, instance, iteration index) alone, by a
counter-based hash written with integer operations that numpy and jax.numpy compute
bit for bit alike.

``IterationContext(seed, instance, iteration)`` names the first iteration a cost call
prices; iteration ``iteration + j`` of a window has key ``ctx.key(xp, j)``.
:func:`uniforms` turns a key into uniform draws in [0, 1).
"""

from __future__ import annotations

from typing import Any, NamedTuple

_M32 = 0xFFFFFFFF
_MIX = (0x7FEB352D, 0x846CA68B)  # lowbias32 multipliers (C. Wellons, hash-prospector)
_GOLDEN = 0x9E3779B9


def _mix32(x, xp):
    """A 32-bit integer finaliser (lowbias32) on uint64 arrays holding 32-bit values."""
    u64 = xp.uint64
    x = x & u64(_M32)
    x = x ^ (x >> u64(16))
    x = (x * u64(_MIX[0])) & u64(_M32)
    x = x ^ (x >> u64(15))
    x = (x * u64(_MIX[1])) & u64(_M32)
    return x ^ (x >> u64(16))


def _u64(x, xp):
    return xp.asarray(x).astype(xp.uint64) & xp.uint64(_M32)


class IterationContext(NamedTuple):
    """Which iteration a cost call prices.

    seed: u32 the configuration's seed (``SimParams.seed``); instance: i32 instance slot;
    iteration: i32 the instance's iterations before this one (0 for its first).
    """

    seed: Any
    instance: Any
    iteration: Any

    def key(self, xp: Any, offset: Any = 0):
        """uint64 [..., 2] (32-bit values): the key of iteration ``iteration + offset``
        (``offset`` may be an array: one key per entry)."""
        it = _u64(xp.asarray(self.iteration) + xp.asarray(offset), xp)
        a = _mix32(_u64(self.seed, xp) ^ _mix32(_u64(self.instance, xp) + xp.uint64(_GOLDEN), xp), xp)
        k0 = _mix32(a ^ _mix32(it, xp), xp)
        k1 = _mix32(k0 + xp.uint64(_GOLDEN), xp)
        return xp.stack([k0, k1], axis=-1)


def random_bits(key, n: int, xp: Any):
    """uint64 [..., n] holding n random 32-bit values from ``key`` ([..., 2], see
    :meth:`IterationContext.key`); identical under numpy and jax.numpy."""
    i = xp.arange(n, dtype=xp.uint64)
    k0, k1 = key[..., 0:1], key[..., 1:2]
    return _mix32(k0 ^ _mix32(k1 + i * xp.uint64(_GOLDEN), xp), xp)


def uniforms(key, n: int, xp: Any):
    """float64 [..., n]: n uniform draws in [0, 1) from ``key`` ([..., 2], see
    :meth:`IterationContext.key`); identical under numpy and jax.numpy."""
    return (random_bits(key, n, xp) >> xp.uint64(8)).astype(xp.float64) * (1.0 / (1 << 24))


__all__ = ["IterationContext", "random_bits", "uniforms"]
