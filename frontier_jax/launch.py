"""Launch settings for a simulated layout: the `vllm serve` commands that deploy it.

One command per pool (co-located replicas, or PD's prefill and decode pools) with the flags
of vLLM VLLM_VERSION that carry what the simulator modelled: tensor, pipeline and data
parallel sizes, expert parallelism (and EPLB's redundant experts), the scheduler's caps
(max-num-seqs, max-num-batched-tokens, long-prefill-token-threshold, reserve-full-isl,
chunked prefill), the KV cache's block size and memory share, and for PD the KV connector.
`tests/test_launch.py` parses every command with that version's own argument parser where
it is installed (`benchmarks/vllm_cpu`'s environment). AF layouts have no vLLM equivalent and
get a note instead of commands.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field

from frontier_jax.spec import Scenario
from frontier_jax.spec.scenario import PoolSpec, pool_ep

VLLM_VERSION = "0.32.0"

# Hugging Face repositories of the model presets (the comments in frontier_jax/spec/model.py).
HF_REPOS = {
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "llama-2-70b": "meta-llama/Llama-2-70b-hf",
    "llama-3-8b": "meta-llama/Meta-Llama-3-8B",
    "llama-3-70b": "meta-llama/Meta-Llama-3-70B",
    "qwen2-7b": "Qwen/Qwen2-7B",
    "mixtral-8x7b": "mistralai/Mixtral-8x7B-v0.1",
    "qwen3-30b-a3b": "Qwen/Qwen3-30B-A3B",
    "qwen3-235b-a22b": "Qwen/Qwen3-235B-A22B",
    "deepseek-v3-like": "deepseek-ai/DeepSeek-V3",
}
# vLLM's disaggregated prefill: both sides load the NIXL connector; a proxy sends each request
# to a prefill instance (max_tokens 1) and then to a decode instance, which pulls the KV.
PD_CONNECTOR = {"kv_connector": "NixlConnector", "kv_role": "kv_both"}


@dataclass(frozen=True)
class LaunchCommand:
    """One pool's server: `instances` copies of `argv`, each on `gpus_each` GPUs of `hardware`."""

    pool: str
    role: str
    instances: int
    gpus_each: int
    hardware: str
    argv: tuple[str, ...]

    @property
    def text(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class LaunchPlan:
    """The commands that deploy a layout with vLLM `vllm_version`, and notes on what the
    commands cannot say (routing, models without a Hugging Face repository, ...)."""

    vllm_version: str
    model: str
    commands: tuple[LaunchCommand, ...]
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        d = asdict(self)
        for c, cmd in zip(d["commands"], self.commands, strict=True):
            c["argv"] = list(cmd.argv)
            c["command"] = cmd.text
        d["notes"] = list(self.notes)
        return d

    def text(self) -> str:
        """The plan as lines: a header, one comment and command per pool, then the notes."""
        lines = [f"# vLLM {self.vllm_version} launch settings"]
        for c in self.commands:
            lines.append(f"# {c.pool} ({c.role}): {c.instances} instance(s) x {c.gpus_each} "
                         f"GPU(s) of {c.hardware}")
            lines.append(c.text)
        lines += [f"# note: {n}" for n in self.notes]
        return "\n".join(lines)


def vllm_launch(s: Scenario) -> LaunchPlan:
    """The vLLM commands that deploy scenario `s`'s layout."""
    model = HF_REPOS.get(s.model.name, s.model.name)
    notes = []
    if s.model.name not in HF_REPOS:
        notes.append(f"model {s.model.name!r} has no known Hugging Face repository: put its "
                     "path or repository in place of the model name")
    if s.af.enabled:
        return LaunchPlan(VLLM_VERSION, model, (), (
            "vLLM has no attention/FFN disaggregation: this AF layout (MegaScale-Infer, Step-3 "
            "style) has no vLLM launch settings",))
    commands = tuple(_pool_command(s, p, model) for p in s.pools if p.count)
    if len(commands) > 1 or commands[0].instances > 1:
        notes.append(f"route requests across instances like the simulator's {s.cluster.router} "
                     "router (a load balancer in front of the servers)")
    if s.disaggregated:
        notes.append(f"a proxy sends each request to a prefill instance with max_tokens 1, then "
                     f"to a decode instance, which pulls the KV cache over NIXL (vLLM's "
                     f"disaggregated serving example, toy_proxy_server.py); the simulator's "
                     f"decode router is {s.kv_transfer.decode_router}")
    if any(p.dp > 1 for p in s.pools if p.count):
        notes.append("attention data parallelism: --data-parallel-size runs the DP ranks of one "
                     "instance as one server with one expert-parallel group, as simulated")
    return LaunchPlan(VLLM_VERSION, model, commands, tuple(notes))


def _pool_command(s: Scenario, p: PoolSpec, model: str) -> LaunchCommand:
    sc = p.scheduler
    argv = ["vllm", "serve", model,
            "--tensor-parallel-size", str(p.tp),
            "--pipeline-parallel-size", str(p.pp)]
    if p.dp > 1:
        argv += ["--data-parallel-size", str(p.dp)]
    if s.model.num_experts and pool_ep(s, p) > 1:
        argv.append("--enable-expert-parallel")
        if s.moe.placement == "eplb":
            argv += ["--enable-eplb", "--eplb-config",
                     json.dumps({"num_redundant_experts": s.moe.redundant_experts})]
    argv += ["--max-num-seqs", str(sc.max_num_seqs),
             "--max-num-batched-tokens", str(sc.max_num_batched_tokens),
             "--block-size", str(sc.block_size),
             "--gpu-memory-utilization", f"{sc.gpu_memory_utilization:g}",
             "--enable-chunked-prefill" if sc.chunked_prefill else "--no-enable-chunked-prefill",
             "--scheduler-reserve-full-isl" if sc.reserve_full_isl
             else "--no-scheduler-reserve-full-isl"]
    if sc.long_prefill_token_threshold:
        argv += ["--long-prefill-token-threshold", str(sc.long_prefill_token_threshold)]
    if s.model.dtype_bytes == 1:
        argv += ["--quantization", "fp8"]
    if p.role in ("prefill", "decode"):
        argv += ["--kv-transfer-config", json.dumps(PD_CONNECTOR, separators=(",", ":"))]
    return LaunchCommand(p.name, p.role, p.count, p.gpus_per_instance, p.hardware.name,
                         tuple(argv))


SLO_SHARE = 0.9  # a sweep row "meets its SLOs" when this share of its requests does


def best_front_row(df) -> tuple[int, str]:
    """The config_id of a sweep's best layout and why: among the rows on the Pareto front of
    output tokens/s per GPU against TPOT p90, the one with the most output tokens/s per GPU
    whose SLO attainment is at least SLO_SHARE (when the runs have SLOs), else the most."""
    import numpy as np
    import pandas as pd

    from frontier_jax.plot import PANELS, Y_COLUMN, front_flags

    ok = df[df["status"] == "ok"]
    front = ok.loc[front_flags(ok)[PANELS[0].flag]]
    y = pd.to_numeric(front[Y_COLUMN], errors="coerce")
    why = "the most output tok/s/GPU on the front"
    if "slo_attainment" in front:
        slo = pd.to_numeric(front["slo_attainment"], errors="coerce")
        if np.isfinite(slo).any() and (slo >= SLO_SHARE).any():
            y = y.where(slo >= SLO_SHARE)
            why += f" with SLO attainment >= {SLO_SHARE:.0%}"
    return int(front.loc[y.idxmax(), "config_id"]), why


def sweep_scenario(spec, config_id: int) -> Scenario:
    """The scenario of configuration `config_id` of sweep `spec` (its expansion's order)."""
    from frontier_jax.spec import with_overrides
    from frontier_jax.sweep.expand import expand

    cfg = expand(spec)[0][config_id]
    return with_overrides(spec.base, cfg.overrides) if cfg.overrides else spec.base


def layout_scenario(spec, layout: dict) -> Scenario:
    """The scenario of one point of the optimiser's search space (axis name -> value)."""
    from frontier_jax.spec import with_overrides
    from frontier_jax.sweep.expand import config_for

    cfg = config_for(spec, layout)
    return with_overrides(spec.base, cfg.overrides) if cfg.overrides else spec.base
