"""vLLM launch settings: what each layout's commands carry, the sweep's and optimiser's best
layouts, and (where benchmarks/vllm_cpu's environment has vLLM) every command parsed by that
vLLM version's own `vllm serve` argument parser."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from frontier_jax.launch import (
    VLLM_VERSION,
    best_front_row,
    layout_scenario,
    sweep_scenario,
    vllm_launch,
)
from frontier_jax.spec import load_scenario, with_overrides
from frontier_jax.sweep import load_sweep

SCENARIOS = sorted((REPO / "scenarios").glob("*.toml"))
VLLM_PYTHON = REPO / "benchmarks" / "vllm_cpu" / ".venv" / "bin" / "python"
CHECKER = REPO / "benchmarks" / "vllm_cpu" / "check_launch_flags.py"


def flags(argv) -> dict[str, str | None]:
    """--flag value pairs of a command (a flag followed by another flag has value None)."""
    out, args = {}, list(argv[3:])
    for i, a in enumerate(args):
        if a.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else None
            out[a] = None if nxt is None or nxt.startswith("--") else nxt
    return out


def test_colocated_command_carries_the_simulated_knobs() -> None:
    s = with_overrides(load_scenario(REPO / "scenarios" / "demo.toml"),
                       {"parallel.tp": 2, "scheduler.max_num_seqs": 48,
                        "scheduler.block_size": 32,
                        "scheduler.long_prefill_token_threshold": 512})
    plan = vllm_launch(s)
    (cmd,) = plan.commands
    assert cmd.argv[:3] == ("vllm", "serve", "meta-llama/Meta-Llama-3-8B")
    f = flags(cmd.argv)
    assert f["--tensor-parallel-size"] == "2" and f["--max-num-seqs"] == "48"
    assert f["--max-num-batched-tokens"] == str(s.scheduler.max_num_batched_tokens)
    assert f["--block-size"] == "32" and f["--long-prefill-token-threshold"] == "512"
    assert "--enable-chunked-prefill" in f and "--kv-transfer-config" not in f
    off = vllm_launch(with_overrides(s, {"scheduler.chunked_prefill": False,
                                         "scheduler.long_prefill_token_threshold": 0}))
    assert "--no-enable-chunked-prefill" in off.commands[0].argv
    assert cmd.instances == s.cluster.replicas and cmd.gpus_each == 2
    assert plan.vllm_version == VLLM_VERSION and f"vLLM {VLLM_VERSION}" in plan.text()


def test_pd_moe_and_af_layouts() -> None:
    pd_plan = vllm_launch(load_scenario(REPO / "scenarios" / "pd_moe_qwen3.toml"))
    roles = [c.role for c in pd_plan.commands]
    assert roles == ["prefill", "decode"]
    for c in pd_plan.commands:
        connector = json.loads(flags(c.argv)["--kv-transfer-config"])
        assert connector == {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
        assert "--enable-expert-parallel" in c.argv
    assert any("proxy" in n for n in pd_plan.notes)
    deepseek = vllm_launch(load_scenario(REPO / "scenarios" / "moe_deepseek_dp8_ep32.toml"))
    f = flags(deepseek.commands[0].argv)
    assert f["--data-parallel-size"] == "8" and f["--tensor-parallel-size"] == "4"
    assert json.loads(f["--eplb-config"]) == {"num_redundant_experts": 32}
    af = vllm_launch(load_scenario(REPO / "scenarios" / "af_llama70b_2to1.toml"))
    assert af.commands == () and "no attention/FFN disaggregation" in af.notes[0]
    tiny = vllm_launch(load_scenario(REPO / "scenarios" / "cpu_tiny_llama.toml"))
    assert "no known Hugging Face repository" in tiny.notes[0]


def test_best_front_row_prefers_rows_that_meet_the_slos() -> None:
    df = pd.DataFrame({
        "config_id": [0, 1, 2, 3], "status": ["ok"] * 4, "family": ["TP1"] * 4,
        "layout": ["a", "b", "c", "d"], "gpus": [4] * 4,
        "output_tok_s_per_gpu": [100.0, 300.0, 500.0, 50.0],
        "tpot_p90": [0.01, 0.02, 0.05, 0.03], "ttft_p90": [0.1, 0.2, 0.3, 0.4],
        "e2e_p90": [1.0, 2.0, 3.0, 4.0], "throughput_rps": [1.0] * 4,
        "tok_s_per_user": [90.0, 50.0, 20.0, 30.0],
        "slo_attainment": [1.0, 0.95, 0.5, 1.0],
    })
    assert best_front_row(df)[0] == 1
    assert best_front_row(df.drop(columns="slo_attainment"))[0] == 2


def test_sweep_and_optimiser_layouts_become_their_scenarios() -> None:
    spec = load_sweep(REPO / "sweeps" / "demo.toml")
    from frontier_jax.sweep import expand
    configs, _ = expand(spec)
    s = sweep_scenario(spec, configs[-1].config_id)
    assert (s.parallel.tp, s.cluster.replicas) == (8, 2)
    layout = {"parallel.tp": 4, "scheduler.max_num_batched_tokens": 2048,
              "scheduler.max_num_seqs": 64, "workload.arrival.rate": 80.0}
    s = layout_scenario(spec, layout)
    f = flags(vllm_launch(s).commands[0].argv)
    assert (f["--tensor-parallel-size"], f["--max-num-seqs"]) == ("4", "64")
    assert vllm_launch(s).commands[0].instances == 4


def _commands() -> list[list[str]]:
    """Every shipped scenario's commands and every layout of the demo sweep's space."""
    cmds = [list(c.argv) for p in SCENARIOS for c in vllm_launch(load_scenario(p)).commands]
    spec = load_sweep(REPO / "sweeps" / "demo.toml")
    for tp in (1, 2, 4, 8):
        s = layout_scenario(spec, {"parallel.tp": tp, "scheduler.max_num_batched_tokens": 8192,
                                   "scheduler.max_num_seqs": 256, "workload.arrival.rate": 40.0})
        cmds += [list(c.argv) for c in vllm_launch(s).commands]
    return cmds


@pytest.mark.skipif(not VLLM_PYTHON.is_file(),
                    reason="vLLM not installed (benchmarks/vllm_cpu/setup.sh builds it)")
def test_every_command_parses_with_vllms_own_parser() -> None:
    cmds = _commands()
    bogus = [*cmds[0], "--max-num-seqz", "3"]
    bad_eplb = [*cmds[0], "--eplb-config", '{"num_redundant_expert": 3}']
    proc = subprocess.run([str(VLLM_PYTHON), str(CHECKER)], input=json.dumps([*cmds, bogus, bad_eplb]),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["vllm_version"] == VLLM_VERSION
    *ok, bogus_result, eplb_result = out["results"]
    assert ok == ["ok"] * len(cmds), [(c, r) for c, r in zip(cmds, ok, strict=True) if r != "ok"]
    assert "max-num-seqz" in bogus_result and eplb_result != "ok"
    assert np.unique([c[2] for c in cmds]).size >= 4  # dense, MoE, DeepSeek-like models
