"""Replay an open-loop workload against vLLM's V1 engine on this CPU and record what it did.

    benchmarks/vllm_cpu/.venv/bin/python benchmarks/vllm_cpu/replay.py \
        --rates 0.5 1 2 --repeats 3 --num-requests 200 [--trace-lengths | --prompt ... ] \
        [--out-dir work/replay] [engine options]

Workload (drawn once per --seed; the same requests at every rate and repeat, only the arrival
gaps scale with the rate): Poisson arrivals at each rate; prompt/output lengths from a
distribution (--prompt/--output "lognormal:MEDIAN:SIGMA", "uniform:LOW:HIGH" or "fixed:N") or
from the Splitwise conversation trace (--trace-lengths; rows drawn with replacement, scaled by
--trace-scale, default "auto" = so that the 99th percentile of prompt + output fits
max_model_len, then each request clipped to fit).

One engine serves every run (rates x repeats, in the order rate-major, repeat-minor, with a
pause between runs; with --calibration-requests, repeat-major, each round of repeats opened by
a piece of the calibration workload, written to --calibration-dir). For each run the harness
calls add_request at each arrival time (never early; the front end sleeps on the engine's output queue until an output or the next arrival)
and step() otherwise, and writes to OUT_DIR/<run>/:
- requests.parquet (+ .csv): per request its nominal and actual arrival, prompt/output tokens,
  tokens generated, and vLLM's own timestamps (queued, first scheduled, first token, last token:
  EngineCore CLOCK_MONOTONIC, the same clock as the front end's), the front end's receipt of the
  first and last token, preemptions, and TTFT / TPOT / E2E from vLLM's timestamps;
- iterations.parquet (+ .csv): every engine iteration in the run (iterlog.py): start/end,
  time_s, per-sequence q and context lists, prefill/decode counts, waiting/running, free KV
  blocks, preemptions;
- meta.json: engine settings and what vLLM allocated (KV blocks, block size), the workload,
  load average before/after, wall time, versions, CPU.
Times are seconds from the run's t0 (the first arrival is at its gap after t0).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine as E  # noqa: E402

SPLITWISE_CONV = Path("/work/shared/data/vidur/processed_traces/splitwise_conv.csv")


def shared_trace_path() -> Path:
    """The Splitwise conversation trace: $FRONTIER_SHARED_DATA or ../shared/data beside the
    checkout, else /work/shared/data."""
    import os

    roots = [os.environ.get("FRONTIER_SHARED_DATA"), str(HERE.parents[2] / "shared" / "data")]
    for r in roots:
        if r and (Path(r) / "vidur/processed_traces/splitwise_conv.csv").exists():
            return Path(r) / "vidur/processed_traces/splitwise_conv.csv"
    return SPLITWISE_CONV


def parse_dist(spec: str) -> tuple[str, list[float]]:
    kind, *vals = spec.split(":")
    need = {"lognormal": 2, "uniform": 2, "fixed": 1}
    if kind not in need or len(vals) != need[kind]:
        raise SystemExit(f"bad length distribution {spec!r}: expected lognormal:MEDIAN:SIGMA, "
                         "uniform:LOW:HIGH or fixed:N")
    return kind, [float(v) for v in vals]


def draw(spec: str, n: int, rng: np.random.Generator) -> np.ndarray:
    kind, v = parse_dist(spec)
    if kind == "fixed":
        x = np.full(n, v[0])
    elif kind == "uniform":
        x = rng.integers(int(v[0]), int(v[1]), size=n, endpoint=True).astype(float)
    else:
        x = rng.lognormal(math.log(v[0]), v[1], size=n)
    return np.maximum(1, np.round(x)).astype(np.int64)


def make_lengths(args: argparse.Namespace, max_len: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Prompt and output lengths of the N requests (fit into max_model_len) and a description."""
    rng = np.random.default_rng(args.seed)
    n = args.num_requests
    if args.trace_lengths:
        import pandas as pd

        path = Path(args.trace_path) if args.trace_path else shared_trace_path()
        t = pd.read_csv(path)
        rows = rng.integers(0, len(t), size=n)
        p = t["num_prefill_tokens"].to_numpy()[rows].astype(float)
        o = t["num_decode_tokens"].to_numpy()[rows].astype(float)
        if args.trace_scale == "auto":
            tot = t["num_prefill_tokens"] + t["num_decode_tokens"]
            scale = min(1.0, max_len / float(np.quantile(tot, 0.99)))
        else:
            scale = float(args.trace_scale)
        p = np.maximum(1, np.round(p * scale)).astype(np.int64)
        o = np.maximum(1, np.round(o * scale)).astype(np.int64)
        desc = {"source": str(path), "scale": scale}
    else:
        p = draw(args.prompt, n, rng)
        o = draw(args.output, n, rng)
        desc = {"prompt": args.prompt, "output": args.output}
    o = np.minimum(o, max_len - 1)
    clipped = int(np.sum(p + o > max_len))
    p = np.minimum(p, max_len - o)
    desc.update({"clipped_to_max_model_len": clipped, "mean_prompt": float(p.mean()),
                 "mean_output": float(o.mean())})
    return p, o, desc


def poisson_gaps(n: int, seed: int) -> np.ndarray:
    """Unit-rate exponential gaps (one stream per seed): arrivals at rate r are cumsum(g) / r."""
    return np.random.default_rng([seed, 1]).exponential(1.0, size=n)


def estimate_capacity(profile_csv: Path, mean_prompt: float, mean_output: float,
                      max_seqs: int) -> float:
    """Rough requests/s the engine sustains, from a profile CSV: prefill tokens/s from pure
    prefill rows, decode step time at the largest profiled batch (<= max_seqs)."""
    import pandas as pd

    df = pd.read_csv(profile_csv)
    df = df[~df["probe"].fillna("").str.startswith("warmup")]
    pre = df[(df["kind"] == "prefill") & (df["total_tokens"] >= 128)]
    pre_tok_s = float((pre["total_tokens"] / pre["time_s"]).median())
    dec = df[(df["kind"] == "decode") & (df["num_seqs"] <= max_seqs)]
    b = int(dec["num_seqs"].max())
    step = float(dec[dec["num_seqs"] == b]["time_s"].median())
    per_req = mean_prompt / pre_tok_s + mean_output * step / b
    return 1.0 / per_req


class Recorder:
    """Per-request outcome from the RequestOutputs step() returns."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.first_seen: dict[str, float] = {}
        self.done: dict[str, dict[str, Any]] = {}

    def __call__(self, o: Any, t: float) -> None:
        rid = o.request_id
        ntok = len(o.outputs[0].token_ids) if o.outputs else 0
        if ntok and rid not in self.first_seen:
            self.first_seen[rid] = t
        if o.finished:
            m = o.metrics

            def rel(x: float) -> float:
                return (x - self.t0) if x else float("nan")

            self.done[rid] = {
                "generated": ntok,
                "queued_s": rel(getattr(m, "queued_ts", 0.0)),
                "first_scheduled_s": rel(getattr(m, "scheduled_ts", 0.0)),
                "first_token_s": rel(getattr(m, "first_token_ts", 0.0)),
                "last_token_s": rel(getattr(m, "last_token_ts", 0.0)),
                "preemptions": int(getattr(m, "num_preemptions", 0)),
                "vllm_generation_tokens": int(getattr(m, "num_generation_tokens", 0)),
                "first_token_frontend_s": self.first_seen.get(rid, t) - self.t0,
                "finish_frontend_s": t - self.t0,
            }


def wait_for_output(engine: Any, timeout: float | None) -> bool:
    """Sleep until the engine's output queue holds something or `timeout` seconds pass."""
    q = engine.engine_core.outputs_queue
    if timeout is None:
        return True  # step() blocks on the queue itself
    if timeout <= 0:
        return q.qsize() > 0
    with q.not_empty:
        if not q._qsize():
            q.not_empty.wait(timeout)
        return q._qsize() > 0


def replay_once(st: E.Started, iterlog: Path, prompts: list[list[int]], outputs: np.ndarray,
                arrivals: np.ndarray, run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    engine = st.engine
    n = len(prompts)
    run_dir.mkdir(parents=True, exist_ok=True)
    load_before = E.loadavg()
    t0 = time.monotonic() + 0.05
    rec = Recorder(t0)
    t_add = np.full(n, np.nan)
    ids = [f"r{i}" for i in range(n)]
    i = 0
    steps = 0
    while i < n or engine.has_unfinished_requests():
        now = time.monotonic()
        while i < n and t0 + arrivals[i] <= now:
            E.add_request(engine, ids[i], prompts[i], int(outputs[i]), arrival_time=time.time())
            t_add[i] = time.monotonic() - t0
            i += 1
            now = time.monotonic()
        timeout = (t0 + arrivals[i] - time.monotonic()) if i < n else None
        if engine.has_unfinished_requests():
            if wait_for_output(engine, timeout):
                for o in engine.step():
                    rec(o, time.monotonic())
                steps += 1
        elif timeout is not None and timeout > 0:
            time.sleep(timeout)
    t_end = time.monotonic()
    load_after = E.loadavg()
    time.sleep(0.1)  # let the EngineCore flush its last log line

    req = pd.DataFrame({"request_id": ids, "arrival_nominal_s": arrivals, "arrival_s": t_add,
                        "prompt_tokens": [len(p) for p in prompts],
                        "output_tokens": outputs.astype(np.int64)})
    extra = pd.DataFrame([rec.done.get(r, {}) for r in ids])
    req = pd.concat([req, extra], axis=1)
    req["ttft_s"] = req["first_token_s"] - req["arrival_s"]
    req["e2e_s"] = req["last_token_s"] - req["arrival_s"]
    req["tpot_s"] = np.where(req["generated"] > 1, (req["last_token_s"] - req["first_token_s"])
                             / (req["generated"] - 1).clip(lower=1), np.nan)
    req["queue_delay_s"] = req["first_scheduled_s"] - req["arrival_s"]

    recs = [r for r in E.read_iterlog(iterlog) if t0 - 0.01 <= r["t_sched_start"] <= t_end]
    it = pd.DataFrame(E.iteration_rows(recs))
    if len(it):
        for c in ("t_start", "t_end"):
            it[c] = it[c] - t0
    for name, df in (("requests", req), ("iterations", it)):
        df.to_parquet(run_dir / f"{name}.parquet", index=False)
        df.to_csv(run_dir / f"{name}.csv", index=False)
    finished = int(req["generated"].notna().sum())
    wall = t_end - t0
    out_tokens = float(req["generated"].sum())
    summary = {
        "requests": n, "finished": finished, "wall_s": round(wall, 3),
        "iterations": len(it), "front_end_steps": steps,
        "throughput_req_s": finished / (req["last_token_s"].max() - req["arrival_s"].min()),
        "output_tok_s": out_tokens / (req["last_token_s"].max() - req["arrival_s"].min()),
        "ttft_mean_s": float(req["ttft_s"].mean()), "ttft_p50_s": float(req["ttft_s"].median()),
        "tpot_mean_s": float(req["tpot_s"].mean()), "e2e_mean_s": float(req["e2e_s"].mean()),
        "preemptions": int(req["preemptions"].sum()),
        "max_arrival_lag_s": float(np.nanmax(t_add - arrivals)),
        "mean_iteration_s": float(it["time_s"].mean()) if len(it) else float("nan"),
    }
    meta = {**meta, "loadavg_before": load_before, "loadavg_after": load_after,
            "summary": summary}
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2, default=float) + "\n")
    return summary


def workload(args: argparse.Namespace, seed: int, n: int) -> tuple[list[list[int]], np.ndarray, np.ndarray, dict]:
    """The ``n`` requests of ``seed``: prompt token ids, output lengths, unit-rate Poisson
    gaps (arrivals at rate r: cumsum(gaps) / r) and the lengths' description."""
    p_len, o_len, desc = make_lengths(argparse.Namespace(**{**vars(args), "seed": seed,
                                                            "num_requests": n}), args.max_model_len)
    rng = np.random.default_rng([seed, 2])
    return [E.prompt_ids(rng, int(x)) for x in p_len], o_len, poisson_gaps(len(p_len), seed), desc


def calibration_pieces(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The calibration workload (``--calibration-requests`` requests drawn with
    ``--calibration-seed``, lengths as the validation's) split into one piece per repeat, each
    with Poisson arrivals at ``--calibration-load-factor`` x the capacity estimated for these
    requests: what ``compare.py --calibration`` learns the engine's served steps from, in the
    engine that serves the validation, spread over its session."""
    prompts, o_len, gaps, wdesc = workload(args, args.calibration_seed, args.calibration_requests)
    cap = estimate_capacity(args.rates_from_profile, wdesc["mean_prompt"], wdesc["mean_output"],
                            args.max_num_seqs)
    rate = round(args.calibration_load_factor * cap, 3)
    pieces = []
    for k, idx in enumerate(np.array_split(np.arange(len(prompts)), args.repeats)):
        name = f"rate{rate:g}_r{k}"
        pieces.append({"name": name, "prompts": [prompts[i] for i in idx], "outputs": o_len[idx],
                       "arrivals": np.cumsum(gaps[idx]) / rate,
                       "meta": {"run": name, "rate": rate, "repeat": k, "seed": args.calibration_seed,
                                "calibration": True, "num_requests": int(len(idx)),
                                "workload": {**wdesc, "estimated_capacity_req_s": cap,
                                             "load_factor": args.calibration_load_factor}}})
    print(f"replay: calibration {len(prompts)} requests (seed {args.calibration_seed}) at {rate} "
          f"req/s in {len(pieces)} piece(s), one before each round of repeats")
    return pieces


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    E.add_cli_args(ap)
    ap.set_defaults(max_num_batched_tokens=2048, max_num_seqs=64, max_model_len=4096)
    ap.add_argument("--rates", type=float, nargs="+", default=None,
                    help="requests/s (win over --rates-from-profile, whose --load-factors are then "
                         "unused; the profile still sets the calibration's rate)")
    ap.add_argument("--rates-from-profile", type=Path, default=None, metavar="CSV",
                    help="derive the rates from a profile CSV's capacity estimate")
    ap.add_argument("--load-factors", type=float, nargs="+", default=[0.3, 0.7, 1.3],
                    help="rates = factor x estimated capacity (with --rates-from-profile)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--num-requests", type=int, default=200)
    ap.add_argument("--prompt", default="lognormal:256:0.8")
    ap.add_argument("--output", default="lognormal:64:0.8")
    ap.add_argument("--trace-lengths", action="store_true",
                    help="lengths from the Splitwise conversation trace")
    ap.add_argument("--trace-path", default=None)
    ap.add_argument("--trace-scale", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=E.WORK / "replay")
    ap.add_argument("--pause-s", type=float, default=3.0, help="idle time between runs")
    ap.add_argument("--calibration-requests", type=int, default=0, metavar="N",
                    help="also serve N requests of a workload of their own (--calibration-seed) "
                         "at --calibration-load-factor x capacity, split into one piece per round "
                         "of repeats (about N / --repeats each), each served before its round, in the same engine, into --calibration-dir (runs then go "
                         "repeat-major: every rate of repeat 0, then of repeat 1, ...)")
    ap.add_argument("--calibration-load-factor", type=float, default=0.6)
    ap.add_argument("--calibration-seed", type=int, default=1)
    ap.add_argument("--calibration-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.rates is None and args.rates_from_profile is None:
        ap.error("give --rates or --rates-from-profile")
    if args.repeats < 1:
        ap.error(f"--repeats {args.repeats}: at least 1 (runs per rate)")
    if args.calibration_requests < 0 or 0 < args.calibration_requests < args.repeats:
        ap.error(f"--calibration-requests {args.calibration_requests}: 0, or at least one per "
                 f"round of repeats ({args.repeats})")
    if args.calibration_requests > 0 and (args.rates_from_profile is None or args.calibration_dir is None):
        ap.error("--calibration-requests needs --rates-from-profile (its rate is a share of the "
                 "capacity) and --calibration-dir")
    if args.calibration_requests and args.calibration_seed == args.seed:
        ap.error("--calibration-seed must differ from --seed: calibration requests are not the "
                 "validation's")

    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    iterlog = out_dir / "iterlog.jsonl"
    prompts, o_len, gaps, wdesc = workload(args, args.seed, args.num_requests)
    if args.rates is None:  # explicit --rates win; the profile may still set the calibration's
        cap = estimate_capacity(args.rates_from_profile, wdesc["mean_prompt"], wdesc["mean_output"],
                                args.max_num_seqs)
        rates = [round(f * cap, 3) for f in args.load_factors]
        print(f"replay: estimated capacity {cap:.3f} req/s -> rates {rates}")
        wdesc["estimated_capacity_req_s"] = cap
    else:
        rates = list(args.rates)
    cal = calibration_pieces(args) if args.calibration_requests > 0 else []

    st = E.start_engine(E.settings_from_args(args, iterlog=str(iterlog)))
    info = st.info
    print(f"replay: engine up in {info['startup_s']} s: {info['kv_blocks']} KV blocks of "
          f"{info['block_size']} tokens")
    results = []
    try:
        # Warm-up so that the first run does not pay first-call costs.
        E.add_request(st.engine, "warmup", prompts[0], 4)
        E.drain(st.engine)

        def serve(prompts_, outputs, arrivals, run_dir: Path, meta: dict) -> dict:
            time.sleep(args.pause_s)
            return replay_once(st, iterlog, prompts_, outputs, arrivals, run_dir, {**meta, "engine": info})

        def validation_run(rate: float, rep: int) -> None:
            name = f"rate{rate:g}_r{rep}"
            meta = {"run": name, "rate": rate, "repeat": rep, "seed": args.seed,
                    "num_requests": len(prompts), "workload": wdesc}
            s = serve(prompts, o_len, np.cumsum(gaps) / rate, out_dir / name, meta)
            results.append({"run": name, "rate": rate, **s})
            print(f"replay {name}: {s['finished']}/{s['requests']} finished in "
                  f"{s['wall_s']:.1f} s, {s['iterations']} iterations, "
                  f"{s['output_tok_s']:.1f} out tok/s, TTFT mean {s['ttft_mean_s']:.3f} s, "
                  f"TPOT mean {s['tpot_mean_s'] * 1e3:.1f} ms, "
                  f"preemptions {s['preemptions']}", flush=True)

        if cal:  # repeat-major: each round of repeats opens with a calibration piece
            for rep, piece in enumerate(cal):
                s = serve(piece["prompts"], piece["outputs"], piece["arrivals"],
                          args.calibration_dir / piece["name"], piece["meta"])
                print(f"replay calibration {piece['name']}: {s['finished']}/{s['requests']} "
                      f"finished in {s['wall_s']:.1f} s, {s['iterations']} iterations", flush=True)
                for rate in rates:
                    validation_run(rate, rep)
        else:
            for rate in rates:
                for rep in range(args.repeats):
                    validation_run(rate, rep)
    finally:
        E.shutdown(st)
    (out_dir / "runs.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
