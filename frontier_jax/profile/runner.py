"""Timing loop and CSV writing of the operator profiler (imports torch).

Each plan item is built once (inputs allocated outside the timed region), warmed up, then
run ``repeats`` times (fewer when one configuration has used up ``max_time_s``, at least 3).
CPU: wall clock (``time.perf_counter``) per call; CUDA: a pair of CUDA events per call,
synchronised at the end. ``time_s`` is the median and ``std_s`` the standard deviation over
the repetitions, in seconds, of one operator of one layer on one device.

The rows are written with :func:`frontier_jax.predict.importers.save_profiles` as one native
CSV per family (``linear.csv``, ``attention.csv``, ``moe.csv``) plus ``profile.json`` (how
the files were made), and load with ``load_profiles(out, "native")``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from frontier_jax.predict.devices import canonical_device
from frontier_jax.predict.features import moe_load_stats
from frontier_jax.predict.importers import save_profiles
from frontier_jax.spec.model import ModelSpec, get_model

from . import ops
from .plan import PROFILER_VERSION, LayerShapes, PlanItem, build_plan, layer_shapes

BLOCK_SIZE = 16  # KV page size recorded for the attention rows (the CPU/SDPA path is unpaged)


def device_names(device: str) -> tuple[str, str]:
    """``(device key, full device name)``: ``("cpu", "<cpu model>")`` or the canonical GPU key
    (e.g. ``"h100"``) and ``torch.cuda.get_device_name()``."""
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        key = canonical_device(name)
        return (key if key != "unknown" else name.lower()), name
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return "cpu", f"{name} ({torch.get_num_threads()} threads)"


def time_fn(fn, device: str, *, warmup: int = 2, repeats: int = 10, max_time_s: float = 0.5) -> tuple[float, float, int]:
    """``(median s, std s, repetitions)`` of ``fn()`` on ``device``."""
    ts = time_samples(fn, device, warmup=warmup, repeats=repeats, max_time_s=max_time_s)
    std = float(ts.std(ddof=1)) if len(ts) > 1 else float("nan")
    return float(np.median(ts)), std, len(ts)


def time_samples(fn, device: str, *, warmup: int = 2, repeats: int = 10, max_time_s: float = 0.5,
                 min_repeats: int = 3) -> np.ndarray:
    """Seconds of each of up to ``repeats`` timed calls of ``fn()`` after ``warmup`` untimed
    ones; stops early once ``max_time_s`` has passed and ``min_repeats`` calls were timed."""
    cuda = device.startswith("cuda")
    for _ in range(max(warmup, 1)):
        fn()
    if cuda:
        torch.cuda.synchronize()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
        t_wall = time.perf_counter()
        n = 0
        for i in range(repeats):
            starts[i].record()
            fn()
            ends[i].record()
            n += 1
            if n >= min_repeats and time.perf_counter() - t_wall > max_time_s:
                torch.cuda.synchronize()
                if time.perf_counter() - t_wall > max_time_s:
                    break
        torch.cuda.synchronize()
        ts = np.array([s.elapsed_time(e) * 1e-3 for s, e in zip(starts[:n], ends[:n], strict=True)])
    else:
        ts_l = []
        t_wall = time.perf_counter()
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts_l.append(time.perf_counter() - t0)
            if len(ts_l) >= min_repeats and time.perf_counter() - t_wall > max_time_s:
                break
        ts = np.array(ts_l)
    return ts


def _rle(seqs: list[tuple[int, int]], decode: bool):
    """Groups of identical consecutive sequences: ``(q_lens, c_lens, is_decode, counts)``."""
    gq, gc, gn = [], [], []
    for q, c in seqs:
        if gq and gq[-1] == q and gc[-1] == c:
            gn[-1] += 1
        else:
            gq.append(int(q))
            gc.append(int(c))
            gn.append(1)
    return tuple(gq), tuple(gc), tuple([bool(decode)] * len(gq)), tuple(gn)


def item_columns(item: PlanItem, shapes: LayerShapes, device: str, dtype_bytes: int) -> dict:
    """Configuration columns of one plan item (tidy-frame columns of its family) and its
    ``config_key`` (shape only: the same configuration gets the same key in every run)."""
    p = item.params
    if item.family == "linear":
        key = (f"linear|{device}|{shapes.model}|m={p['m']}|n={p['n']}|k={p['k']}"
               f"|db={dtype_bytes}|tp={shapes.tp}")
        return {"m": p["m"], "n": p["n"], "k": p["k"], "is_gemm": bool(p["is_gemm"]), "tp": shapes.tp,
                "dtype_bytes": dtype_bytes, "batch_kind": "dense", "mode": item.mode, "config_key": key}
    if item.family == "attention":
        seqs = sorted(p["seqs"], key=lambda s: (-s[0], -s[1]))
        gq, gc, gd, gn = _rle(seqs, p["decode"])
        nq, nkv, hd = shapes.local_q_heads, shapes.local_kv_heads, shapes.head_dim
        key = (f"attention|{device}|h={shapes.hidden}|nq={shapes.n_heads}|nkv={shapes.n_kv_heads}|hd={hd}"
               f"|tp={shapes.tp}|blk={BLOCK_SIZE}|db={dtype_bytes}|q={gq}|c={gc}"
               f"|d={tuple(int(x) for x in gd)}|n={gn}")
        return {"q_lens": gq, "c_lens": gc, "is_decode": gd, "counts": gn, "n_q_heads": nq,
                "n_kv_heads": nkv, "head_dim": hd, "tp": shapes.tp, "block_size": BLOCK_SIZE,
                "dtype_bytes": dtype_bytes, "mode": item.mode, "num_seqs": len(seqs),
                "num_tokens": int(sum(q for q, _ in seqs)), "config_key": key}
    if item.family == "moe":
        counts = np.asarray(p["counts"], float)
        R, L, A, mx, mn, cv, gini, ent = (float(v) for v in moe_load_stats(counts, np.ones_like(counts, bool)))
        eh = shapes.moe_ffn // shapes.tp
        key = (f"moe|{device}|{shapes.model}|t={p['num_tokens']}|tpe={','.join(str(int(c)) for c in p['counts'])}"
               f"|h={shapes.hidden}|i={eh}|k={shapes.topk}|E={shapes.num_experts}|tp={shapes.tp}|ep=1|db={dtype_bytes}")
        return {"num_tokens": p["num_tokens"], "routed_tokens": R, "local_experts": L, "active_experts": A,
                "max_tokens": mx, "min_tokens": mn, "load_cv": cv, "load_gini": gini,
                "load_entropy_bits": ent, "hidden": shapes.hidden, "expert_hidden": eh,
                "topk": shapes.topk, "gated": int(shapes.gated), "tp": shapes.tp, "ep": 1,
                "num_experts": shapes.num_experts, "dtype_bytes": dtype_bytes, "batch_kind": item.mode,
                "mode": item.mode, "tokens_per_expert": "[" + ", ".join(str(int(c)) for c in p["counts"]) + "]",
                "config_key": key}
    raise ValueError(f"unknown family {item.family!r}")


def run_profile(model: str | ModelSpec, tp: int = 1, device: str = "cpu", out: str | Path | None = None, *,
                quick: bool = False, repeats: int = 10, warmup: int = 2, seed: int = 0,
                max_time_s: float = 0.5, dtype: str = "auto", threads: int | None = None,
                rounds: int = 1, progress: bool = True, command: str | None = None) -> dict[str, pd.DataFrame]:
    """Profile one decoder layer of ``model`` (preset name, config.json path or ModelSpec)
    at tensor parallelism ``tp`` on ``device`` (``cpu`` | ``cuda`` | ``cuda:N``).

    Writes ``<out>/<family>.csv`` and ``<out>/profile.json`` when ``out`` is given.
    ``threads``: torch intra-op threads for the run (default: torch's default). On a CPU
    shared with other jobs use 1: with more threads than free cores, every op waits at the
    OpenMP barrier for a descheduled thread (measured here: 100x slower element-wise ops).
    ``rounds``: passes over the whole plan (each in a new random order, ``repeats / rounds``
    repetitions per pass); ``time_s`` is the median over all passes, so a burst of load from
    other jobs hits a fraction of a configuration's samples instead of all of them.

    Returns:
        ``{family: DataFrame}`` of native rows (``time_s``/``std_s`` in seconds).
    """
    t_start = time.time()
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    spec = model if isinstance(model, ModelSpec) else get_model(model)
    shapes = layer_shapes(spec, tp)
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: torch {torch.__version__} sees no CUDA device")
        torch.cuda.set_device(torch.device(device))
    elif device != "cpu":
        raise ValueError(f"--device {device}: expected cpu or cuda[:N]")
    torch.manual_seed(seed)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _run(spec, shapes, tp, device, out, quick, repeats, warmup, seed, max_time_s, dtype,
                    max(int(rounds), 1), progress, command, t_start, started)
    finally:
        ops.clear_cache()
        torch.set_num_threads(old_threads)


def _run(spec, shapes, tp, device, out, quick, repeats, warmup, seed, max_time_s, dtype, rounds,
         progress, command, t_start, started):
    tdtype = ops.pick_dtype(device, dtype)
    dtype_bytes = torch.finfo(tdtype).bits // 8
    dev_key, dev_name = device_names(device)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    plan = build_plan(shapes, kind, quick=quick, seed=seed)
    common = {"device": dev_key, "device_name": dev_name, "model": spec.name,
              "torch_version": torch.__version__, "profiler_version": PROFILER_VERSION, "seed": seed,
              "measurement_type": "CUDA_EVENT" if kind == "cuda" else "WALL_CLOCK",
              "dtype": str(tdtype).removeprefix("torch.")}
    samples: list[list[np.ndarray]] = [[] for _ in plan]
    impl: dict[int, str] = {}
    per_round = max(int(math.ceil(repeats / rounds)), 1)
    min_per_round = max(int(math.ceil(3 / rounds)), 1)
    order_rng = np.random.default_rng(seed + 7919)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(plan) * rounds, desc=f"profile {spec.name} tp{tp} {dev_key}", unit="op",
                   file=sys.stderr)
    with torch.inference_mode():
        for r in range(rounds):
            order = range(len(plan)) if r == 0 else order_rng.permutation(len(plan))
            for i in order:
                item = plan[i]
                fn = ops.build(item, shapes, tdtype, device)
                samples[i].append(time_samples(fn, device, warmup=warmup, repeats=per_round,
                                               max_time_s=max_time_s / rounds, min_repeats=min_per_round))
                if item.family == "moe":
                    impl[i] = getattr(fn, "impl", "")
                del fn
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    rows: dict[str, list[dict]] = {}
    for i, item in enumerate(plan):
        ts = np.concatenate(samples[i])
        row = {"family": item.family, "op": item.op, **item_columns(item, shapes, dev_key, dtype_bytes),
               "time_s": float(np.median(ts)), "std_s": float(ts.std(ddof=1)) if len(ts) > 1 else float("nan"),
               "min_s": float(ts.min()), "repeats": len(ts), "rounds": rounds, **common}
        if item.family == "moe":
            row["moe_impl"] = impl.get(i, "")
        rows.setdefault(item.family, []).append(row)
    frames = {fam: pd.DataFrame.from_records(r) for fam, r in rows.items()}
    wall = time.time() - t_start
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for fam, df in frames.items():
            save_profiles(df, out / f"{fam}.csv")
        manifest = {
            "profiler_version": PROFILER_VERSION,
            "command": command,
            "started": started,
            "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "wall_s": round(wall, 1),
            "device": dev_key, "device_name": dev_name, "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(), "dtype": common["dtype"], "dtype_bytes": dtype_bytes,
            "python": platform.python_version(), "platform": platform.platform(),
            "model": spec.name, "tp": tp, "shapes_per_device": {
                "hidden": shapes.hidden, "q_heads": shapes.local_q_heads, "kv_heads": shapes.local_kv_heads,
                "head_dim": shapes.head_dim, "ffn": shapes.ffn // tp, "vocab": shapes.vocab,
                "gated": shapes.gated, "num_experts": shapes.num_experts, "topk": shapes.topk,
                "moe_ffn": shapes.moe_ffn // tp if shapes.num_experts else 0},
            "quick": quick, "seed": seed, "repeats": repeats, "rounds": rounds, "warmup": warmup,
            "max_time_s": max_time_s,
            "timing": ("median / std over all repetitions of all rounds (passes over the plan in "
                       "random order); CPU wall clock (perf_counter), CUDA events"),
            "units": "seconds per op per layer per device",
            "rows": {fam: len(df) for fam, df in frames.items()},
            "ops": {fam: sorted(df["op"].unique()) for fam, df in frames.items()},
        }
        (out / "profile.json").write_text(json.dumps(manifest, indent=1))
    for df in frames.values():
        df.attrs["wall_s"] = wall
    if any(not (math.isfinite(t) and t > 0) for df in frames.values() for t in df["time_s"]):
        raise RuntimeError("profiler produced a non-positive or non-finite time")
    return frames
