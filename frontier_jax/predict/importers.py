"""Importers for public operator-profiling data (Vidur, Frontier, aiconfigurator) and the
project's own ("native") profile format.

Every reader returns *tidy* :class:`pandas.DataFrame` objects, one per operator family,
with one row per measured (configuration, operator) pair:

common columns
    ``family`` (``attention`` | ``linear`` | ``moe`` | ``collective``), ``op`` (operator key,
    e.g. ``attn_prefill``, ``mlp_up_proj``, ``moe_grouped_gemm``; CUDA-graph/kernel-only
    twins get the suffix ``@kernel_only``, aiconfigurator kernels ``@<dtype>/<kernel>``),
    ``time_s`` (median time of one op of one layer on one GPU, **seconds**), ``std_s``
    (standard deviation over the profiling repetitions, seconds, NaN if unknown),
    ``device`` (key of :data:`frontier_jax.predict.devices.DEVICES`), ``model`` (folder
    name), ``measurement_type`` (``CUDA_EVENT`` | ``KERNEL_ONLY`` | ...), ``source`` (file
    path relative to the root that was loaded), ``source_format``
    (``vidur`` | ``frontier`` | ``aiconfigurator`` | ``native``) and ``config_key`` (a
    canonical string of the measured configuration, without the operator or the
    measurement type; the train/test split hashes it).

``attention`` columns
    ``q_lens``, ``c_lens``, ``is_decode``, ``counts``: equally long tuples describing the
    batch as groups of identical sequences (query tokens in this step, context tokens
    already in the KV cache, whether the group runs in the decode kernel, number of such
    sequences). ``n_q_heads``/``n_kv_heads`` are *local* (per GPU, after TP),
    ``head_dim``, ``tp``, ``block_size``, ``dtype_bytes``, ``mode`` (Frontier batch mode
    or ``even``), ``batch_kind`` (``homogeneous`` | ``heterogeneous`` | ``mixed``).

``linear`` columns
    ``m`` (tokens), ``n`` (output features per GPU), ``k`` (input features per GPU),
    ``is_gemm``, ``dtype_bytes`` (weights), ``tp``, ``batch_kind`` (``dense``).

``moe`` columns
    ``num_tokens`` (tokens entering the layer on this GPU), ``routed_tokens`` (sum of
    the local experts' token counts), ``local_experts``, ``active_experts``,
    ``max_tokens``, ``min_tokens`` (per local expert), ``load_cv``, ``load_gini``,
    ``load_entropy_bits``, ``hidden``, ``expert_hidden``, ``topk``, ``gated``, ``tp``,
    ``ep``, ``num_experts``, ``dtype_bytes``, ``warm_context`` (1: timed after a warm
    prefix, Frontier's ``prefill_hot``; 0: standalone, the default), ``batch_kind``
    (``balanced`` | ``skewed``).

``collective`` columns
    ``size_bytes``, ``num_workers``, ``devices_per_node``, ``batch_kind`` (``intra_node``
    | ``inter_node``).

The source files are never copied: pass their location to :func:`load_profiles`.

Validation: every problem with a file raises :class:`DataError` (a ``ValueError``) whose
message is one line, ``<file>: column <col>: <problem>; allowed: <what is allowed>``, with
the 1-based data row (header excluded) and the value when one cell is at fault: an empty or
unparseable file, a file with a header and no rows, missing operator or key columns, text,
infinite or negative numbers in time or key columns, empty cells in required key columns,
unparseable or unequal-length list columns (``q_lens`` etc.), negative token counts, an
unknown ``family`` in a native file, an operator column that is NaN in every row (with
``strict=True``) and times whose magnitude shows the wrong unit (median over 1,000 ms or
maximum under 1e-4 ms for Vidur/Frontier/aiconfigurator; median over 1 s or maximum under
1e-7 s for native files).

Rows whose time is *empty* (NaN) are dropped, not an error: Vidur and Frontier leave an
operator's cell empty (or 0) in configurations where it was not run. The dropped rows are
counted per file in ``frame.attrs["nan_times"]`` (``{source: rows}``). A time of 0 means "not
run" in Vidur/Frontier/aiconfigurator files (dropped, not counted) and is an error in native
files (whose times are measurements in seconds).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .devices import canonical_device
from .errors import DataError, _show  # noqa: F401  (DataError is part of this module's API)

FAMILIES = ("attention", "linear", "moe", "collective")
FORMATS = ("auto", "vidur", "frontier", "aiconfigurator", "native")

_TS = re.compile(r"^time_stats\.(?P<op>.+)\.(?P<stat>min|max|mean|median|std)$")

_ATTN_OPS = {
    "attn_input_reshape",
    "attn_kv_cache_save",
    "attn_prefill",
    "attn_decode",
    "attn_output_reshape",
}
_COLLECTIVE_OPS = {"all_reduce", "send_recv", "all_gather", "reduce_scatter", "alltoall"}
_FRONTIER_MARKERS = {
    "measurement_type",
    "mode",
    "seq_lens",
    "total_routed_tokens",
    "padded_n_embd",
    "profiling_precision",
    "quant_signature",
}

# Head sizes of models whose config sets head_dim != hidden / heads (HF configs). Frontier's
# profiler takes head_dim from the HF config; its CSVs do not record it.
KNOWN_HEAD_DIMS = (("qwen3-next", 256), ("qwen3", 128))

# Tolerances of the unit check (milliseconds per op per layer).
_MAX_PLAUSIBLE_MEDIAN_MS = 1e3
_MIN_PLAUSIBLE_MAX_MS = 1e-4


# --------------------------------------------------------------------------------------
# errors and small helpers


def _err(file: str, column: str, problem: str, allowed: str) -> DataError:
    return DataError(file, f"column {column}", problem, allowed)


# Largest integer accepted in a key column (sizes in bytes, token counts): beyond 2**53 a
# float64 no longer holds it exactly.
_MAX_KEY = 2**53
# Largest entry of a list-valued column (tokens of one sequence).
_MAX_TOKENS = 2**31 - 1


def parse_int_list(value) -> tuple[int, ...] | None:
    """Parse a list-valued cell such as ``"[1496, 1240]"`` into a tuple of ints.

    Returns ``None`` for NaN/empty cells. Lists, tuples and numpy arrays pass through.

    Raises:
        ValueError: an element that is not a finite number (``"[1, x]"``, ``"[inf]"``).
    """
    if value is None:
        return None
    try:
        if isinstance(value, (list, tuple, np.ndarray)):
            return tuple(int(round(float(v))) for v in value)
        if isinstance(value, float) and math.isnan(value):
            return None
        s = str(value).strip()
        if not s or s.lower() in ("nan", "none"):
            return None
        s = s.strip("[]()")
        if not s.strip():
            return ()
        return tuple(int(round(float(x))) for x in s.replace(";", ",").split(",") if x.strip())
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"not a list of integers: {_show(value)}") from e


def _parse_bool_list(value) -> tuple[bool, ...] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(bool(v) for v in value)
    if isinstance(value, float) and math.isnan(value):
        return None
    s = str(value).strip().strip("[]()")
    if not s:
        return ()
    out = []
    for x in s.split(","):
        x = x.strip().lower()
        if not x:
            continue
        if x not in _BOOL_TOKENS:
            raise ValueError(f"not a list of true/false: {_show(value)}")
        out.append(_BOOL_TOKENS[x])
    return tuple(out)


_BOOL_TOKENS = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}


def _as_bool(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return False
    return bool(v)


def _num(row, col, default=np.nan) -> float:
    v = row.get(col, default)
    try:
        v = float(v)
    except (TypeError, ValueError, OverflowError):
        return default
    return default if math.isnan(v) else v


def _row(df: pd.DataFrame, mask) -> int:
    """1-based data row (header excluded) of the first True of ``mask``; a frame holding a
    ``_row`` column (0-based file rows, for a subset of a file) maps through it."""
    pos = int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])
    return int(df["_row"].iloc[pos]) + 1 if "_row" in df.columns else pos + 1


def _cell(df: pd.DataFrame, mask, col: str):
    return df[col].iloc[int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])]


def _to_float(x) -> float:
    """A cell as float: NaN for text and other objects, +-inf for integers too large."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf
    except (TypeError, ValueError):
        return math.nan


def _numeric(df: pd.DataFrame, col: str) -> tuple[pd.Series, np.ndarray]:
    """The column as float (NaN where empty) and a mask of cells that are not numbers."""
    raw = df[col]
    try:
        v = pd.to_numeric(raw, errors="coerce")
    except (TypeError, ValueError, OverflowError):  # lists or other objects, integers > 1e308
        v = pd.Series([_to_float(x) for x in raw], index=raw.index, dtype=float)
    v = v.astype(float)
    notnum = (v.isna() & raw.notna()).to_numpy()
    return v, notnum


def _check_numbers(df: pd.DataFrame, file: str, cols: dict[str, tuple]) -> None:
    """Check numeric key columns: ``{column: (minimum, required[, maximum])}``. A required
    column must be present and hold a number in every row; an optional one may be absent or
    empty (its default is used). Every value present must be a finite number in
    [minimum, maximum] (default maximum 2**53)."""
    for col, (minimum, required, *rest) in cols.items():
        maximum = rest[0] if rest else _MAX_KEY
        top = "2**53" if maximum == _MAX_KEY else f"{maximum:g}"
        allowed = f"a number {minimum:g}..{top}" + ("" if required else " or empty (default)")
        if col not in df.columns:
            if required:
                raise _err(file, col, "missing (required key column)", f"a column {col} of numbers {minimum:g}..{top}")
            continue
        v, notnum = _numeric(df, col)
        if notnum.any():
            raise _err(file, col, f"row {_row(df, notnum)}: got {_show(_cell(df, notnum, col))} (not a number)",
                       allowed)
        if required and v.isna().any():
            raise _err(file, col, f"row {_row(df, v.isna())}: empty", allowed)
        a = v.to_numpy()
        bad = ~np.isnan(a) & (~np.isfinite(a) | (a < minimum) | (a > maximum))
        if bad.any():
            raise _err(file, col, f"row {_row(df, bad)}: got {a[bad][0]:g}", allowed)


# Largest batch (sequences in one row) and expert count accepted: the readers expand them
# into per-sequence / per-expert lists.
_MAX_BATCH = 2**16
_MAX_EXPERTS = 2**16


def _check_times(df: pd.DataFrame, file: str, col: str, allowed: str) -> pd.Series:
    """A time column as float: empty cells are NaN (the row is dropped for this column);
    text, infinite or negative values raise."""
    v, notnum = _numeric(df, col)
    if notnum.any():
        raise _err(file, col, f"row {_row(df, notnum)}: got {_show(_cell(df, notnum, col))} (not a number)",
                   allowed)
    a = v.to_numpy()
    bad = ~np.isnan(a) & (~np.isfinite(a) | (a < 0))
    if bad.any():
        raise _err(file, col, f"row {_row(df, bad)}: got {a[bad][0]:g}", allowed)
    return v


def _int_list(file: str, col: str, i: int, value, minimum: int = 0) -> tuple[int, ...] | None:
    """``parse_int_list`` of row ``i`` (0-based) of ``col``, raising one-line errors."""
    allowed = f"a list of integers {minimum}..2**31-1 such as [512, 128], or empty"
    try:
        out = parse_int_list(value)
    except ValueError:
        raise _err(file, col, f"row {i + 1}: got {_show(value)} (not a list of integers)", allowed) from None
    if out and (min(out) < minimum or max(out) > _MAX_TOKENS):
        bad = next(x for x in out if x < minimum or x > _MAX_TOKENS)
        raise _err(file, col, f"row {i + 1}: got {_show(value)} (entry {bad})", allowed)
    return out


_TIME_MS = "a time in milliseconds >= 0 (0 or empty: not measured, the row is dropped)"


def _head_dim(model: str, n_embd: float, n_q_head: float, override: int | None) -> int:
    if override:
        return int(override)
    low = model.lower()
    for key, hd in KNOWN_HEAD_DIMS:
        if key in low:
            return hd
    return int(n_embd // max(n_q_head, 1))


def _infer_device_model(rel: str, device: str | None) -> tuple[str, str]:
    parts = Path(rel).parts[:-1]
    dev = canonical_device(device) if device else "unknown"
    idx = None
    if dev == "unknown":
        for i, p in enumerate(parts):
            d = canonical_device(p)
            if d != "unknown":
                dev, idx = d, i
                break
    else:
        for i, p in enumerate(parts):
            if canonical_device(p) == dev:
                idx = i
                break
    if idx is not None and idx + 1 < len(parts):
        model = "/".join(parts[idx + 1 :])
    elif parts:
        model = parts[-1]
    else:
        model = ""
    return dev, model


def _ts_columns(df: pd.DataFrame) -> dict[str, dict[str, str]]:
    ops: dict[str, dict[str, str]] = {}
    for c in df.columns:
        m = _TS.match(str(c))
        if m:
            ops.setdefault(m.group("op"), {})[m.group("stat")] = c
    return ops


def _check_op_columns(df: pd.DataFrame, file: str, strict: bool) -> dict[str, dict[str, str]]:
    """Validate ``time_stats.<op>.*`` columns; return the ops that carry data."""
    ops = _ts_columns(df)
    if not ops:
        raise _err(file, "time_stats.<op>.median", "missing (no operator timing columns)",
                   "time_stats.<op>.median columns in milliseconds")
    keep: dict[str, dict[str, str]] = {}
    for op, cols in ops.items():
        if "median" not in cols:
            raise _err(file, f"time_stats.{op}.median", "missing (only " + ",".join(sorted(cols)) + ")",
                       f"a time_stats.{op}.median column beside the other statistics")
        col = cols["median"]
        v = _check_times(df, file, col, _TIME_MS)
        if v.isna().all():
            if strict:
                raise _err(file, col, "all values are NaN (operator never measured)",
                           "at least one measured time in milliseconds (strict=False drops the operator)")
            warnings.warn(f"{file}: column {col}: all values are NaN, operator dropped", stacklevel=3)
            continue
        pos = v[v > 0]
        if pos.empty:  # all zero: the op was not run by this harness
            continue
        med, mx = float(pos.median()), float(pos.max())
        if med > _MAX_PLAUSIBLE_MEDIAN_MS:
            raise _err(file, col, f"median {med:g} looks like microseconds (expected milliseconds per op)",
                       f"milliseconds per op per layer, median <= {_MAX_PLAUSIBLE_MEDIAN_MS:g}")
        if mx < _MIN_PLAUSIBLE_MAX_MS:
            raise _err(file, col, f"maximum {mx:g} looks like seconds (expected milliseconds per op)",
                       f"milliseconds per op per layer, maximum >= {_MIN_PLAUSIBLE_MAX_MS:g}")
        keep[op] = cols
    if not keep:
        raise _err(file, "time_stats.<op>.median", "every operator column is zero or NaN",
                   "at least one operator with a measured time > 0")
    return keep


def _require(df: pd.DataFrame, file: str, cols: Iterable[str]) -> None:
    for c in cols:
        if c not in df.columns:
            raise _err(file, c, "missing (required key column)", f"a column {c}")


def _family_of_ops(ops: Iterable[str]) -> str | None:
    ops = set(ops)
    if ops & _ATTN_OPS:
        return "attention"
    if any(o.startswith("moe_") for o in ops):
        return "moe"
    if ops & _COLLECTIVE_OPS:
        return "collective"
    if ops:
        return "linear"
    return None


def _measurement_type(row, file: str) -> str:
    mt = row.get("measurement_type")
    if isinstance(mt, str) and mt:
        return mt
    return "KERNEL_ONLY" if "kernel_only" in Path(file).name else "CUDA_EVENT"


def _op_key(op: str, measurement_type: str) -> str:
    return f"{op}@kernel_only" if measurement_type == "KERNEL_ONLY" else op


def _explode_ops(base: pd.DataFrame, df: pd.DataFrame, ops: dict[str, dict[str, str]],
                 valid: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Turn wide ``time_stats.<op>`` columns into long rows (ms -> s); rows whose time is
    empty or 0 are dropped."""
    out = []
    for op, cols in ops.items():
        t = pd.to_numeric(df[cols["median"]], errors="coerce").to_numpy(dtype=float)
        s = _numeric(df, cols["std"])[0].to_numpy() if "std" in cols else np.full(len(df), np.nan)
        s = np.where(np.isfinite(s) & (s >= 0), s, np.nan)
        ok = np.isfinite(t) & (t > 0)
        if valid is not None and op in valid:
            ok &= valid[op]
        if not ok.any():
            continue
        part = base.loc[ok].copy()
        part["source_row"] = df.index.to_numpy()[ok]  # the row's place in its file (0 = first data row)
        part["op"] = [_op_key(op, mt) for mt in part["measurement_type"]]
        part["time_s"] = t[ok] * 1e-3
        part["std_s"] = s[ok] * 1e-3
        out.append(part)
    if not out:
        return base.iloc[:0].assign(op=pd.Series(dtype=str), time_s=pd.Series(dtype=float),
                                    std_s=pd.Series(dtype=float))
    return pd.concat(out, ignore_index=True)


def _rle(q: list[int], c: list[int], d: list[bool]) -> tuple[tuple, tuple, tuple, tuple]:
    """Group consecutive identical (q, c, decode) sequences."""
    gq, gc, gd, gn = [], [], [], []
    for qi, ci, di in zip(q, c, d, strict=True):
        if gq and gq[-1] == qi and gc[-1] == ci and gd[-1] == di:
            gn[-1] += 1
        else:
            gq.append(int(qi))
            gc.append(int(ci))
            gd.append(bool(di))
            gn.append(1)
    return tuple(gq), tuple(gc), tuple(gd), tuple(gn)


def _batch_kind(q, c, d, n, mode: str) -> str:
    has_p = any((not di) and ni > 0 for di, ni in zip(d, n, strict=True))
    has_d = any(di and ni > 0 for di, ni in zip(d, n, strict=True))
    if has_p and has_d:
        return "mixed"
    if mode in ("random", "online_grid_balanced", "online_grid_skewed") or mode.startswith("online"):
        return "heterogeneous"
    if len({(qi, ci) for qi, ci in zip(q, c, strict=True)}) > 1:
        return "heterogeneous"
    return "homogeneous"


# --------------------------------------------------------------------------------------
# Vidur / Frontier CSV readers


def _read_attention(df: pd.DataFrame, file: str, rel: str, fmt: str, device: str, model: str,
                    ops, head_dim: int | None) -> pd.DataFrame:
    _check_numbers(df, file, {"n_embd": (1, True), "n_q_head": (1, True), "n_kv_head": (1, True),
                              "num_tensor_parallel_workers": (1, True), "batch_size": (1, True, _MAX_BATCH),
                              "kv_cache_size": (0, True), "prefill_chunk_size": (0, False),
                              "head_dim": (0, False), "block_size": (1, False)})
    if "is_prefill" not in df.columns and "prefill_chunk_size" not in df.columns:
        raise _err(file, "is_prefill", "missing (required key column)",
                   "a column is_prefill (true/false) or prefill_chunk_size")
    recs = []
    n_p = np.zeros(len(df), dtype=np.int64)
    n_d = np.zeros(len(df), dtype=np.int64)
    for i, row in enumerate(df.to_dict("records")):
        bs = int(_num(row, "batch_size", 1))
        kv = int(_num(row, "kv_cache_size", 0))
        chunk = int(_num(row, "prefill_chunk_size", 0))
        is_prefill = _as_bool(row.get("is_prefill", chunk > 0))
        pq = _int_list(file, "prefill_seq_lens", i, row.get("prefill_seq_lens"), 1)
        true_mixed = _as_bool(row.get("is_true_mixed_batch")) or (pq is not None and len(pq) > 0)
        if true_mixed:
            pq = list(pq or ())
            pc = list(_int_list(file, "prefill_kv_cache_sizes", i, row.get("prefill_kv_cache_sizes"))
                      or [0] * len(pq))
            dc = list(_int_list(file, "decode_kv_cache_sizes", i, row.get("decode_kv_cache_sizes")) or ())
            if len(pc) != len(pq):
                raise _err(file, "prefill_kv_cache_sizes",
                           f"row {i + 1}: length {len(pc)} != prefill_seq_lens length {len(pq)}",
                           "one KV-cache size per prefill sequence")
            if not pq and not dc:
                raise _err(file, "prefill_seq_lens", f"row {i + 1}: a true mixed batch with no sequences",
                           "at least one entry in prefill_seq_lens or decode_kv_cache_sizes")
            q = pq + [1] * len(dc)
            c = pc + dc
            d = [False] * len(pq) + [True] * len(dc)
        elif is_prefill:
            sl = _int_list(file, "seq_lens", i, row.get("seq_lens"), 1)
            q = list(sl) if sl else [chunk] * bs
            c = [kv] * len(q)
            d = [False] * len(q)
        else:
            q, c, d = [1] * bs, [kv] * bs, [True] * bs
        gq, gc, gd, gn = _rle(q, c, d)
        n_p[i] = sum(n for n, dd in zip(gn, gd, strict=True) if not dd)
        n_d[i] = sum(n for n, dd in zip(gn, gd, strict=True) if dd)
        tp = int(_num(row, "num_tensor_parallel_workers", 1))
        nq, nkv, h = _num(row, "n_q_head"), _num(row, "n_kv_head"), _num(row, "n_embd")
        hd = int(_num(row, "head_dim", 0)) or _head_dim(model, h, nq, head_dim)
        mode = row.get("mode")
        mode = mode if isinstance(mode, str) and mode else "even"
        mt = _measurement_type(row, file)
        prec = str(row.get("profiling_precision", "BF16") or "BF16").upper()
        dtype_bytes = 1 if "FP8" in prec and "KV" in prec else 2
        lq, lkv = max(nq / tp, 1.0), max(nkv / tp, 1.0)
        bsz = int(_num(row, "block_size", 16))
        key = (f"attention|{device}|h={int(h)}|nq={int(nq)}|nkv={int(nkv)}|hd={hd}|tp={tp}|blk={bsz}"
               f"|q={gq}|c={gc}|d={tuple(int(x) for x in gd)}|n={gn}")
        recs.append({
            "family": "attention", "device": device, "model": model, "source": rel,
            "source_format": fmt, "measurement_type": mt, "config_key": key,
            "q_lens": gq, "c_lens": gc, "is_decode": gd, "counts": gn,
            "n_q_heads": lq, "n_kv_heads": lkv, "head_dim": hd, "tp": tp, "block_size": bsz,
            "dtype_bytes": dtype_bytes, "mode": mode, "batch_kind": _batch_kind(gq, gc, gd, gn, mode),
        })
    base = pd.DataFrame.from_records(recs)
    valid = {"attn_prefill": n_p > 0, "attn_decode": n_d > 0}
    return _explode_ops(base, df, ops, valid)


_LINEAR_ELEMENTWISE = {
    "emb", "input_layernorm", "post_attention_layernorm", "attn_rope", "mlp_act", "add",
    "share_expert_act", "attn_pre_proj_q_norm",
}


def linear_op_shape(op: str, *, n_embd: int, n_head: int, n_kv_head: int, head_dim: int,
                    ffn: int, vocab: int, tp: int, gated: bool = True,
                    share_expert_dim: int | None = None, share_q_dim: int | None = None,
                    attn_output_gate: bool = False) -> tuple[int, int, bool]:
    """Per-GPU shape ``(n, k, is_gemm)`` of a linear-family operator of one decoder layer.

    ``n`` is the output width and ``k`` the reduction width of the GEMM (tokens are ``m``);
    element-wise ops (norms, rope, activation, embedding lookup, add) return
    ``(width, 1, False)``. Sharding follows Megatron TP (column-parallel QKV/up, row-parallel
    O/down); replicated ops (lm head, MTP fusion) are unsharded.
    """
    tp = max(int(tp), 1)
    h, hd = int(n_embd), int(head_dim)
    q_out = (2 if attn_output_gate else 1) * n_head * hd
    sd = int(share_expert_dim or ffn)
    sq = int(share_q_dim or n_head * hd)
    table = {
        "attn_pre_proj": ((q_out + 2 * n_kv_head * hd) // tp, h, True),
        "attn_pre_proj_qkv": (sq + 2 * n_kv_head * hd, h, True),
        "attn_pre_proj_wq": ((n_head * hd) // tp, sq, True),
        "attn_post_proj": (h, (n_head * hd) // tp, True),
        "mlp_up_proj": (((2 if gated else 1) * ffn) // tp, h, True),
        "mlp_down_proj": (h, ffn // tp, True),
        "share_expert_up_proj": (((2 if gated else 1) * sd) // tp, h, True),
        "share_expert_down_proj": (h, sd // tp, True),
        "lm_head_linear": (vocab, h, True),
        "mtp_fusion_proj": (h, 2 * h, True),
        "emb": (h, 1, False),
        "input_layernorm": (h, 1, False),
        "post_attention_layernorm": (h, 1, False),
        "add": (h, 1, False),
        "attn_rope": (((n_head + n_kv_head) * hd) // tp, 1, False),
        "mlp_act": (ffn // tp, 1, False),
        "share_expert_act": (sd // tp, 1, False),
        "attn_pre_proj_q_norm": (sq, 1, False),
    }
    n, k, g = table.get(op, (h, 1, False))
    return max(int(n), 1), max(int(k), 1), g


def _read_linear(df, file, rel, fmt, device, model, ops, head_dim):
    _check_numbers(df, file, {"num_tokens": (1, True), "n_embd": (1, True), "n_head": (1, True),
                              "n_kv_head": (0, True), "num_tensor_parallel_workers": (1, True),
                              "head_dim": (0, False), "n_expanded_embd": (1, False),
                              "vocab_size": (1, False), "share_expert_dim": (0, False),
                              "share_q_dim": (0, False)})
    rows = df.to_dict("records")
    base_recs = []
    for row in rows:
        tp = int(_num(row, "num_tensor_parallel_workers", 1))
        h, nq, nkv = int(_num(row, "n_embd")), int(_num(row, "n_head")), int(_num(row, "n_kv_head"))
        hd = int(_num(row, "head_dim", 0)) or _head_dim(model, h, nq, head_dim)
        ffn = int(_num(row, "n_expanded_embd", 4 * h))
        vocab = int(_num(row, "vocab_size", 32000))
        quant = str(row.get("quant_signature", "") or "").lower()
        dtype_bytes = 1 if "fp8" in quant else 2
        m = int(_num(row, "num_tokens"))
        key = (f"linear|{device}|h={h}|nq={nq}|nkv={nkv}|hd={hd}|f={ffn}|v={vocab}|tp={tp}"
               f"|w={dtype_bytes}|m={m}")
        base_recs.append({
            "family": "linear", "device": device, "model": model, "source": rel,
            "source_format": fmt, "measurement_type": _measurement_type(row, file),
            "config_key": key, "m": m, "tp": tp, "dtype_bytes": dtype_bytes, "batch_kind": "dense",
            "_shape": dict(n_embd=h, n_head=nq, n_kv_head=nkv, head_dim=hd, ffn=ffn, vocab=vocab,
                           tp=tp, gated=_as_bool(row.get("use_gated_mlp", True)),
                           share_expert_dim=int(_num(row, "share_expert_dim", 0)) or None,
                           share_q_dim=int(_num(row, "share_q_dim", 0)) or None,
                           attn_output_gate=_as_bool(row.get("attn_output_gate", False))),
        })
    base = pd.DataFrame.from_records(base_recs)
    long = _explode_ops(base, df, ops)
    shapes = [linear_op_shape(op.split("@")[0], **sh) for op, sh in zip(long["op"], long["_shape"], strict=True)]
    long["n"] = [s[0] for s in shapes]
    long["k"] = [s[1] for s in shapes]
    long["is_gemm"] = [s[2] for s in shapes]
    return long.drop(columns="_shape")


def moe_stats_from_counts(counts: np.ndarray) -> dict:
    """Load statistics of one GPU's local experts from their token counts.

    Returns a dict with ``routed_tokens, local_experts, active_experts, max_tokens,
    min_tokens, load_cv`` (population std / mean), ``load_gini`` and ``load_entropy_bits``
    (Shannon entropy of count/total in bits), the definitions of Frontier's moe.csv.
    """
    x = np.asarray(counts, dtype=float)
    n = len(x)
    tot = float(x.sum())
    mean = tot / max(n, 1)
    xs = np.sort(x)
    gini = float((2 * np.sum(np.arange(1, n + 1) * xs) / (n * tot)) - (n + 1) / n) if tot > 0 else 0.0
    p = x[x > 0] / tot if tot > 0 else np.zeros(0)
    return dict(routed_tokens=tot, local_experts=n, active_experts=int((x > 0).sum()),
                max_tokens=float(x.max(initial=0)), min_tokens=float(x.min(initial=0)),
                load_cv=float(x.std() / mean) if mean > 0 else 0.0, load_gini=gini,
                load_entropy_bits=float(-(p * np.log2(p)).sum()))


def _balanced_stats(routed: float, local: int) -> dict:
    local = max(int(local), 1)
    mean = routed / local
    lo, hi = math.floor(mean), math.ceil(mean)
    n_hi = int(round(routed - lo * local))
    counts = np.array([hi] * n_hi + [lo] * (local - n_hi), dtype=float)
    return moe_stats_from_counts(counts)


# smallest load statistic accepted (Frontier writes entropies such as -2.9e-12)
_STAT_MIN = -1e-6
_MOE_STAT_COLUMNS = ("total_routed_tokens", "tokens_per_expert_avg", "expert_utilization",
                     "max_load_ratio", "min_load_ratio", "load_imbalance_cv",
                     "load_gini_coefficient", "load_entropy")


def _read_moe(df, file, rel, fmt, device, model, ops, head_dim):
    _check_numbers(df, file, {"num_tokens": (0, True), "num_experts": (1, True, _MAX_EXPERTS), "router_topk": (1, True),
                              "hidden_dim": (1, True), "expert_hidden_dim": (1, True),
                              "expert_parallel_size": (1, False), "num_experts_per_device": (1, False, _MAX_EXPERTS),
                              "num_tensor_parallel_workers": (1, False),
                              **{c: (_STAT_MIN, False) for c in _MOE_STAT_COLUMNS}})
    recs = []
    for row in df.to_dict("records"):
        E = int(_num(row, "num_experts"))
        ep = int(_num(row, "expert_parallel_size", 1))
        local = int(_num(row, "num_experts_per_device", E // max(ep, 1)))
        topk = int(_num(row, "router_topk"))
        ntok = float(_num(row, "num_tokens"))
        routed = _num(row, "total_routed_tokens")
        if math.isnan(routed) or math.isnan(_num(row, "tokens_per_expert_avg")):
            st = _balanced_stats(ntok * topk * local / max(E, 1), local)
        else:
            mean = _num(row, "tokens_per_expert_avg", routed / max(local, 1))
            st = dict(routed_tokens=routed, local_experts=local,
                      active_experts=float(round(_num(row, "expert_utilization", 1.0) * local)),
                      max_tokens=_num(row, "max_load_ratio", 1.0) * mean,
                      min_tokens=_num(row, "min_load_ratio", 1.0) * mean,
                      load_cv=_num(row, "load_imbalance_cv", 0.0),
                      load_gini=_num(row, "load_gini_coefficient", 0.0),
                      load_entropy_bits=_num(row, "load_entropy", math.log2(max(local, 1))))
        quant = str(row.get("quant_signature", "") or "").lower()
        tp = int(_num(row, "num_tensor_parallel_workers", 1))
        hid, ehid = int(_num(row, "hidden_dim")), int(_num(row, "expert_hidden_dim"))
        key = (f"moe|{device}|E={E}|le={local}|ep={ep}|tp={tp}|k={topk}|h={hid}|eh={ehid}|t={int(ntok)}"
               f"|r={st['routed_tokens']:.0f}|a={st['active_experts']:.0f}|mx={st['max_tokens']:.2f}"
               f"|mn={st['min_tokens']:.2f}|cv={st['load_cv']:.5f}|g={st['load_gini']:.5f}"
               f"|path={row.get('routing_runtime_path', '')}|ctx={row.get('gating_runtime_context', '')}")
        recs.append({
            "family": "moe", "device": device, "model": model, "source": rel, "source_format": fmt,
            "measurement_type": _measurement_type(row, file), "config_key": key,
            "num_tokens": ntok, **{k: float(v) for k, v in st.items()},
            "hidden": hid, "expert_hidden": ehid, "topk": topk,
            "gated": int(_as_bool(row.get("use_gated", True))), "tp": tp, "ep": ep, "num_experts": E,
            "dtype_bytes": 1 if "fp8" in quant else 2,
            "warm_context": int(str(row.get("gating_runtime_context", "")) == "prefill_hot"),
            "batch_kind": "balanced" if st["load_cv"] < 0.1 else "skewed",
        })
    base = pd.DataFrame.from_records(recs)
    return _explode_ops(base, df, ops)


def _read_collective(df, file, rel, fmt, device, model, ops, head_dim):
    _check_numbers(df, file, {"size": (0, True), "num_workers": (1, True), "devices_per_node": (1, False)})
    recs = []
    for row in df.to_dict("records"):
        nw = int(_num(row, "num_workers"))
        dpn = int(_num(row, "devices_per_node", nw))
        size = float(_num(row, "size"))
        recs.append({
            "family": "collective", "device": device, "model": model, "source": rel,
            "source_format": fmt, "measurement_type": _measurement_type(row, file),
            "config_key": f"collective|{device}|{model}|nw={nw}|dpn={dpn}|size={int(size)}",
            "size_bytes": size, "num_workers": nw, "devices_per_node": dpn,
            "batch_kind": "intra_node" if dpn >= nw else "inter_node",
        })
    base = pd.DataFrame.from_records(recs)
    return _explode_ops(base, df, ops)


_READERS = {
    "attention": _read_attention,
    "linear": _read_linear,
    "moe": _read_moe,
    "collective": _read_collective,
}


def _read_time_stats_csv(df: pd.DataFrame, file: str, rel: str, fmt: str, device: str | None,
                         strict: bool, head_dim: int | None) -> tuple[str, pd.DataFrame]:
    ops = _check_op_columns(df, file, strict)
    family = _family_of_ops(ops)
    if family == "collective" and "size" not in df.columns:
        raise _err(file, "size", "missing (required key column)", "a column size (bytes)")
    dev, model = _infer_device_model(rel, device)
    if dev == "unknown" and not device:
        dev, model = _infer_device_model(str(Path(file).resolve()), None)
        if dev == "unknown":
            warnings.warn(f"{file}: device not recognised from the path; roofline features use the "
                          "'unknown' (H100-class) spec - pass device=...", stacklevel=3)
    detected = "frontier" if (set(df.columns) & _FRONTIER_MARKERS) else "vidur"
    out = _READERS[family](df, file, rel, detected if fmt == "auto" else fmt, dev, model, ops, head_dim)
    # empty median cells of every operator column (validated numeric by _check_op_columns)
    out.attrs["nan_times"] = int(sum(pd.to_numeric(df[c["median"]], errors="coerce").isna().sum()
                                     for c in _ts_columns(df).values() if "median" in c))
    return family, out


# --------------------------------------------------------------------------------------
# aiconfigurator parquet tables

_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "fp8": 1, "fp8_block": 1, "int8": 1,
                "w4a16_mxfp4": 1, "int4_wo": 1}


_ATTN_AIC = ({"batch_size": (1, True, _MAX_BATCH), "isl": (1, True), "step": (0, True),
              "num_heads": (1, True), "num_key_value_heads": (1, True), "head_dim": (1, True),
              "window_size": (0, False), "beam_width": (1, False)}, ["kv_cache_dtype"])
# per aiconfigurator table: numeric key columns ({column: (minimum, required[, maximum])}) and
# required text columns
_AIC_KEYS = {
    "gemm": ({"m": (1, True), "n": (1, True), "k": (1, True)}, ["gemm_dtype"]),
    "context_attention": _ATTN_AIC,
    "generation_attention": _ATTN_AIC,
    "moe": ({"num_tokens": (1, True), "hidden_size": (1, True), "inter_size": (1, True),
             "topk": (1, True), "num_experts": (1, True, _MAX_EXPERTS), "moe_tp_size": (1, True),
             "moe_ep_size": (1, True)}, ["moe_dtype", "distribution"]),
}


def _read_aiconfigurator(df: pd.DataFrame, file: str, rel: str, device: str | None) -> tuple[str | None, pd.DataFrame | None]:
    _require(df, file, ["op_name", "latency"])
    lat = _check_times(df, file, "latency", _TIME_MS)
    if lat.isna().all():
        raise _err(file, "latency", "all values are NaN", "at least one measured time in milliseconds")
    pos = lat[lat > 0]
    if not pos.empty and float(pos.median()) > _MAX_PLAUSIBLE_MEDIAN_MS:
        raise _err(file, "latency", f"median {float(pos.median()):g} looks like microseconds (expected milliseconds)",
                   f"milliseconds per call, median <= {_MAX_PLAUSIBLE_MEDIAN_MS:g}")
    if not pos.empty and float(pos.max()) < _MIN_PLAUSIBLE_MAX_MS:
        raise _err(file, "latency", f"maximum {float(pos.max()):g} looks like seconds (expected milliseconds)",
                   f"milliseconds per call, maximum >= {_MIN_PLAUSIBLE_MAX_MS:g}")
    names = df["op_name"].astype(str).unique()
    kind = str(df["op_name"].iloc[0]) if len(df) else ""
    if len(names) > 1 and (kind in _AIC_KEYS or kind in _COLLECTIVE_OPS):
        group = _COLLECTIVE_OPS if kind in _COLLECTIVE_OPS else {kind}
        odd = next((n for n in names if n not in group), None)
        if odd is not None:
            raise _err(file, "op_name", f"got {_show(odd)} beside {kind!r}",
                       "one op_name per table (collective tables: " + ", ".join(sorted(_COLLECTIVE_OPS)) + ")")
    if kind in _AIC_KEYS:
        numbers, strings = _AIC_KEYS[kind]
        _require(df, file, strings)
        _check_numbers(df, file, numbers)
    elif kind in _COLLECTIVE_OPS and "message_size" in df.columns:
        _check_numbers(df, file, {"message_size": (0, True), "num_gpus": (1, True)})
    dev = canonical_device(str(df["device"].iloc[0])) if "device" in df.columns and len(df) else None
    if not dev or dev == "unknown":
        dev, _ = _infer_device_model(rel, device)
    ks = (df["kernel_source"].astype(str) if "kernel_source" in df.columns
          else pd.Series([""] * len(df), index=df.index))
    base = pd.DataFrame({"device": dev, "model": "", "source": rel, "source_format": "aiconfigurator",
                         "measurement_type": "CUDA_EVENT", "time_s": lat.to_numpy() * 1e-3,
                         "std_s": np.nan}, index=df.index)
    if kind == "gemm":
        dt = df["gemm_dtype"].astype(str)
        base["family"] = "linear"
        base["op"] = "gemm@" + dt + "/" + ks
        base["m"], base["n"], base["k"] = df["m"].astype(int), df["n"].astype(int), df["k"].astype(int)
        base["is_gemm"], base["tp"], base["batch_kind"] = True, 1, "dense"
        base["dtype_bytes"] = dt.map(_DTYPE_BYTES).fillna(2).astype(int)
        base["config_key"] = ("linear|" + dev + "|" + dt + "|m=" + base["m"].astype(str) + "|n="
                              + base["n"].astype(str) + "|k=" + base["k"].astype(str))
        fam = "linear"
    elif kind in ("context_attention", "generation_attention"):
        ws = pd.to_numeric(df["window_size"], errors="coerce") if "window_size" in df.columns else 0
        bw = pd.to_numeric(df["beam_width"], errors="coerce") if "beam_width" in df.columns else 1
        keep = pd.Series((ws == 0) & (bw == 1), index=df.index)  # full attention, no beam search
        df, base, ks = df[keep], base[keep], ks[keep]
        dec = kind == "generation_attention"
        bs = df["batch_size"].astype(int).to_numpy()
        isl = df["isl"].astype(int).to_numpy()
        step = df["step"].astype(int).to_numpy()
        base["family"] = "attention"
        name = "attn_decode" if dec else "attn_prefill"
        base["op"] = name + "@" + ks + "/kv=" + df["kv_cache_dtype"].astype(str)
        base["q_lens"] = [(1,) if dec else (int(i),) for i in isl]
        base["c_lens"] = [(int(s),) for s in step]
        base["is_decode"] = [(dec,)] * len(df)
        base["counts"] = [(int(b),) for b in bs]
        base["n_q_heads"] = df["num_heads"].astype(float).to_numpy()
        base["n_kv_heads"] = df["num_key_value_heads"].astype(float).to_numpy()
        base["head_dim"] = df["head_dim"].astype(int).to_numpy()
        base["tp"], base["block_size"] = 1, 16
        base["dtype_bytes"] = df["kv_cache_dtype"].astype(str).map(_DTYPE_BYTES).fillna(2).astype(int).to_numpy()
        base["mode"], base["batch_kind"] = "even", "homogeneous"
        base["config_key"] = [
            f"attention|{dev}|nq={a}|nkv={b}|hd={c}|kv={e}|q={q}|c={cc}|d={int(dec)}|n={n}"
            for a, b, c, e, q, cc, n in zip(base["n_q_heads"], base["n_kv_heads"], base["head_dim"],
                                            df["kv_cache_dtype"], base["q_lens"], base["c_lens"],
                                            base["counts"], strict=True)]
        fam = "attention"
    elif kind == "moe":
        keep = df["distribution"].astype(str) == "balanced"
        df, base, ks = df[keep], base[keep], ks[keep]
        recs = []
        for row in df.to_dict("records"):
            ep = int(row["moe_ep_size"])
            E = int(row["num_experts"])
            local = max(E // max(ep, 1), 1)
            routed = float(row["num_tokens"]) * int(row["topk"]) / max(ep, 1)
            recs.append(_balanced_stats(routed, local))
        st = pd.DataFrame.from_records(recs, index=df.index)
        for c in st.columns:
            base[c] = st[c].astype(float)
        base["family"] = "moe"
        base["op"] = "moe_block@" + df["moe_dtype"].astype(str) + "/" + ks
        base["num_tokens"] = df["num_tokens"].astype(float)
        base["hidden"], base["expert_hidden"] = df["hidden_size"].astype(int), df["inter_size"].astype(int)
        base["topk"], base["gated"] = df["topk"].astype(int), 1
        base["tp"], base["ep"] = df["moe_tp_size"].astype(int), df["moe_ep_size"].astype(int)
        base["num_experts"] = df["num_experts"].astype(int)
        base["dtype_bytes"] = df["moe_dtype"].astype(str).map(_DTYPE_BYTES).fillna(2).astype(int)
        base["batch_kind"] = "balanced"
        base["config_key"] = ("moe|" + dev + "|" + df["moe_dtype"].astype(str) + "|t=" + df["num_tokens"].astype(str)
                              + "|h=" + base["hidden"].astype(str) + "|i=" + base["expert_hidden"].astype(str)
                              + "|k=" + base["topk"].astype(str) + "|E=" + base["num_experts"].astype(str)
                              + "|tp=" + base["tp"].astype(str) + "|ep=" + base["ep"].astype(str))
        fam = "moe"
    elif kind in _COLLECTIVE_OPS and "message_size" in df.columns:
        dtcol = "nccl_dtype" if "nccl_dtype" in df.columns else "allreduce_dtype"
        eb = df[dtcol].astype(str).map(_DTYPE_BYTES).fillna(2) if dtcol in df.columns else 2
        backend = df["backend"].astype(str) if "backend" in df.columns else pd.Series("nccl", index=df.index)
        base["family"] = "collective"
        base["op"] = df["op_name"].astype(str) + "@" + backend
        base["size_bytes"] = df["message_size"].astype(float) * eb
        base["num_workers"] = df["num_gpus"].astype(int)
        base["devices_per_node"] = df["num_gpus"].astype(int)
        base["batch_kind"] = "intra_node"
        base["config_key"] = ("collective|" + dev + "|" + base["op"] + "|nw=" + base["num_workers"].astype(str)
                              + "|size=" + base["size_bytes"].astype(int).astype(str))
        fam = "collective"
    else:
        return None, None
    nan_rows = int(base["time_s"].isna().sum())
    base = base[np.isfinite(base["time_s"]) & (base["time_s"] > 0)].reset_index(drop=True)
    base.attrs["nan_times"] = nan_rows
    return fam, base


# --------------------------------------------------------------------------------------
# native format

_LIST_COLS = ("q_lens", "c_lens", "is_decode", "counts")


# native numeric columns per family: {column: (minimum, required[, maximum])}
_NATIVE_NUMBERS = {
    "attention": {"n_q_heads": (1, True), "n_kv_heads": (1, True), "head_dim": (1, True),
                  "tp": (1, False), "block_size": (1, False), "dtype_bytes": (1, False, 8)},
    "linear": {"m": (1, True), "n": (1, True), "k": (1, True), "tp": (1, False),
               "dtype_bytes": (1, False, 8)},
    "moe": {"num_tokens": (0, True), "routed_tokens": (0, True),
            "local_experts": (1, True, _MAX_EXPERTS), "active_experts": (0, True),
            "max_tokens": (0, True), "min_tokens": (0, True), "load_cv": (_STAT_MIN, True),
            "load_gini": (_STAT_MIN, True), "load_entropy_bits": (_STAT_MIN, True), "hidden": (1, True),
            "expert_hidden": (1, True), "topk": (1, True), "gated": (0, False, 1), "tp": (1, False),
            "ep": (1, False), "num_experts": (1, False, _MAX_EXPERTS), "dtype_bytes": (1, False, 8),
            "warm_context": (0, False, 1)},
    "collective": {"size_bytes": (0, True), "num_workers": (1, True), "devices_per_node": (1, False)},
}
# defaults of optional native columns, added after the configuration key is formed
_NATIVE_DEFAULTS = {
    "attention": {"tp": 1, "block_size": 16, "dtype_bytes": 2},
    "linear": {"tp": 1, "dtype_bytes": 2, "batch_kind": "dense"},
    "moe": {"gated": 1, "tp": 1, "ep": 1, "dtype_bytes": 2, "warm_context": 0},
    "collective": {},
}
_TIME_S = "a time in seconds > 0 (empty: not measured, the row is dropped)"
_MAX_GROUPS = 2**16


def _native_attention_lists(part: pd.DataFrame, file: str) -> pd.DataFrame:
    """Parse and check the list columns of native attention rows (equal lengths, q >= 0,
    c >= 0, counts >= 1, at least one group)."""
    lists: dict[str, list] = {}
    for c, minimum in (("q_lens", 0), ("c_lens", 0), ("counts", 1)):
        if c not in part.columns:
            continue
        vals = []
        for i, v in zip(part["_row"], part[c], strict=True):
            out = _int_list(file, c, i, v, minimum)
            if out is None:
                if c == "counts":
                    vals.append(None)
                    continue
                raise _err(file, c, f"row {i + 1}: empty", "a list of integers such as [512, 128]")
            if len(out) > _MAX_GROUPS:
                raise _err(file, c, f"row {i + 1}: {len(out)} entries", f"at most {_MAX_GROUPS} groups")
            vals.append(out)
        lists[c] = vals
    if "is_decode" in part.columns:
        dec = []
        for i, v in zip(part["_row"], part["is_decode"], strict=True):
            try:
                dec.append(_parse_bool_list(v))
            except ValueError:
                raise _err(file, "is_decode", f"row {i + 1}: got {_show(v)}",
                           "a list of true/false (or 1/0) such as [false, true], or empty") from None
        lists["is_decode"] = dec
    n = len(part)
    q, c = lists["q_lens"], lists["c_lens"]
    counts = lists.get("counts", [None] * n)
    dec = lists.get("is_decode", [None] * n)
    for j, i in enumerate(part["_row"]):
        if not q[j]:
            raise _err(file, "q_lens", f"row {i + 1}: no groups", "a non-empty list such as [512]")
        counts[j] = counts[j] if counts[j] is not None else (1,) * len(q[j])
        dec[j] = dec[j] if dec[j] is not None else tuple(a == 1 and b > 0 for a, b in zip(q[j], c[j], strict=False))
        for name, other in (("c_lens", c[j]), ("counts", counts[j]), ("is_decode", dec[j])):
            if len(other) != len(q[j]):
                raise _err(file, name, f"row {i + 1}: length {len(other)} != q_lens length {len(q[j])}",
                           "one entry per q_lens group")
    part = part.copy()
    part["q_lens"], part["c_lens"], part["counts"], part["is_decode"] = q, c, counts, dec
    return part


def _read_native(df: pd.DataFrame, file: str, rel: str) -> dict[str, pd.DataFrame]:
    _require(df, file, ["family", "op", "time_s"])
    t = _check_times(df, file, "time_s", _TIME_S)
    if t.isna().all():
        raise _err(file, "time_s", "all values are NaN", "at least one measured time in seconds")
    if (t == 0).any():
        raise _err(file, "time_s", f"row {_row(df, t == 0)}: got 0", _TIME_S)
    pos = t[t > 0]
    if not pos.empty and float(pos.median()) > 1.0:
        raise _err(file, "time_s", f"median {float(pos.median()):g} looks like milliseconds or microseconds (expected seconds)",
                   "seconds per op per layer, median <= 1")
    if not pos.empty and float(pos.max()) < _MIN_PLAUSIBLE_MAX_MS * 1e-3:
        raise _err(file, "time_s", f"maximum {float(pos.max()):g} looks scaled down (expected seconds)",
                   f"seconds per op per layer, maximum >= {_MIN_PLAUSIBLE_MAX_MS * 1e-3:g}")
    fam_ok = df["family"].isin(FAMILIES).to_numpy()
    if not fam_ok.all():
        raise _err(file, "family", f"row {_row(df, ~fam_ok)}: got {_show(_cell(df, ~fam_ok, 'family'))}",
                   "one of " + ", ".join(FAMILIES))
    op_ok = np.array([isinstance(o, str) and bool(o.strip()) for o in df["op"]], dtype=bool)
    if not op_ok.all():
        raise _err(file, "op", f"row {_row(df, ~op_ok)}: got {_show(_cell(df, ~op_ok, 'op'))}",
                   "a non-empty operator name")
    nan_rows = int(t.isna().sum())
    df = df.copy()
    df["time_s"] = t
    df["_row"] = np.arange(len(df))
    df = df[t.notna().to_numpy()]
    if "std_s" not in df.columns:
        df["std_s"] = np.nan
    else:
        sd = _numeric(df, "std_s")[0]
        df["std_s"] = sd.where(np.isfinite(sd) & (sd >= 0))
    for c, default in (("source", rel), ("source_format", "native"), ("measurement_type", "CUDA_EVENT"),
                       ("device", "unknown"), ("model", ""), ("batch_kind", "")):
        if c not in df.columns:
            df[c] = default
    df["device"] = [d if isinstance(d, str) and d else "unknown" for d in df["device"]]
    for c in ("source", "source_format", "measurement_type", "model", "batch_kind"):
        df[c] = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in df[c]]
    out = {}
    for fam, part in df.groupby("family", sort=False):
        part = part.copy()
        missing = [c for c, spec in _NATIVE_NUMBERS[fam].items() if spec[1] and c not in part.columns]
        if fam == "attention":
            missing = [c for c in ("q_lens", "c_lens") if c not in part.columns] + missing
        if missing:
            raise _err(file, missing[0], f"missing (required for {fam} rows)",
                       f"a column {missing[0]} (see frontier_jax.predict.importers)")
        _check_numbers(part, file, _NATIVE_NUMBERS[fam])
        if fam == "attention":
            part = _native_attention_lists(part, file)
            for c, d in (("tp", 1), ("block_size", 16), ("dtype_bytes", 2), ("mode", "even")):
                if c not in part.columns:
                    part[c] = d
            part["mode"] = [m if isinstance(m, str) and m else "even" for m in part["mode"]]
            part["batch_kind"] = [
                _batch_kind(q, c, d, n, m) for q, c, d, n, m in
                zip(part["q_lens"], part["c_lens"], part["is_decode"], part["counts"], part["mode"], strict=True)]
        if "config_key" not in part.columns:
            skip = {"op", "time_s", "std_s", "source", "source_format", "measurement_type", "_row"}
            cols = [c for c in part.columns if c not in skip]
            part["config_key"] = [fam + "|" + "|".join(f"{c}={r[c]}" for c in cols) for r in part.to_dict("records")]
        else:
            part["config_key"] = [str(k) for k in part["config_key"]]
        for c, d in _NATIVE_DEFAULTS[fam].items():
            if c not in part.columns:
                part[c] = d
        if fam == "collective":
            nw = pd.to_numeric(part["num_workers"], errors="coerce")
            dpn = (pd.to_numeric(part["devices_per_node"], errors="coerce")
                   if "devices_per_node" in part.columns else nw)
            part["devices_per_node"] = dpn.fillna(nw)
        for c in _NATIVE_NUMBERS[fam]:
            if c in part.columns:
                part[c] = pd.to_numeric(part[c], errors="coerce").fillna(_NATIVE_DEFAULTS[fam].get(c, 1))
        out[str(fam)] = part.drop(columns="_row").reset_index(drop=True)
    for part in out.values():
        part.attrs["nan_times"] = nan_rows
    return out


def save_profiles(frames: dict[str, pd.DataFrame] | pd.DataFrame, path: str | os.PathLike) -> None:
    """Write tidy frames in the *native* format (one CSV or parquet file, times in seconds).

    List-valued attention columns are written as ``"[a, b]"`` strings in CSV files.
    """
    df = pd.concat(list(frames.values()), ignore_index=True) if isinstance(frames, dict) else frames.copy()
    path = Path(path)
    if path.suffix == ".parquet":
        for c in _LIST_COLS:
            if c in df.columns:
                df[c] = [None if v is None or (isinstance(v, float) and math.isnan(v))
                         else "[" + ", ".join(str(int(x)) for x in v) + "]" for v in df[c]]
        df.to_parquet(path, index=False)
    else:
        for c in _LIST_COLS:
            if c in df.columns:
                df[c] = [None if v is None or (isinstance(v, float) and math.isnan(v))
                         else "[" + ", ".join(str(int(x)) for x in v) + "]" for v in df[c]]
        df.to_csv(path, index=False)


# --------------------------------------------------------------------------------------
# entry points


def _detect(df: pd.DataFrame, path: Path) -> str | None:
    cols = set(map(str, df.columns))
    if {"family", "op", "time_s"} <= cols:
        return "native"
    if "latency" in cols and "op_name" in cols:
        return "aiconfigurator"
    if any(_TS.match(c) for c in cols):
        return "frontier" if cols & _FRONTIER_MARKERS else "vidur"
    return None


_ANY_PROFILE = "a Vidur, Frontier, aiconfigurator or native profile (CSV or parquet)"


def _read_table(path: Path) -> pd.DataFrame:
    file = str(path)
    if not path.exists():
        raise DataError(file, "<file>", "no such file", "an existing " + _ANY_PROFILE)
    if not path.is_file():
        raise DataError(file, "<file>", "not a regular file", "a file holding " + _ANY_PROFILE)
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(file, "<file>", "empty (no header line)", "a CSV with a header line and rows") from None
    except UnicodeDecodeError as e:
        raise DataError(file, "<file>", f"not UTF-8 text (byte {e.start})", "a UTF-8 CSV file") from None
    except Exception as e:  # noqa: BLE001  (parser errors of pandas / pyarrow, OSError)
        first = (str(e).strip().splitlines() or [""])[0]
        raise DataError(file, "<file>", f"could not be parsed ({type(e).__name__}: {first[:160]})",
                        "a well-formed CSV (comma-separated, one header line) or parquet file") from None
    df.columns = [str(c) for c in df.columns]
    return df


def load_file(path: str | os.PathLike, fmt: str = "auto", *, root: str | os.PathLike | None = None,
              device: str | None = None, strict: bool = True,
              head_dim: int | None = None) -> dict[str, pd.DataFrame]:
    """Read one CSV/parquet profile file into tidy frames keyed by family.

    Args:
        path: the file.
        fmt: ``auto`` (detect from the columns), ``vidur``, ``frontier``, ``aiconfigurator``
            or ``native``.
        root: folder the ``source`` column is made relative to (default: the file's folder).
        device: device name overriding the one inferred from the path / file.
        strict: raise on all-NaN operator columns (else drop them with a warning).
        head_dim: head size overriding :data:`KNOWN_HEAD_DIMS` / ``n_embd // n_q_head``.

    Returns:
        ``{family: DataFrame}`` with times in seconds (see module docstring);
        ``frame.attrs["nan_times"]`` is ``{source: rows}`` when rows with an empty time were
        dropped.

    Raises:
        DataError: (a ValueError) one line ``"<file>: column <col>: <problem>; allowed:
            <what is allowed>"`` for a file that is unreadable or empty, is not a recognised
            profile, misses operator/key columns, holds text, infinite or negative values
            where numbers are expected, unparseable or unequal list columns, NaN-only
            operators or values that look like the wrong unit (see the module docstring).
    """
    p = Path(path)
    file = str(p)
    if fmt not in FORMATS:
        raise DataError(file, "format", f"got {fmt!r}", "one of " + ", ".join(FORMATS))
    rel = os.path.relpath(p, root) if root else p.name
    df = _read_table(p)
    kind = _detect(df, p)
    if kind is None:
        raise _err(file, "time_stats.<op>.median", "missing (not a Vidur/Frontier/aiconfigurator/native profile)",
                   "time_stats.<op>.median columns (Vidur/Frontier), op_name+latency (aiconfigurator) "
                   "or family+op+time_s (native)")
    if fmt != "auto" and not (fmt == kind or (fmt in ("vidur", "frontier") and kind in ("vidur", "frontier"))):
        raise _err(file, "-", f"file looks like {kind} format, not {fmt}", f"a {fmt} profile or --format auto")
    if len(df) == 0:
        raise DataError(file, "<file>", "no data rows (header only)", "at least one measured row")
    try:
        if kind == "native":
            out = _read_native(df, file, rel)
        elif kind == "aiconfigurator":
            fam, got = _read_aiconfigurator(df, file, rel, device)
            out = {} if fam is None else {fam: got}
        else:
            fam, got = _read_time_stats_csv(df, file, rel, fmt, device, strict, head_dim)
            out = {fam: got}
    except DataError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, ArithmeticError, AttributeError,
            RecursionError) as e:
        # a reader failed on an input no explicit check covers: still one line naming the file
        first = (str(e).strip().splitlines() or [""])[0]
        raise DataError(file, "-", f"could not be read as a {kind} profile ({type(e).__name__}: {first[:160]})",
                        _ANY_PROFILE, internal=True) from e
    nan_rows = sum(int(f.attrs.get("nan_times", 0)) for f in out.values()) if kind != "native" else \
        max((int(f.attrs.get("nan_times", 0)) for f in out.values()), default=0)
    for f in out.values():
        f.attrs["nan_times"] = {rel: nan_rows} if nan_rows else {}
    return out


def _iter_files(root: Path) -> list[Path]:
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in (".csv", ".parquet")]
    return sorted(files)


def load_profiles(path: str | os.PathLike, fmt: str = "auto", *, device: str | None = None,
                  strict: bool = True, head_dim: int | None = None,
                  include: Iterable[str] | None = None) -> dict[str, pd.DataFrame]:
    """Load every profile under ``path`` (a folder, searched recursively, or one file).

    In a folder, files that are not profiles (traces, CPU overheads, unsupported
    aiconfigurator tables) are skipped and listed in ``frame.attrs["skipped"]``; exact
    duplicate measurements (the same row in ``attention.csv`` and
    ``attention_combined.csv``) are kept once. ``include``: optional substrings, a file is
    read only if its relative path contains one of them.

    Returns:
        ``{family: tidy DataFrame}`` (times in seconds, see the module docstring).
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    parts: dict[str, list[pd.DataFrame]] = {}
    skipped: list[str] = []
    if root.is_file():
        for fam, df in load_file(root, fmt, root=root.parent, device=device, strict=strict, head_dim=head_dim).items():
            parts.setdefault(fam, []).append(df)
    else:
        inc = list(include) if include else None
        for f in _iter_files(root):
            rel = os.path.relpath(f, root)
            if inc and not any(s in rel for s in inc):
                continue
            try:
                got = load_file(f, "auto" if fmt == "auto" else fmt, root=root, device=device,
                                strict=strict, head_dim=head_dim)
            except ValueError as e:
                msg = str(e)
                if "not a Vidur/Frontier" in msg or "looks like" in msg and "format, not" in msg:
                    skipped.append(rel)
                    continue
                raise
            if not got:
                skipped.append(rel)
            for fam, df in got.items():
                parts.setdefault(fam, []).append(df)
    nan_times: dict[str, int] = {}
    for dfs in parts.values():
        for d in dfs:
            nan_times.update(d.attrs.get("nan_times", {}))
    out: dict[str, pd.DataFrame] = {}
    for fam, dfs in parts.items():
        dfs = [d for d in dfs if len(d)]
        if not dfs:
            continue
        df = pd.concat(dfs, ignore_index=True)
        df = df.drop_duplicates(subset=["op", "config_key", "measurement_type", "time_s", "std_s"]).reset_index(drop=True)
        df.attrs["skipped"] = skipped
        df.attrs["nan_times"] = nan_times
        out[fam] = df
    return out
