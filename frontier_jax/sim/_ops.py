"""Small array helpers shared by the simulator stages (jax.numpy, fixed shapes)."""

import jax.numpy as jnp

I32 = jnp.int32


def ceil_div(a, b):
    """Integer ceil(a / b) for non-negative a and positive b."""
    return (a + b - 1) // b


def cumsum(x):
    """Inclusive prefix sum of a 1-D array.

    (Measured: ``jnp.cumsum`` beats ``lax.associative_scan`` here, whose log B passes
    each become a separate XLA:CPU kernel.)
    """
    return jnp.cumsum(x)


def excl_cumsum(x):
    """Exclusive prefix sum of a 1-D array."""
    return cumsum(x) - x


def compact(keep, *arrays, fill=-1):
    """Move the entries where ``keep`` is true to the front, in order; pad with ``fill``.

    Returns (count, compacted arrays...). O(B) scatter, no sort.
    """
    pos = jnp.where(keep, cumsum(keep.astype(I32)) - 1, keep.shape[0])
    out = tuple(jnp.full_like(a, fill).at[pos].set(a, mode="drop") for a in arrays)
    return (jnp.sum(keep, dtype=I32),) + out


def prefix_true(ok):
    """True for the leading run of ``ok`` (the greedy loop's ``break``)."""
    return cumsum((~ok).astype(I32)) == 0


def put_row(arr, r, row, active):
    """arr[r] = row where ``active``, else unchanged (an O(row) update)."""
    return arr.at[r].set(jnp.where(active, row, arr[r]).astype(arr.dtype))


def put(arr, r, value, active):
    """arr[r] = value where ``active``."""
    return arr.at[r].set(jnp.where(active, value, arr[r]).astype(arr.dtype))


def put_drop(arr, r, value, active):
    """arr[r] = value where ``active``, as a write that never reads ``arr`` (the index is
    out of range, so dropped, when inactive). For per-request [N] arrays written by more
    than one masked handler in a step: a read-modify-write (``put``) there can make XLA copy
    the whole array every step, an O(N) step."""
    return arr.at[jnp.where(active, r, arr.shape[0])].set(jnp.asarray(value, arr.dtype), mode="drop")


def scatter(arr, idx, values, valid):
    """arr[idx] = values for valid entries (invalid ones dropped); O(len(idx))."""
    return arr.at[jnp.where(valid, idx, arr.shape[0])].set(values.astype(arr.dtype), mode="drop")
