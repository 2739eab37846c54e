"""Specs: presets, config.json loading, hardware, scenario TOML, validation, KV capacity."""

from __future__ import annotations

import copy
import json
import pickle
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from frontier_jax.spec import (
    HARDWARE_PRESETS,
    MODEL_PRESETS,
    SpecError,
    check_feasible,
    get_hardware,
    get_model,
    kv_bytes_per_token_per_gpu,
    kv_capacity_blocks,
    load_model_config,
    load_scenario,
    scenario_from_dict,
    scenario_to_dict,
    with_overrides,
)

REPO = Path(__file__).resolve().parents[1]

# Hugging Face config.json of meta-llama/Meta-Llama-3-8B (the keys that matter).
LLAMA3_8B_CONFIG = {
    "_name_or_path": "meta-llama/Meta-Llama-3-8B",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}


def base_dict() -> dict:
    """A small valid scenario as nested dicts."""
    return {
        "name": "t",
        "model": {"preset": "tiny-llama"},
        "hardware": {"preset": "H100-SXM"},
        "workload": {
            "num_requests": 10,
            "arrival": {"process": "poisson", "rate": 1.0},
            "prompt": {"dist": "fixed", "value": 100},
            "output": {"dist": "uniform", "low": 1, "high": 20},
        },
    }


def changed(path: str, value: object) -> dict:
    """base_dict() with the dotted `path` set to `value` (value DELETE removes the key)."""
    d = copy.deepcopy(base_dict())
    *parents, leaf = path.split(".")
    node = d
    for part in parents:
        node = node.setdefault(part, {})
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return d


DELETE = object()


def write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


# ---- models -------------------------------------------------------------------------------


def test_llama3_8b_preset_numbers() -> None:
    m = get_model("Llama-3-8B")
    assert (m.hidden_size, m.num_attention_heads, m.num_key_value_heads) == (4096, 32, 8)
    assert (m.num_hidden_layers, m.intermediate_size, m.vocab_size, m.head_dim) == (
        32, 14336, 128256, 128)
    assert not m.is_moe and m.dtype_bytes == 2
    assert m.param_count() == 8_030_261_248  # the published 8.03B
    assert m.weight_bytes() == 2 * 8_030_261_248
    assert m.kv_bytes_per_token() == 2 * 32 * 8 * 128 * 2


def test_qwen3_moe_preset_numbers() -> None:
    m = MODEL_PRESETS["qwen3-30b-a3b"]
    assert m.is_moe
    assert (m.hidden_size, m.num_hidden_layers, m.num_attention_heads, m.num_key_value_heads,
            m.head_dim) == (2048, 48, 32, 4, 128)
    assert (m.num_experts, m.num_experts_per_tok, m.moe_intermediate_size, m.vocab_size) == (
        128, 8, 768, 151936)
    assert m.param_count() == pytest.approx(30.5e9, rel=0.01)


@pytest.mark.parametrize(("name", "billions"), [
    ("llama-2-7b", 6.74), ("llama-2-70b", 68.98), ("llama-3-70b", 70.55), ("qwen2-7b", 7.62),
    ("mixtral-8x7b", 46.70),
])
def test_preset_param_counts_match_published(name: str, billions: float) -> None:
    assert MODEL_PRESETS[name].param_count() / 1e9 == pytest.approx(billions, abs=0.01)


def test_config_json_round_trip(tmp_path: Path) -> None:
    m = load_model_config(write_config(tmp_path, LLAMA3_8B_CONFIG))
    assert m.name == "meta-llama/Meta-Llama-3-8B"
    assert m == replace(MODEL_PRESETS["llama-3-8b"], name=m.name)
    assert get_model(tmp_path) == m  # a folder holding config.json works too
    multimodal = {"_name_or_path": m.name, "text_config": LLAMA3_8B_CONFIG}
    assert load_model_config(write_config(tmp_path, multimodal)) == m


def test_config_json_moe_and_dtype(tmp_path: Path) -> None:
    mixtral = {**LLAMA3_8B_CONFIG, "num_local_experts": 8, "num_experts_per_tok": 2,
               "vocab_size": 32000, "torch_dtype": "float32"}
    m = load_model_config(write_config(tmp_path, mixtral))
    assert (m.num_experts, m.num_experts_per_tok, m.moe_intermediate_size) == (8, 2, 14336)
    assert m.dtype_bytes == 4
    qwen3 = {"hidden_size": 2048, "num_attention_heads": 32, "num_key_value_heads": 4,
             "head_dim": 128, "num_hidden_layers": 48, "intermediate_size": 6144,
             "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8,
             "vocab_size": 151936, "dtype": "float8_e4m3fn"}
    m = load_model_config(write_config(tmp_path, qwen3))
    assert m.head_dim == 128 and m.dtype_bytes == 1
    assert m.param_count() == MODEL_PRESETS["qwen3-30b-a3b"].param_count()


@pytest.mark.parametrize(("edit", "field", "value"), [
    ({"hidden_size": None}, "hidden_size", None),
    ({"num_hidden_layers": 0}, "num_hidden_layers", 0),
    ({"vocab_size": -5}, "vocab_size", -5),
    ({"num_attention_heads": 30}, "num_attention_heads", 30),  # 4096 % 30 != 0, no head_dim
    ({"num_attention_heads": 32, "num_key_value_heads": 6}, "num_key_value_heads", 6),
    ({"torch_dtype": "int3"}, "torch_dtype", "int3"),
    ({"num_local_experts": 8}, "num_experts_per_tok", None),
])
def test_config_json_errors_name_key_and_value(
    tmp_path: Path, edit: dict, field: str, value: object
) -> None:
    config = {**LLAMA3_8B_CONFIG, **edit}
    config = {k: v for k, v in config.items() if v is not None}
    path = write_config(tmp_path, config)
    with pytest.raises(SpecError) as info:
        load_model_config(path)
    assert str(info.value).startswith(f"{path}: {field}: got {value!r}; ")


def test_unknown_model_lists_presets() -> None:
    with pytest.raises(SpecError, match="did you mean 'llama-3-8b'.*'tiny-llama'"):
        get_model("llama-3-9b")


# ---- hardware -----------------------------------------------------------------------------


def test_hardware_presets_and_aliases() -> None:
    h100 = get_hardware("h100")
    assert h100 is HARDWARE_PRESETS["H100-SXM"]
    assert (h100.peak_flops, h100.hbm_bytes, h100.hbm_bw, h100.nvlink_bw) == (
        989e12, 80_000_000_000, 3.35e12, 450e9)
    assert get_hardware("a800").nvlink_bw == 200e9
    assert get_hardware("H200").hbm_bytes == 141_000_000_000
    assert get_hardware("a100_80g").net_bw == 25e9


def test_hardware_overrides_are_validated() -> None:
    assert get_hardware("H100-SXM", {"hbm_bw": 3e12}).hbm_bw == 3e12
    with pytest.raises(SpecError, match=r"^<dict>: hbm_bw: got -1\.0; "):
        get_hardware("H100-SXM", {"hbm_bw": -1.0})
    with pytest.raises(SpecError, match="did you mean 'hbm_bw'"):
        get_hardware("H100-SXM", {"hbm_bwd": 3e12})
    with pytest.raises(SpecError, match=r"^<dict>: preset: got 'B200'"):
        get_hardware("B200")


# ---- scenarios ----------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "value", "field", "hint"), [
    ("schedular", {}, "schedular", "did you mean 'scheduler'"),
    ("scheduler.max_num_seq", 4, "scheduler.max_num_seq", "did you mean 'max_num_seqs'"),
    ("scheduler.max_num_seqs", "64", "scheduler.max_num_seqs", "integer"),
    ("scheduler.max_num_seqs", 10000, "scheduler.max_num_batched_tokens", ">= max_num_seqs"),
    ("scheduler.chunked_prefill", "yes", "scheduler.chunked_prefill", "true or false"),
    ("scheduler.gpu_memory_utilization", 1.5, "scheduler.gpu_memory_utilization", "(0, 1]"),
    ("scheduler.gpu_memory_utilization", 0, "scheduler.gpu_memory_utilization", "(0, 1]"),
    ("cluster.replicas", 0, "cluster.replicas", ">= 1"),
    ("cluster.router", "random", "cluster.router", "least_outstanding"),
    ("parallel.tp", 3, "parallel.tp", "num_attention_heads = 8"),
    ("parallel.pp", 5, "parallel.pp", "num_hidden_layers = 4"),
    ("workload.num_requests", 0, "workload.num_requests", ">= 1"),
    ("workload.num_requests", DELETE, "workload.num_requests", "required (or give workload.trace"),
    ("workload.arrival.rate", 0, "workload.arrival.rate", "(0, inf)"),
    ("workload.arrival.rate", DELETE, "workload.arrival.rate", "required by process 'poisson'"),
    ("workload.arrival.cv", 2.0, "workload.arrival.cv", "only used by process 'gamma'"),
    ("workload.prompt.dist", "normal", "workload.prompt.dist", "lognormal"),
    ("workload.prompt", {"dist": "lognormal", "median": 100}, "workload.prompt.sigma",
     "required by dist 'lognormal'"),
    ("workload.prompt.median", 5.0, "workload.prompt.median", "not used by dist 'fixed'"),
    ("workload.output.high", 0, "workload.output.high", ">= 1"),
    ("workload.output.max", 0, "workload.output.max", ">= 1"),
    ("workload.output.low", 30, "workload.output.high", "must be >= low = 30"),
    ("workload.output", {"dist": "fixed", "value": 5, "min": 3, "max": 2}, "workload.output.max",
     "must be >= min = 3"),
    ("workload.output", {"dist": "trace"}, "workload.output.dist", "workload.trace"),
    ("workload.trace", "nowhere.csv", "workload.trace", "file not found"),
    ("model.preset", "gpt-5", "model.preset", "unknown model"),
    ("model.num_key_value_heads", 3, "model.num_key_value_heads", "must divide"),
    ("hardware.preset", "TPU", "hardware.preset", "unknown hardware"),
    ("hardware.hbm_bytes", -1, "hardware.hbm_bytes", ">= 1"),
    ("cost.kind", "forest", "cost.predictor", "required by kind 'forest'"),
    ("cost.gemm_efficiency", 2.0, "cost.gemm_efficiency", "(0, 1]"),
    ("slo.ttft_s", -0.1, "slo.ttft_s", "(0, inf)"),
    ("sim.max_steps", 0, "sim.max_steps", ">= 1"),
    ("seed", -1, "seed", ">= 0"),
    ("workload", DELETE, "workload", "missing"),
    ("parallel", 4, "parallel", "table"),
])
def test_validation_errors_are_one_line_and_name_the_field(
    path: str, value: object, field: str, hint: str
) -> None:
    with pytest.raises(SpecError) as info:
        scenario_from_dict(changed(path, value), source="s.toml", base_dir=REPO)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"s.toml: {field}: got ")
    assert hint in message
    if value is not DELETE and field == path:
        assert repr(value) in message


def test_load_scenario_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_config(tmp_path / "data", LLAMA3_8B_CONFIG)
    (tmp_path / "data" / "t.csv").write_text("prompt_tokens,output_tokens\n10,5\n")
    (tmp_path / "s.toml").write_text(
        'seed = 3\n[model]\nconfig = "data/config.json"\n'
        '[hardware]\npreset = "h100"\nhbm_bw = 3.0e12\n'
        '[workload]\nnum_requests = 5\ntrace = "data/t.csv"\n'
        '[workload.arrival]\nrate = 2.0\n'
        '[workload.prompt]\ndist = "trace"\n[workload.output]\ndist = "trace"\nscale = 2.0\n')
    s = load_scenario(tmp_path / "s.toml")
    assert s.name == "s" and s.seed == 3 and s.source == str(tmp_path / "s.toml")
    assert s.model.num_key_value_heads == 8 and s.hardware.hbm_bw == 3e12
    assert s.workload.trace == str((tmp_path / "data" / "t.csv").resolve())
    assert s.workload.output.scale == 2.0
    assert scenario_from_dict(scenario_to_dict(s), source=s.source) == s


def test_bad_toml_file(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[model\n")
    with pytest.raises(SpecError, match=r"bad\.toml: <file>: got .*; expected a TOML scenario file"):
        load_scenario(tmp_path / "bad.toml")
    with pytest.raises(SpecError, match="file not found"):
        load_scenario(tmp_path / "missing.toml")


@pytest.mark.parametrize("name", ["demo", "light", "saturation", "kv_pressure", "four_replicas"])
def test_shipped_scenarios_load_round_trip_and_fit(name: str) -> None:
    s = load_scenario(REPO / "scenarios" / f"{name}.toml")
    check_feasible(s)
    assert s.name == name
    assert scenario_from_dict(scenario_to_dict(s), source=s.source) == s
    if name != "demo":
        assert s.workload.num_requests == 2000


def test_kv_pressure_scenario_has_2000_to_4000_blocks() -> None:
    s = load_scenario(REPO / "scenarios" / "kv_pressure.toml")
    assert 2000 <= kv_capacity_blocks(s) <= 4000


def test_round_trip_of_inline_model_and_hardware() -> None:
    d = base_dict()
    d["model"] = {**asdict(MODEL_PRESETS["tiny-llama"]), "name": "custom"}
    d["hardware"] = {**asdict(HARDWARE_PRESETS["A100-80G"]), "name": "my-gpu"}
    s = scenario_from_dict(d)
    again = scenario_to_dict(s)
    assert "preset" not in again["model"] and "preset" not in again["hardware"]
    assert scenario_from_dict(again) == s


def test_with_overrides() -> None:
    s = scenario_from_dict(base_dict(), source="s.toml")
    t = with_overrides(s, {"scheduler.max_num_seqs": 64, "cluster.replicas": 3,
                           "workload.prompt": {"dist": "fixed", "value": 7},
                           "hardware.preset": "A100-80G", "hardware.hbm_bw": 1e12})
    assert (t.scheduler.max_num_seqs, t.cluster.replicas, t.workload.prompt.value) == (64, 3, 7)
    assert t.hardware.name == "A100-80G" and t.hardware.hbm_bw == 1e12
    assert s.scheduler.max_num_seqs == 256 and s.hardware.name == "H100-SXM"  # unchanged
    assert with_overrides(s, {"model.preset": "llama-3-8b"}).model == MODEL_PRESETS["llama-3-8b"]
    with pytest.raises(SpecError, match=r"^s\.toml: scheduler\.max_num_seqs: got 0; "):
        with_overrides(s, {"scheduler.max_num_seqs": 0})
    with pytest.raises(SpecError, match="did you mean 'scheduler'"):
        with_overrides(s, {"schedulr.max_num_seqs": 8})
    with pytest.raises(SpecError, match=r"^s\.toml: seed: got 0; is not a table"):
        with_overrides(s, {"seed.x": 1})


def test_kv_capacity_blocks_by_hand() -> None:
    s = scenario_from_dict(base_dict())
    s = with_overrides(s, {"model.preset": "llama-3-8b", "parallel.tp": 2})
    weights_per_gpu = 8_030_261_248 * 2 / 2
    kv_per_token_per_gpu = 2 * 32 * (8 // 2) * 128 * 2
    assert kv_bytes_per_token_per_gpu(s) == kv_per_token_per_gpu
    expected = int((80e9 * 0.9 - weights_per_gpu) // (16 * kv_per_token_per_gpu))
    assert expected == 61006
    assert kv_capacity_blocks(s) == expected
    # tp above the kv-head count replicates KV heads: ceil(2 / 4) = 1 head per GPU.
    tiny = with_overrides(s, {"model.preset": "tiny-llama", "parallel.tp": 4, "parallel.pp": 3})
    assert kv_bytes_per_token_per_gpu(tiny) == 2 * 2 * 1 * 64 * 2  # ceil(4 / 3) = 2 layers


def test_check_feasible_names_missing_gigabytes() -> None:
    s = with_overrides(scenario_from_dict(base_dict(), source="s.toml"),
                       {"model.preset": "llama-3-70b"})
    with pytest.raises(SpecError) as info:
        check_feasible(s)
    # 70.55e9 params x 2 B = 141.1 GB of weights against 80 GB x 0.9 = 72.0 GB usable.
    assert str(info.value).startswith("s.toml: model: got 'llama-3-70b'; ")
    assert "69.1 GB missing" in str(info.value)
    assert kv_capacity_blocks(s) == 0
    check_feasible(with_overrides(s, {"parallel.tp": 2}))
    with pytest.raises(SpecError, match="no room for one KV block"):
        check_feasible(with_overrides(s, {"parallel.tp": 2,
                                          "scheduler.gpu_memory_utilization": 0.88193}))


def test_spec_error_pickles_and_moves() -> None:
    err = SpecError("<ParallelSpec>", "tp", 0, "expected an integer >= 1\n(more)")
    assert str(err) == "<ParallelSpec>: tp: got 0; expected an integer >= 1 (more)"
    assert str(pickle.loads(pickle.dumps(err))) == str(err)
    assert str(err.at("a.toml", "parallel")).startswith("a.toml: parallel.tp: got 0")
    assert err.at("a.toml").at("b.toml", "x").source == "a.toml"
