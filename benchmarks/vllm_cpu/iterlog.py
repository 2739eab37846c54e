"""vLLM's own V1 scheduler, plus a per-iteration log written from inside the EngineCore process.

`engine.py` passes `scheduler_cls="iterlog.LoggingScheduler"` (this folder is put on the
PYTHONPATH of the spawned engine processes) and sets FJ_ITERLOG to a JSON-lines file. The class
is `vllm.v1.core.sched.scheduler.Scheduler` unchanged except that it:

- times `schedule()` and `update_from_output()` with time.monotonic() (CLOCK_MONOTONIC is one
  clock for every process of the machine, so these times line up with the front end's) and
  writes one line per iteration that scheduled tokens: the step index, the four timestamps,
  per scheduled request its id, query tokens q, context tokens (KV computed before this step),
  prompt length, output tokens so far and whether it is a decode (its last known token, q = 1)
  or a prefill chunk (prompt, or prompt + outputs again after a preemption), the waiting and
  running counts, the KV blocks free and the requests preempted while scheduling this step;
- honours an optional per-request token-budget plan for the profiler (`extra_args =
  {"fj_budgets": [b1, b2, ...]}` in SamplingParams): while such a request is unfinished and has
  entries left, the step's token budget is its next entry instead of max_num_batched_tokens
  (never above it), and the entry is used up when the request is scheduled. Replays never set
  it, so they run vLLM's scheduler as shipped.

The iteration time of step i is t_update_end - t_schedule_start (scheduling, model execution
in the worker, sampling and the output update); the gap to the next step's t_schedule_start is
the engine loop's own overhead (output queue, input handling), also visible from the log.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from vllm.v1.core.sched.scheduler import Scheduler

ENV_LOG = "FJ_ITERLOG"
PLAN_KEY = "fj_budgets"


class LoggingScheduler(Scheduler):
    """vLLM's Scheduler with an iteration log (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        path = os.environ.get(ENV_LOG)
        self._fj_log = open(path, "a", buffering=1) if path else None  # line-buffered
        self._fj_step = 0
        self._fj_pending: dict[str, Any] | None = None
        self._fj_preempted: list[str] = []
        self._fj_plans: dict[str, list[int]] = {}
        self._fj_default_budget = self.max_num_scheduled_tokens
        if self._fj_log is not None:
            self._fj_write({
                "event": "start", "t": time.monotonic(), "pid": os.getpid(),
                "max_num_scheduled_tokens": self.max_num_scheduled_tokens,
                "max_num_running_reqs": self.max_num_running_reqs,
                "block_size": getattr(self, "block_size", None),
                "num_blocks": self._fj_total_blocks(),
                # usable blocks (vLLM's BlockPool keeps one null block out of the pool)
                "free_blocks": self._fj_free_blocks(),
            })

    # -- helpers ----------------------------------------------------------------------------
    def _fj_write(self, rec: dict[str, Any]) -> None:
        self._fj_log.write(json.dumps(rec, separators=(",", ":")) + "\n")

    def _fj_total_blocks(self) -> int | None:
        try:
            return int(self.kv_cache_config.num_blocks)
        except Exception:  # noqa: BLE001 - the log must never break the engine
            return None

    def _fj_free_blocks(self) -> int | None:
        try:
            return int(self.kv_cache_manager.block_pool.get_num_free_blocks())
        except Exception:  # noqa: BLE001
            return None

    # -- overrides ---------------------------------------------------------------------------
    def add_request(self, request: Any) -> None:
        sp = getattr(request, "sampling_params", None)
        extra = getattr(sp, "extra_args", None) or {}
        plan = extra.get(PLAN_KEY)
        if plan:
            self._fj_plans[request.request_id] = [int(b) for b in plan]
        super().add_request(request)

    def _preempt_request(self, request: Any, timestamp: float, *args: Any, **kwargs: Any) -> None:
        self._fj_preempted.append(request.request_id)
        return super()._preempt_request(request, timestamp, *args, **kwargs)

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        planned = None
        if self._fj_plans:
            for rid in list(self._fj_plans):
                if rid not in self.requests or not self._fj_plans[rid]:
                    del self._fj_plans[rid]
            if self._fj_plans:
                planned = next(iter(self._fj_plans))
                self.max_num_scheduled_tokens = max(1, min(self._fj_default_budget,
                                                           self._fj_plans[planned][0]))
        budget = self.max_num_scheduled_tokens
        self._fj_preempted = []
        t0 = time.monotonic()
        try:
            out = super().schedule(*args, **kwargs)
        finally:
            self.max_num_scheduled_tokens = self._fj_default_budget
        t1 = time.monotonic()
        if planned is not None and planned in out.num_scheduled_tokens:
            self._fj_plans[planned].pop(0)
        if self._fj_log is None or out.total_num_scheduled_tokens == 0:
            self._fj_pending = None
            return out
        reqs = []
        for rid, q in out.num_scheduled_tokens.items():
            r = self.requests[rid]
            ctx = int(r.num_computed_tokens) - int(q)  # num_computed_tokens already advanced
            n_out = int(r.num_output_tokens)
            decode = n_out > 0 and q == 1 and ctx == int(r.num_tokens) - 1
            reqs.append([getattr(r, "external_req_id", None) or rid, int(q), ctx,
                         int(r.num_prompt_tokens), n_out, 1 if decode else 0])
        self._fj_pending = {
            "event": "step", "step": self._fj_step, "t_sched_start": t0, "t_sched_end": t1,
            "budget": budget, "planned": planned is not None,
            "reqs": reqs, "num_waiting": len(self.waiting), "num_running": len(self.running),
            "free_blocks": self._fj_free_blocks(), "preempted": list(self._fj_preempted),
            "total_tokens": int(out.total_num_scheduled_tokens),
        }
        self._fj_step += 1
        return out

    def update_from_output(self, scheduler_output: Any, model_runner_output: Any) -> Any:
        t2 = time.monotonic()
        result = super().update_from_output(scheduler_output, model_runner_output)
        t3 = time.monotonic()
        rec, self._fj_pending = self._fj_pending, None
        if rec is not None and self._fj_log is not None:
            rec["t_update_start"] = t2
            rec["t_update_end"] = t3
            self._fj_write(rec)
        return result

    def shutdown(self) -> None:
        try:
            if self._fj_log is not None:
                self._fj_write({"event": "shutdown", "t": time.monotonic()})
                self._fj_log.close()
                self._fj_log = None
        finally:
            super().shutdown()
