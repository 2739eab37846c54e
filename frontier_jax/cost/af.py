"""Attention/FFN disaggregation: an iteration's time is the makespan of its task graph.

Per iteration the attention side splits its batch into ``m`` micro-batches; for every layer
``l`` and micro-batch ``i`` four tasks run in a chain

    attn(l, i) -> send A->F (l, i) -> ffn(l, i) -> send F->A (l, i) -> attn(l + 1, i)

on four resources (the attention side, the A->F link, the FFN side, the F->A link), each
serving its tasks one at a time in (layer, micro-batch) order: micro-batch 0 of layer l,
then 1, ..., then micro-batch 0 of layer l + 1 (the ping-pong of MegaScale-Infer). With
``a, s, f, r`` the tasks' finish times and ``A, S, F, R`` their durations:

    a[l, i] = max(a[l, i-1], r[l-1, i]) + A[l, i]      (a[l, -1] = a[l-1, m-1])
    s[l, i] = max(s[l, i-1], a[l, i]) + S[l, i]        (likewise for s, f, r)
    f[l, i] = max(f[l, i-1], s[l, i]) + F[l, i]
    r[l, i] = max(r[l, i-1], f[l, i]) + R[l, i]

and the graph's makespan is r[L-1, m-1] (everything starts at 0).

Two evaluations of the same recurrence:

* :func:`graph_makespan` walks the tasks one by one (numpy, the reference simulator's
  explicit event list: O(L m) Python steps);
* :func:`makespan` (any ``xp``, inside the compiled step) writes one layer as a max-plus
  linear map of the state ``x = (r[l, 0..m-1], a[l, m-1], s[l, m-1], f[l, m-1])``
  (``x' = M (x) x``, ``(M (x) x)_j = max_k M_jk + x_k``), builds ``M`` by running the layer on
  the state's unit vectors, and raises it to the layer count by repeated squaring: a fixed
  ``LAYER_BITS`` squarings of an (m + 3)-square matrix whatever the layer count, so a
  configuration's layer count and micro-batch count stay traced. Layers that differ (an MoE
  model's dense first layers) are groups of identical layers applied in turn.

A micro-batch past the configuration's own ``m`` (durations 0, padding to a static
``MAX_MICRO_BATCHES``) changes no finish time: its tasks start when their predecessors on
every resource have finished and take no time.
"""

from typing import Any

import numpy as np

MAX_MICRO_BATCHES = 4  # static micro-batch slots (a configuration's own m is traced)
LAYER_BITS = 7  # layer counts up to 2**7 - 1 per group of identical layers
NEG = -np.inf  # the max-plus zero


def layer_step(x, A, S, F, R, xp: Any):
    """One layer of the recurrence: state ``x`` [..., m + 3] -> the next layer's state, for
    durations ``A, S, F, R`` [..., m] (broadcast against ``x``'s leading axes)."""
    m = A.shape[-1]
    r_prev, a_last, s_last, f_last = x[..., :m], x[..., m], x[..., m + 1], x[..., m + 2]
    rel = x[..., m - 1]  # the F->A link is free once the previous layer's last return is in
    r_new = []
    for i in range(m):
        a_last = xp.maximum(a_last, r_prev[..., i]) + A[..., i]
        s_last = xp.maximum(s_last, a_last) + S[..., i]
        f_last = xp.maximum(f_last, s_last) + F[..., i]
        rel = xp.maximum(rel, f_last) + R[..., i]
        r_new.append(rel)
    return xp.stack(r_new + [a_last, s_last, f_last], axis=-1)


def layer_matrix(A, S, F, R, xp: Any):
    """The max-plus matrix ``M`` [..., n, n] (n = m + 3) of one layer: ``M[j, k]`` is the
    longest path from state entry k to next-state entry j (NEG where none)."""
    m = A.shape[-1]
    n = m + 3
    basis = xp.where(xp.eye(n, dtype=bool), 0.0, NEG)  # row k: unit vector e_k
    cols = layer_step(basis, A[..., None, :], S[..., None, :], F[..., None, :], R[..., None, :], xp)
    return xp.swapaxes(cols, -1, -2)  # cols[..., k, j] = M[j, k]


def maxplus_matmul(P, Q, xp: Any):
    """``(P (x) Q)[i, j] = max_k P[i, k] + Q[k, j]`` over leading axes."""
    return xp.max(P[..., :, :, None] + Q[..., None, :, :], axis=-2)


def maxplus_power(M, count, xp: Any):
    """``M`` to the max-plus power ``count`` (a traced whole number in [0, 2**LAYER_BITS)):
    repeated squaring over a fixed LAYER_BITS bits; power 0 is the max-plus identity."""
    n = M.shape[-1]
    eye = xp.where(xp.eye(n, dtype=bool), 0.0, NEG)
    out = xp.broadcast_to(eye, M.shape)
    c = xp.asarray(count).astype(xp.int32)
    P = M
    for b in range(LAYER_BITS):
        on = ((c >> b) & 1).astype(bool)[..., None, None]
        out = xp.where(on, maxplus_matmul(P, out, xp), out)
        if b + 1 < LAYER_BITS:
            P = maxplus_matmul(P, P, xp)
    return out


def makespan(groups, xp: Any):
    """Makespan of a graph whose layers come in groups of identical layers, applied in turn:
    ``groups`` a list of ``(count, A, S, F, R)`` (count a whole number >= 0, durations
    [..., m]). Returns [...] seconds."""
    x = None
    for count, A, S, F, R in groups:
        Mp = maxplus_power(layer_matrix(A, S, F, R, xp), count, xp)
        if x is None:
            x = xp.max(Mp, axis=-1)  # M^c (x) 0
        else:
            x = xp.max(Mp + x[..., None, :], axis=-1)
    return xp.max(x, axis=-1)


def graph_makespan(groups) -> float:
    """:func:`makespan` by walking the tasks one by one (numpy scalars; the reference)."""
    a = s = f = r = 0.0
    ret: list[float] | None = None
    for count, A, S, F, R in groups:
        A, S, F, R = (np.asarray(v, dtype=np.float64) for v in (A, S, F, R))
        m = A.shape[-1]
        if ret is None:
            ret = [0.0] * m
        for _ in range(int(count)):
            for i in range(m):
                a = max(a, ret[i]) + A[i]
                s = max(s, a) + S[i]
                f = max(f, s) + F[i]
                r = max(r, f) + R[i]
                ret[i] = r
    return r


__all__ = ["LAYER_BITS", "MAX_MICRO_BATCHES", "graph_makespan", "layer_matrix", "layer_step",
           "makespan", "maxplus_matmul", "maxplus_power"]
