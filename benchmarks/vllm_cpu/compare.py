"""Simulate recorded vLLM replays with frontier-jax and compare, rate by rate.

    .venv/bin/python benchmarks/vllm_cpu/compare.py work/replay [RUN_DIR ...] \
        [--profile work/profile/profile.csv] [--hardware work/profile/cpu_hardware.json] \
        [--calibration work/calibration] [--cost roofline | --cost surrogate --predictor DIR] \
        [--json OUT]

Runs in the project's own environment (/work/main/.venv: jax + frontier_jax), not the vLLM one.

For each replay run (a folder with meta.json, requests.parquet, iterations.parquet, from
replay.py) it builds the matching scenario: the checkpoint's config.json as the model, one
replica, tp = pp = 1, chunked prefill, vLLM's token budget, max_num_seqs and block size, and the
KV capacity in blocks vLLM reported, less its reserved null block (`sim_params(..., kv_blocks=
...)`); the workload is the SAME
request list (actual arrival times of add_request, prompt and output tokens). The cost model is
the roofline with a `[hardware]` override describing this CPU (measured one-core bf16 GEMM rate
as peak_flops, measured copy bandwidth as hbm_bw, RAM as hbm_bytes: profile_engine.py writes
them), with `[cost]` as shipped ("roofline") and, given --profile, also with its GEMM, attention
and memory rates and host overheads fitted to the profiled iteration times ("roofline-fit";
`frontier_jax.cost.calibrate`: a rate above the microbenchmark's raises that variant's peak).

Per rate (repeats pooled: measured mean +- std over the repeats is the noise floor) it prints
simulated vs measured: throughput (req/s, output tok/s), TTFT mean/p50/p90, TPOT mean/p50/p90,
E2E mean/p50/p90, iterations, preemptions, and the per-iteration time error: the cost model
priced on every measured iteration's own batch (q, context per sequence), against its measured
time (median |error|, mean signed error, total predicted / total measured busy time). The same
numbers go to --json.

Trained predictors: given --profile, the profiled iterations are also converted to the
project's native profile format (family attention, op "iteration": each step's per-sequence
query and context lengths and its measured time; `profile_to_native`), a predictor set is
trained on them with the project's pipeline (`frontier-jax predictors train`, forest + MLP
surrogate) into --predictor-out, and every run is simulated a third time with
`[cost] kind = "surrogate"` and that set ("surrogate"): the simulator evaluates the MLP inside
its compiled step. `--cost surrogate --predictor DIR` uses an existing set instead.

Served calibration: `--calibration DIR ...` (replay.py runs of the same engine on requests of
their own, not the validation's) adds their steps, as the engine served them, to the profiled
ones for both the fitted roofline and the trained set (`calibration_frame`).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from frontier_jax.cost import totals_time  # noqa: E402
from frontier_jax.cost.batch import BatchTotals  # noqa: E402
from frontier_jax.cost.calibrate import Calibration, fit_roofline, relative_error  # noqa: E402
from frontier_jax.cost.params import cost_params_from_scenario  # noqa: E402
from frontier_jax.cost.tiers import cost_model  # noqa: E402
from frontier_jax.params import first_slots  # noqa: E402
from frontier_jax.runner import Prepared, simulate_sized, summarize  # noqa: E402
from frontier_jax.sim import sim_params, sim_shape  # noqa: E402
from frontier_jax.spec import scenario_from_dict  # noqa: E402
from frontier_jax.workload import Workload  # noqa: E402

FALLBACK_CPU = {"peak_flops": 1.0e12, "hbm_bw": 1.0e10, "hbm_bytes": 24_000_000_000}
PCTS = (50, 90)


# -- inputs --------------------------------------------------------------------------------------
def find_runs(paths: list[Path]) -> list[Path]:
    runs: list[Path] = []
    for p in paths:
        if (p / "meta.json").exists():
            runs.append(p)
        else:
            runs.extend(sorted(d for d in p.iterdir() if (d / "meta.json").exists()))
    if not runs:
        raise SystemExit(f"no replay runs (folders with meta.json) under {paths}")
    return runs


def hardware_override(path: Path | None) -> dict[str, Any]:
    """The [hardware] table for this CPU: measured rates if profile_engine.py wrote them."""
    hw = dict(FALLBACK_CPU)
    name = "cpu"
    if path is not None and path.exists():
        m = json.loads(path.read_text())
        # the faster GEMM: vLLM's CPU kernels run bf16 layers at fp32 speed where the CPU has
        # no native bf16 (profile_engine.microbench)
        peak = max(float(m["gemm_bf16_flops"]), float(m.get("gemm_fp32_flops", 0.0)))
        hw = {"peak_flops": peak, "hbm_bw": float(m["copy_bytes_per_s"]),
              "hbm_bytes": int(m.get("memory_bytes") or FALLBACK_CPU["hbm_bytes"])}
        name = f"cpu ({m.get('name', '?')}, 1 core)"
    return {"preset": "H100-SXM", "name": name, **hw}


def usable_blocks(info: dict[str, Any]) -> int:
    """KV blocks a request can use: what the block pool had free at start (iterlog), else
    vLLM's reported kv_blocks - 1 (its BlockPool keeps one null block out of circulation)."""
    u = info.get("usable_kv_blocks")
    return int(u) if u is not None else int(info["kv_blocks"]) - 1


def scenario_for(meta: dict[str, Any], hw: dict[str, Any], cost: dict[str, Any], n: int) -> Any:
    e = meta["engine"]
    model_cfg = Path(e["settings"]["model"]) / "config.json"
    d = {
        "name": meta["run"],
        "model": {"config": str(model_cfg)},
        "hardware": hw,
        "parallel": {"tp": 1, "pp": 1},
        "scheduler": {"max_num_seqs": e["max_num_seqs"],
                      "max_num_batched_tokens": e["max_num_batched_tokens"],
                      "chunked_prefill": True, "block_size": e["block_size"]},
        "cluster": {"replicas": 1},
        # the arrays come from the record (sim_params gets a Workload); this only validates
        "workload": {"num_requests": n, "arrival": {"process": "poisson", "rate": 1.0},
                     "prompt": {"dist": "fixed", "value": 1},
                     "output": {"dist": "fixed", "value": 1}},
        "cost": cost,
    }
    return scenario_from_dict(d)


# -- cost model on measured batches --------------------------------------------------------------
def _lists(col: pd.Series) -> list[np.ndarray]:
    return [np.asarray(json.loads(s), dtype=np.float64) for s in col]


def measured_totals(it: pd.DataFrame) -> BatchTotals:
    """BatchTotals ([N] arrays) of the measured iterations' own batches."""
    q, c = _lists(it["q"]), _lists(it["context"])
    dec = [x.astype(bool) for x in _lists(it["is_decode"])]
    smp = _lists(it["samples"]) if "samples" in it else [np.ones_like(x) for x in q]
    f = lambda fn: np.array([fn(*a) for a in zip(q, c, dec, smp, strict=True)], np.float64)  # noqa: E731
    return BatchTotals(
        num_seqs=f(lambda q, c, d, s: len(q)),
        num_tokens=f(lambda q, c, d, s: q.sum()),
        prefill_tokens=f(lambda q, c, d, s: q[~d].sum()),
        decode_seqs=f(lambda q, c, d, s: d.sum()),
        prefill_attn_pairs=f(lambda q, c, d, s: (q * (c + (q + 1) / 2))[~d].sum()),
        prefill_kv_tokens=f(lambda q, c, d, s: (c + q)[~d].sum()),
        decode_kv_tokens=f(lambda q, c, d, s: (c + 1)[d].sum()),
        num_sampled=f(lambda q, c, d, s: s.sum()),
    )


def iteration_cost(scenario: Any) -> Callable[[pd.DataFrame], np.ndarray]:
    """Seconds per measured iteration (rows of a profile or iterations table: per-sequence
    `q`, `context`, `is_decode`, `samples` lists) under `scenario`'s cost tier, priced by the
    same functions the simulator uses."""
    from frontier_jax.cost import BatchSlots
    from frontier_jax.cost.tiers import cost_model

    params = cost_params_from_scenario(scenario)
    if scenario.cost.kind == "roofline":
        return lambda it: np.asarray(totals_time(measured_totals(it), params, np), np.float64)
    cost = cost_model(scenario)

    def price(it: pd.DataFrame) -> np.ndarray:
        q, c = _lists(it["q"]), _lists(it["context"])
        d = _lists(it["is_decode"])
        smp = _lists(it["samples"]) if "samples" in it else [np.ones_like(x) for x in q]
        out = []
        for qi, ci, di, si in zip(q, c, d, smp, strict=True):
            b = BatchSlots(qi.astype(np.int64), ci.astype(np.int64), di.astype(bool),
                           si.astype(bool), np.ones(len(qi), bool))
            out.append(float(cost.iteration_time(b, params, np)))
        return np.asarray(out, np.float64)

    return price


DROP_TRANSIENT = 4


def profile_rows(profile: pd.DataFrame, drop_transient: int = DROP_TRANSIENT) -> pd.DataFrame:
    """The profile's iterations used for calibration: no warm-up probes, and, within each
    probe, not the first ``drop_transient`` pure-decode steps after a prefill or mixed step.

    Those steps run slower while the worker recovers from the prefill (measured here: the 2nd
    to 5th decode step after one take 1.6x, 1.4x, 1.3x, 1.2x the settled time). A 16-step
    decode probe is a quarter transient; a served request decoding hundreds of tokens sees
    them far more rarely, so keeping them biases the decode cost upward at light load.
    """
    prof = (profile[~profile["probe"].fillna("").str.startswith("warmup")]
            if "probe" in profile else profile)
    if drop_transient <= 0 or "probe" not in prof or "kind" not in prof:
        return prof
    keep = np.ones(len(prof), bool)
    order = prof.sort_values(["probe", "step"], kind="stable") if "step" in prof else prof
    since: dict[str, int] = {}
    pos = {ix: i for i, ix in enumerate(prof.index)}
    for ix, probe, kind in zip(order.index, order["probe"].fillna(""), order["kind"], strict=True):
        if probe.startswith(SERVED):  # a served run's steps are all as served
            continue
        if kind != "decode":
            since[probe] = 0
            continue
        n = since.get(probe, drop_transient)  # a probe that opens with decodes: none dropped
        if n < drop_transient:
            keep[pos[ix]] = False
        since[probe] = n + 1
    return prof[keep]


SERVED = "served "  # probe name prefix of a calibration run's steps


@functools.cache
def iterations(run: Path) -> pd.DataFrame:
    """A run's ``iterations.parquet``, read once per process (each cost variant, the served
    calibration rows and the drift line use it; nothing changes it in place)."""
    return pd.read_parquet(run / "iterations.parquet")


def served_rows(runs: list[Path], limit: int | None = None) -> pd.DataFrame:
    """The engine's own steps from calibration replays (replay.py run folders) as profile
    rows: probe "served <run>", the engine's block size; at most ``limit`` rows, picked evenly
    over the runs' steps joined in order, so that served steps do not outweigh the probes by
    their number."""
    parts = []
    for run in runs:
        meta = json.loads((run / "meta.json").read_text())
        it = iterations(run)
        parts.append(it.assign(probe=SERVED + run.name, probe_kind="served",
                               block_size=int(meta["engine"]["block_size"])))
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if limit is not None and len(rows) > limit:
        rows = rows.iloc[np.linspace(0, len(rows) - 1, limit).round().astype(int)]
    return rows.reset_index(drop=True)


def calibration_frame(profile: pd.DataFrame, calibration: list[Path]) -> pd.DataFrame:
    """The profile's rows plus, given calibration runs (replays of their own requests, not
    the validation's), up to as many of their served steps (:func:`served_rows`)."""
    if not calibration:
        return profile
    served = served_rows(find_runs(calibration), limit=len(profile))
    return pd.concat([profile, served[[c for c in served.columns if c in profile.columns]]],
                     ignore_index=True)


def profile_to_native(profile: pd.DataFrame, model_config: Path,
                      drop_transient: int = DROP_TRANSIENT) -> pd.DataFrame:
    """The profiled iterations as native-format rows: family "attention", op "iteration",
    the batch's per-sequence q / context / is_decode lists, the model's per-GPU heads (tp 1),
    the engine's block size and the measured time (seconds). Warm-up probes are dropped."""
    cfg = json.loads(Path(model_config).read_text())
    heads = int(cfg["num_attention_heads"])
    head_dim = int(cfg.get("head_dim") or cfg["hidden_size"] // heads)
    prof = profile_rows(profile, drop_transient)
    q, c, d = _lists(prof["q"]), _lists(prof["context"]), _lists(prof["is_decode"])
    return pd.DataFrame({
        "family": "attention", "op": "iteration",
        "q_lens": [tuple(int(v) for v in x) for x in q],
        "c_lens": [tuple(int(v) for v in x) for x in c],
        "is_decode": [tuple(bool(v) for v in x) for x in d],
        "counts": [(1,) * len(x) for x in q],
        "n_q_heads": float(heads), "n_kv_heads": float(cfg.get("num_key_value_heads", heads)),
        "head_dim": head_dim, "tp": 1, "block_size": prof["block_size"].astype(int).to_numpy(),
        "dtype_bytes": 2, "device": "cpu", "model": str(cfg.get("_name_or_path", "")),
        "time_s": prof["time_s"].astype(float).to_numpy(),
        "source": "benchmarks/vllm_cpu profile_engine.py (vLLM V1 on this CPU)",
    })


def train_engine_predictor(profile: Path | pd.DataFrame, model_config: Path, out: Path,
                           drop_transient: int = DROP_TRANSIENT) -> Path:
    """Train a predictor set on the engine profile (a CSV path or its rows, with any served
    calibration steps: :func:`calibration_frame`; see :func:`profile_to_native`)."""
    from frontier_jax.predict import save_profiles, train_predictors

    native = out.parent / (out.name + "_native")
    native.mkdir(parents=True, exist_ok=True)
    rows = pd.read_csv(profile) if isinstance(profile, Path | str) else profile
    save_profiles(profile_to_native(rows, model_config, drop_transient), native / "engine.csv")
    t0 = time.perf_counter()
    card = train_predictors(native, "native", out, seed=0,
                            surrogate_params={"steps": 6000, "width": 64, "depth": 2})
    acc = card["models"]["iteration"]["accuracy"]
    print(f"compare: trained {out} on {len(pd.read_csv(native / 'engine.csv'))} engine "
          f"steps (profiled and any served) in {time.perf_counter() - t0:.0f} s; held-out rows: "
          + ", ".join(f"{k} median |err| {v['median_rel_err']:.1%} (time-weighted "
                      f"{v['time_weighted_err']:.1%})"
                      for k, v in acc.items() if isinstance(v, dict) and "median_rel_err" in v))
    return out


def fit_cost(profile: pd.DataFrame, scenario: Any,
             drop_transient: int = DROP_TRANSIENT) -> Calibration:
    """Fit the roofline's rates and host overheads to the profiled iteration times
    (:func:`frontier_jax.cost.calibrate.fit_roofline`: the rates are not capped by the
    microbenchmark's peak; a rate above it raises the calibrated hardware's peak)."""
    prof = profile_rows(profile, drop_transient)
    return fit_roofline(measured_totals(prof), prof["time_s"].to_numpy(np.float64),
                        cost_params_from_scenario(scenario))


# -- metrics (one definition for measured and simulated) -----------------------------------------
def stats(arrival: np.ndarray, first: np.ndarray, finish: np.ndarray, output: np.ndarray,
          generated: np.ndarray, preemptions: np.ndarray, iterations: int) -> dict[str, float]:
    fin = np.isfinite(finish)
    duration = max(float(np.max(finish[fin]) - np.min(arrival)), 1e-12) if fin.any() else float("nan")
    ttft = first - arrival
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(fin & (output > 1), (finish - first) / (output - 1), np.nan)
    e2e = finish - arrival
    m = {"finished": int(fin.sum()), "duration_s": duration,
         "throughput_rps": float(fin.sum() / duration),
         "output_tok_s": float(generated[fin].sum() / duration),
         "iterations": int(iterations), "preemptions": int(np.sum(preemptions))}
    for name, x in (("ttft", ttft), ("tpot", tpot), ("e2e", e2e)):
        x = x[np.isfinite(x)]
        m[f"{name}_mean_s"] = float(np.mean(x)) if x.size else float("nan")
        for q in PCTS:
            m[f"{name}_p{q}_s"] = float(np.percentile(x, q)) if x.size else float("nan")
    return m


def measured_stats(req: pd.DataFrame, it: pd.DataFrame) -> dict[str, float]:
    m = stats(req["arrival_s"].to_numpy(float), req["first_token_s"].to_numpy(float),
              req["last_token_s"].to_numpy(float), req["output_tokens"].to_numpy(np.int64),
              req["generated"].fillna(0).to_numpy(np.int64),
              req["preemptions"].fillna(0).to_numpy(np.int64), len(it))
    m["mean_iteration_s"] = float(it["time_s"].mean()) if len(it) else float("nan")
    m["busy_s"] = float(it["time_s"].sum()) if len(it) else 0.0
    return m


def simulate_run(run: Path, hw: dict[str, Any], cost: dict[str, Any]) -> dict[str, Any]:
    meta = json.loads((run / "meta.json").read_text())
    req = pd.read_parquet(run / "requests.parquet").sort_values("arrival_s", kind="stable")
    it = iterations(run)
    arrival = req["arrival_s"].to_numpy(float)
    arrival = np.maximum.accumulate(np.maximum(arrival - arrival.min(), 0.0))
    t_shift = float(req["arrival_s"].min())
    wl = Workload(arrival, req["prompt_tokens"].to_numpy(np.int64),
                  req["output_tokens"].to_numpy(np.int64))
    sc = scenario_for(meta, hw, cost, len(req))
    params = sim_params(sc, wl, kv_blocks=usable_blocks(meta["engine"]))
    shape = sim_shape(params, max_batch=first_slots([params]))
    tier = cost_model(sc)
    t0 = time.perf_counter()
    res, shape = simulate_sized(shape, params, tier)
    out = summarize(Prepared(sc, params, shape, tier), res, time.perf_counter() - t0)
    tab = out.table
    sim = stats(tab["arrival_s"], tab["arrival_s"] + tab["ttft_s"], tab["arrival_s"] + tab["e2e_s"],
                tab["output_tokens"], tab["generated_tokens"], tab["preemptions"],
                int(np.asarray(res.iterations)[0]))
    busy = float(np.asarray(res.busy_s)[0])
    sim["busy_s"] = busy
    sim["mean_iteration_s"] = busy / max(sim["iterations"], 1)
    meas = measured_stats(req.assign(arrival_s=req["arrival_s"] - t_shift,
                                     first_token_s=req["first_token_s"] - t_shift,
                                     last_token_s=req["last_token_s"] - t_shift), it)
    per_iter = (relative_error(iteration_cost(sc)(it), it["time_s"].to_numpy(float))
                if len(it) else {"n": 0})
    return {"run": meta["run"], "rate": meta["rate"], "repeat": meta.get("repeat", 0),
            "loadavg_before": meta.get("loadavg_before"), "loadavg_after": meta.get("loadavg_after"),
            "kv_blocks": meta["engine"]["kv_blocks"],
            "usable_kv_blocks": usable_blocks(meta["engine"]),
            "block_size": meta["engine"]["block_size"],
            "measured": meas, "simulated": sim, "per_iteration_cost_error": per_iter,
            "sim_wall_s": out.wall_s}


# -- report ---------------------------------------------------------------------------------------
ROWS = [("throughput req/s", "throughput_rps", 1.0, "{:.3f}"),
        ("output tok/s", "output_tok_s", 1.0, "{:.1f}"),
        ("TTFT mean ms", "ttft_mean_s", 1e3, "{:.1f}"), ("TTFT p50 ms", "ttft_p50_s", 1e3, "{:.1f}"),
        ("TTFT p90 ms", "ttft_p90_s", 1e3, "{:.1f}"), ("TPOT mean ms", "tpot_mean_s", 1e3, "{:.2f}"),
        ("TPOT p50 ms", "tpot_p50_s", 1e3, "{:.2f}"), ("TPOT p90 ms", "tpot_p90_s", 1e3, "{:.2f}"),
        ("E2E mean s", "e2e_mean_s", 1.0, "{:.3f}"), ("E2E p50 s", "e2e_p50_s", 1.0, "{:.3f}"),
        ("E2E p90 s", "e2e_p90_s", 1.0, "{:.3f}"), ("iterations", "iterations", 1.0, "{:.0f}"),
        ("mean iteration ms", "mean_iteration_s", 1e3, "{:.2f}"),
        ("preemptions", "preemptions", 1.0, "{:.0f}")]


# issue 18 item 5's targets: |simulated / measured mean - 1| at most this, per metric
TARGETS = {"throughput_rps": 0.05, "ttft_mean_s": 0.10, "tpot_mean_s": 0.10,
           "ttft_p90_s": 0.15, "tpot_p90_s": 0.15}


def repeat_spread(values) -> float | None:
    """How far the engine strays from itself on one metric at one rate: the largest
    deviation of a repeat from the mean of the other repeats, ``max_i |m_i / mean(m_j, j !=
    i) - 1|`` (None with fewer than two repeats). It is the error a single run would show
    against the others, so it bounds what one calibration run can promise; the mean of n
    repeats that the simulation is compared with is itself uncertain by about std / sqrt(n)
    (``mean_rel_sem``)."""
    v = np.asarray(values, float)
    if len(v) < 2:
        return None
    return float(max(abs(v[i] / np.delete(v, i).mean() - 1.0) for i in range(len(v))))


def decode_drift(runs: dict[str, pd.DataFrame], min_steps: int = 5) -> dict[str, float]:
    """How fast the engine ran in each run, on steps of one shape: pure-decode steps keyed by
    (sequences, context per sequence to the nearest half power of two). A (shape, run) pair
    counts when the run has at least ``min_steps`` such steps, and a shape when at least two
    runs count for it; its reference is the median over those runs of their median step time
    (each run one vote, however many steps it served). Per run, the median over its steps of
    step time / reference. 1.05: that run's decode steps took 5% longer than the same batches
    did across the runs. ``runs``: name -> iterations table (``context``, ``is_decode``,
    ``time_s``)."""
    parts = []
    for name, it in runs.items():
        d = _lists(it["is_decode"])
        c = _lists(it["context"])
        dec = np.array([len(x) > 0 and bool(x.all()) for x in d], dtype=bool)
        n = np.array([len(x) for x in d], dtype=np.int64)
        ctx = np.array([x.sum() / max(len(x), 1) for x in c], dtype=np.float64)
        parts.append(pd.DataFrame({"run": name, "n": n, "bucket": np.round(2 * np.log2(np.maximum(ctx, 1))),
                                   "t": it["time_s"].to_numpy(float)})[dec])
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not len(df):
        return {}
    per_run = df.groupby(["n", "bucket", "run"])["t"].agg(["median", "size"])
    per_run = per_run[per_run["size"] >= min_steps]
    runs_per_shape = per_run.groupby(level=[0, 1]).size()
    ref = per_run["median"].groupby(level=[0, 1]).median()[runs_per_shape >= 2]
    df = df.set_index(["n", "bucket", "run"])
    df = df[df.index.isin(per_run.index) & df.index.droplevel("run").isin(ref.index)]
    if not len(df):
        return {}
    ratio = df["t"].to_numpy() / ref.reindex(df.index.droplevel("run")).to_numpy()
    return {str(k): float(v) for k, v in pd.Series(ratio, index=df.index.get_level_values("run"))
            .groupby(level=0).median().items()}


def aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per cost variant and rate: measured mean/std over repeats, simulated mean, rel. error,
    and for item 5's metrics (``TARGETS``) the target and the repeats' own spread."""
    out: dict[str, Any] = {}
    for r in results:
        out.setdefault(r["variant"], {}).setdefault(f"{r['rate']:g}", []).append(r)
    agg: dict[str, Any] = {}
    for variant, by_rate in out.items():
        agg[variant] = {}
        for rate, rs in sorted(by_rate.items(), key=lambda kv: float(kv[0])):
            row: dict[str, Any] = {"repeats": len(rs)}
            for _, key, _, _ in ROWS:
                m = np.array([x["measured"][key] for x in rs], float)
                s = np.array([x["simulated"][key] for x in rs], float)
                mm = float(np.mean(m))
                row[key] = {"measured_mean": mm,
                            "measured_std": float(np.std(m, ddof=1)) if len(m) > 1 else 0.0,
                            "simulated": float(np.mean(s)),
                            "rel_err": float((np.mean(s) - mm) / mm) if mm else float("nan")}
                if key in TARGETS:
                    row[key]["target"] = TARGETS[key]
                    row[key]["met"] = bool(math.isfinite(row[key]["rel_err"])
                                           and abs(row[key]["rel_err"]) <= TARGETS[key])
                    row[key]["repeat_spread"] = repeat_spread(m)
                    # how uncertain the measured mean itself is (std / mean / sqrt(repeats))
                    row[key]["mean_rel_sem"] = (row[key]["measured_std"] / mm / math.sqrt(len(m))
                                                if len(m) > 1 and mm else None)
            pe = [x["per_iteration_cost_error"] for x in rs if x["per_iteration_cost_error"].get("n")]
            row["per_iteration_cost_error"] = {
                k: float(np.mean([p[k] for p in pe])) for k in
                ("median_abs_rel_err", "mean_rel_err", "p90_abs_rel_err", "busy_ratio_pred_over_meas")
            } if pe else {}
            row["loadavg"] = [x["loadavg_before"] for x in rs]
            agg[variant][rate] = row
    return agg


def print_table(agg: dict[str, Any], summary: dict[str, dict[str, int]]) -> None:
    for variant, by_rate in agg.items():
        for rate, row in by_rate.items():
            print(f"\n== cost {variant}, rate {rate} req/s ({row['repeats']} repeat(s); "
                  f"load avg before each: {row['loadavg']})")
            print(f"{'metric':<20} {'measured':>12} {'+-std':>9} {'simulated':>12} {'error':>8}"
                  f"  {'target':>7} {'repeats':>8}")
            for label, key, scale, fmt in ROWS:
                v = row[key]
                err = v["rel_err"]
                tgt = ""
                if "target" in v:  # item 5's metrics: the target, and how far the repeats stray
                    spread = v["repeat_spread"]
                    tgt = (f"  {v['target']:>6.0%}{' ' if v['met'] else '!'} "
                           f"{'-' if spread is None else f'{spread:.1%}':>8}")
                print(f"{label:<20} {fmt.format(v['measured_mean'] * scale):>12} "
                      f"{fmt.format(v['measured_std'] * scale):>9} "
                      f"{fmt.format(v['simulated'] * scale):>12} "
                      f"{'' if not math.isfinite(err) else f'{err:+.1%}':>8}{tgt}")
            pe = row["per_iteration_cost_error"]
            if pe:
                print(f"per-iteration cost on measured batches: median |err| "
                      f"{pe['median_abs_rel_err']:.1%}, mean err {pe['mean_rel_err']:+.1%}, "
                      f"p90 |err| {pe['p90_abs_rel_err']:.1%}, predicted/measured busy "
                      f"{pe['busy_ratio_pred_over_meas']:.3f}")
    print("\n(target: item 5's bound on |error|, '!' where missed; repeats: the largest "
          "deviation of one measured repeat from the mean of the others)")
    for variant, s in summary.items():
        reps = (f"the engine's repeats stay within them in {s['repeats_within']} of "
                f"{s['repeat_cells']}" if s["repeat_cells"] else "one run per rate: no repeats to compare")
        print(f"targets, {variant}: the simulation meets {s['met']} of {s['cells']}; {reps}")


def target_summary(agg: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per cost variant: how many (rate, metric) cells of ``TARGETS`` the simulation meets,
    and in how many the engine's own repeats all stay within the target of each other's mean
    (``repeat_spread``; ``repeat_cells``: the cells with at least two repeats): where the
    repeats miss a target against each other, one run cannot be held to it either."""
    out = {}
    for variant, by_rate in agg.items():
        cells = [row[k] for row in by_rate.values() for k in TARGETS if k in row]
        out[variant] = {
            "cells": len(cells),
            "met": sum(c["met"] for c in cells),
            "repeat_cells": sum(c["repeat_spread"] is not None for c in cells),
            "repeats_within": sum(c["repeat_spread"] is not None and c["repeat_spread"] <= c["target"]
                                  for c in cells)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path, nargs="+", help="replay out-dir(s) or run folder(s)")
    ap.add_argument("--profile", type=Path, default=None,
                    help="profile CSV: also simulate with the roofline fitted to it")
    ap.add_argument("--hardware", type=Path, default=None,
                    help="cpu_hardware.json (default: beside --profile, else work/profile/)")
    ap.add_argument("--cost", choices=("roofline", "surrogate"), default="roofline")
    ap.add_argument("--predictor", default=None, help="predictor set folder (--cost surrogate)")
    ap.add_argument("--predictor-out", type=Path, default=None,
                    help="where to train the engine's predictor set from --profile "
                         "[beside the profile: predictor/]")
    ap.add_argument("--drop-transient", type=int, default=DROP_TRANSIENT,
                    help="profile decode steps dropped after each prefill/mixed step when "
                         f"calibrating (default {DROP_TRANSIENT}; 0 keeps all)")
    ap.add_argument("--calibration", type=Path, nargs="*", default=[],
                    help="calibration replay out-dir(s) or run folder(s) (replay.py with its own "
                         "requests, not the validation's): their served steps join the profile "
                         "for roofline-fit and the trained set")
    ap.add_argument("--json", type=Path, default=None, help="write the comparison here")
    args = ap.parse_args(argv)

    runs = find_runs(args.runs)
    hw_path = args.hardware or ((args.profile.parent if args.profile else HERE / "work" / "profile")
                                / "cpu_hardware.json")
    hw = hardware_override(hw_path if hw_path.exists() else None)
    if not hw_path.exists():
        print(f"compare: {hw_path} missing: using placeholder CPU rates {FALLBACK_CPU}")
    # name -> (hardware table, cost table): the fitted roofline has its own hardware, whose
    # peaks a fitted rate above the microbenchmark's raised (frontier_jax.cost.calibrate)
    variants: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    if args.cost == "roofline":
        variants["roofline"] = (hw, {"kind": "roofline"})
    else:
        variants[args.cost] = (hw, {"kind": args.cost, "predictor": args.predictor})
    fit_info = None
    if args.profile is not None and args.cost == "roofline":
        meta0 = json.loads((runs[0] / "meta.json").read_text())
        sc0 = scenario_for(meta0, hw, {"kind": "roofline"}, 1)
        rows = calibration_frame(pd.read_csv(args.profile), args.calibration)
        if args.calibration:
            used = profile_rows(rows, args.drop_transient)["probe"].fillna("").str.startswith(SERVED)
            print(f"compare: calibrating on {int((~used).sum())} profiled and {int(used.sum())} "
                  f"served steps ({', '.join(map(str, args.calibration))})")
        cal = fit_cost(rows, sc0, args.drop_transient)
        variants["roofline-fit"] = ({**hw, **cal.hardware}, {"kind": "roofline", **cal.cost})
        fit_info = {"profile": str(args.profile), "calibration": [str(c) for c in args.calibration],
                    **cal.summary(), "fit_error": cal.error}
        print(f"compare: roofline fitted to {args.profile}: " + ", ".join(
            f"{k}={v:.4g}" for k, v in cal.cost.items())
              + f"; calibration rows median |err| {cal.error['median_abs_rel_err']:.1%}")
        print("compare: fitted rates / this CPU's microbenchmark: " + ", ".join(
            f"{k} {v:.3g}x" for k, v in cal.vs_start.items())
              + ("  (above 1: the engine outran the microbenchmark; its peak is raised)"
                 if max(cal.vs_start.values()) > 1 else ""))
        model_cfg = Path(meta0["engine"]["settings"]["model"]) / "config.json"
        pred_dir = args.predictor_out or args.profile.parent / "predictor"
        train_engine_predictor(rows, model_cfg, pred_dir, args.drop_transient)
        # how the whole-step network weighed its rows (predict/train.measured_weights)
        fit_info["surrogate_row_weights"] = json.loads((pred_dir / "card.json").read_text())[
            "models"]["iteration"]["surrogate"].get("row_weights", "uniform")
        variants["surrogate"] = (hw, {"kind": "surrogate", "predictor": str(pred_dir.resolve())})
    # a predictor kind stops in iteration_cost() with the reason, before simulating anything
    meta0 = json.loads((runs[0] / "meta.json").read_text())
    for vhw, cost in variants.values():
        iteration_cost(scenario_for(meta0, vhw, cost, 1))
    results = []
    for name, (vhw, cost) in variants.items():
        for run in runs:
            r = simulate_run(run, vhw, cost)
            r["variant"] = name
            results.append(r)
    agg = aggregate(results)
    summary = target_summary(agg)
    print_table(agg, summary)
    # the engine's own speed from run to run, on decode batches of one shape: a drift the
    # calibration (one run) carries into every simulated rate
    paths = runs + (find_runs(args.calibration) if args.calibration else [])
    names = [f"{p.parent.name}/{p.name}" for p in paths]
    if len(set(names)) < len(names):  # e.g. two replay folders of one name: the whole path
        names = [str(p) for p in paths]
    its = {k: iterations(p) for k, p in zip(names, paths, strict=True)}
    drift = decode_drift(its)
    if drift:
        print("engine drift, pure-decode steps of one shape against all runs' median: "
              + ", ".join(f"{k} {v:.3f}" for k, v in drift.items()))
    doc = {"hardware": hw, "cost_variants": {k: c for k, (_, c) in variants.items()},
           "hardware_variants": {k: h for k, (h, _) in variants.items()}, "fit": fit_info,
           "runs": results, "by_rate": agg, "targets": TARGETS,
           "target_summary": summary, "decode_drift": drift}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=float) + "\n")
        print(f"\ncompare: JSON -> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
