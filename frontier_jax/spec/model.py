"""Model geometry: `ModelSpec`, Hugging Face config.json loading and presets.

Only what the cost model needs is kept: layer shapes, attention heads, MoE experts and the weight
dtype. Biases, rotary tables and per-head q/k norms are ignored in `param_count` (they are well
under 0.1% of the weights of the preset models).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frontier_jax.spec.errors import (
    INT32_MAX,
    SpecError,
    check_bool,
    check_int,
    check_str,
    did_you_mean,
    one_of,
    read_spec_text,
)

# config.json keys that give the number of routed experts / the weight dtype, in lookup order.
_EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts")
_DTYPE_KEYS = ("torch_dtype", "dtype")
# Model families whose MLP is up -> activation -> down (two matrices) instead of gated (three).
# Widest element type accepted (float64).
_MAX_DTYPE_BYTES = 8
_NON_GATED_MODEL_TYPES = frozenset({"gpt_neox", "opt", "falcon", "phi", "starcoder2", "gpt_bigcode"})


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer's geometry. Sizes are counts (elements, heads, layers);
    `dtype_bytes` is the bytes of one weight and one KV-cache element. `num_experts` = 0 means
    a dense MLP of width `intermediate_size`; otherwise each layer has `num_experts` routed experts
    of width `moe_intermediate_size`, `num_experts_per_tok` of them per token, plus one shared
    expert of width `shared_expert_intermediate_size` when that is > 0. An MoE model's first
    `dense_layers` layers (DeepSeek's `first_k_dense_replace`) have a dense MLP of width
    `intermediate_size` instead."""

    name: str
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    num_hidden_layers: int
    intermediate_size: int
    vocab_size: int
    head_dim: int
    dtype_bytes: int = 2
    tie_word_embeddings: bool = False
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    gated_mlp: bool = True
    dense_layers: int = 0

    def __post_init__(self) -> None:
        check_str(self, "name")
        for name in ("hidden_size", "num_attention_heads", "num_key_value_heads",
                     "num_hidden_layers", "intermediate_size", "vocab_size", "head_dim"):
            check_int(self, name, minimum=1, maximum=INT32_MAX)
        check_int(self, "dtype_bytes", minimum=1, maximum=_MAX_DTYPE_BYTES)
        for name in ("num_experts", "num_experts_per_tok", "moe_intermediate_size",
                     "shared_expert_intermediate_size", "dense_layers"):
            check_int(self, name, minimum=0, maximum=INT32_MAX)
        check_bool(self, "tie_word_embeddings")
        check_bool(self, "gated_mlp")
        src = f"<{type(self).__name__}>"
        if self.num_attention_heads % self.num_key_value_heads:
            raise SpecError(src, "num_key_value_heads", self.num_key_value_heads,
                            f"must divide num_attention_heads = {self.num_attention_heads}")
        if self.is_moe:
            if not 1 <= self.num_experts_per_tok <= self.num_experts:
                raise SpecError(src, "num_experts_per_tok", self.num_experts_per_tok,
                                f"expected 1..num_experts = {self.num_experts} for an MoE model")
            if self.moe_intermediate_size < 1:
                raise SpecError(src, "moe_intermediate_size", self.moe_intermediate_size,
                                "expected >= 1 for an MoE model")
            if self.dense_layers >= self.num_hidden_layers:
                raise SpecError(src, "dense_layers", self.dense_layers,
                                f"expected < num_hidden_layers = {self.num_hidden_layers}")
        else:
            for name in ("num_experts_per_tok", "moe_intermediate_size",
                         "shared_expert_intermediate_size", "dense_layers"):
                if getattr(self, name):
                    raise SpecError(src, name, getattr(self, name),
                                    "expected 0 for a dense model (num_experts = 0)")

    @property
    def is_moe(self) -> bool:
        """Returns True when the MLP is a mixture of experts."""
        return self.num_experts > 0

    def param_count(self) -> int:
        """Returns the number of weights: embeddings, LM head (unless tied), per layer the q, k, v
        and o projections, the MLP (dense, or routed experts + router + shared expert) and two
        norms, and the final norm."""
        h, hd = self.hidden_size, self.head_dim
        mats = 3 if self.gated_mlp else 2
        attention = 2 * h * self.num_attention_heads * hd + 2 * h * self.num_key_value_heads * hd
        dense_mlp = mats * h * self.intermediate_size
        if self.is_moe:
            mlp = (self.num_experts * mats * h * self.moe_intermediate_size
                   + h * self.num_experts
                   + mats * h * self.shared_expert_intermediate_size)
        else:
            mlp = dense_mlp
        per_layer = attention + mlp + 2 * h
        embeddings = self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return (embeddings + self.num_hidden_layers * per_layer + h
                + self.dense_layers * (dense_mlp - mlp))

    def weight_bytes(self) -> int:
        """Returns the bytes of all weights (`param_count` x `dtype_bytes`), unsharded."""
        return self.param_count() * self.dtype_bytes

    def ffn_weight_bytes(self) -> int:
        """Returns the bytes of every layer's MLP (dense, or routed experts + router + shared
        expert; the dense first layers' dense MLP), unsharded: what an AF group's FFN side holds."""
        h = self.hidden_size
        mats = 3 if self.gated_mlp else 2
        dense_mlp = mats * h * self.intermediate_size
        if not self.is_moe:
            return self.num_hidden_layers * dense_mlp * self.dtype_bytes
        mlp = (self.num_experts * mats * h * self.moe_intermediate_size + h * self.num_experts
               + mats * h * self.shared_expert_intermediate_size)
        return ((self.num_hidden_layers - self.dense_layers) * mlp + self.dense_layers * dense_mlp) * self.dtype_bytes

    def routed_expert_bytes(self) -> int:
        """Returns the bytes of the routed experts' weights (0 for a dense model): MoE layers x
        experts x (2 or 3 matrices) x hidden x moe_intermediate_size x dtype_bytes."""
        if not self.is_moe:
            return 0
        mats = 3 if self.gated_mlp else 2
        return ((self.num_hidden_layers - self.dense_layers) * self.num_experts * mats
                * self.hidden_size * self.moe_intermediate_size * self.dtype_bytes)

    def kv_bytes_per_token(self) -> int:
        """Returns the KV-cache bytes one token takes in the whole model, unsharded:
        2 (K and V) x layers x kv heads x head_dim x dtype_bytes."""
        return (2 * self.num_hidden_layers * self.num_key_value_heads * self.head_dim
                * self.dtype_bytes)


def load_model_config(path: str | Path) -> ModelSpec:
    """Returns the ModelSpec read from a Hugging Face config.json at `path`; raises SpecError
    naming the file and key for a missing or invalid value. A multimodal config with a
    `text_config` table is read from that table."""
    path = Path(path)
    source = str(path)
    try:
        config = json.loads(read_spec_text(path))
    except SpecError:
        raise
    except FileNotFoundError:
        raise SpecError(source, "<file>", source, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(source, "<file>", str(exc), "expected a JSON config file") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # huge integer, deep nesting
        raise SpecError(source, "<file>", f"{type(exc).__name__}: {exc}",
                        "expected a JSON config file (numbers under 4300 digits, "
                        "nesting under ~900 levels)") from None
    if not isinstance(config, dict):
        raise SpecError(source, "<file>", type(config).__name__, "expected a JSON object")
    given_name = config.get("_name_or_path")
    if isinstance(given_name, str) and given_name.strip():
        name = given_name.strip()
    else:
        name = path.parent.name if path.name == "config.json" and path.parent.name else path.stem
    name = name or "model"
    if isinstance(config.get("text_config"), dict):
        config = config["text_config"]
    try:
        return ModelSpec(name=name, **_fields_from_config(config, source))
    except SpecError as exc:
        raise exc.at(source) from None


def _fields_from_config(config: Mapping[str, Any], source: str) -> dict[str, Any]:
    def positive(key: str) -> int:
        if key not in config:
            raise SpecError(source, key, None, "required key is missing")
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(source, key, value, "expected a positive integer")
        return value

    def optional(key: str, default: int = 0) -> int:
        return default if config.get(key) is None else positive(key)

    hidden = positive("hidden_size")
    heads = positive("num_attention_heads")
    kv_heads = optional("num_key_value_heads", heads)
    if config.get("head_dim") is not None:
        head_dim = positive("head_dim")
    elif hidden % heads:
        raise SpecError(source, "num_attention_heads", heads,
                        f"must divide hidden_size = {hidden} when head_dim is absent")
    else:
        head_dim = hidden // heads
    if heads % kv_heads:
        raise SpecError(source, "num_key_value_heads", kv_heads,
                        f"must divide num_attention_heads = {heads}")
    intermediate = positive("intermediate_size")
    expert_key = next((k for k in _EXPERT_KEYS if config.get(k) is not None), None)
    experts = positive(expert_key) if expert_key else 0
    moe_width = optional("moe_intermediate_size", intermediate) if experts else 0
    if not experts:
        shared = 0
    elif config.get("n_shared_experts") is not None:
        shared = positive("n_shared_experts") * moe_width
    else:
        shared = optional("shared_expert_intermediate_size")
    tie = config.get("tie_word_embeddings", False)
    if not isinstance(tie, bool):
        raise SpecError(source, "tie_word_embeddings", tie, "expected true or false")
    return {
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "num_hidden_layers": positive("num_hidden_layers"),
        "intermediate_size": intermediate,
        "vocab_size": positive("vocab_size"),
        "head_dim": head_dim,
        "dtype_bytes": _dtype_bytes(config, source),
        "tie_word_embeddings": tie,
        "num_experts": experts,
        "num_experts_per_tok": positive("num_experts_per_tok") if experts else 0,
        "moe_intermediate_size": moe_width,
        "shared_expert_intermediate_size": shared,
        "gated_mlp": _model_type(config, source) not in _NON_GATED_MODEL_TYPES,
        "dense_layers": optional("first_k_dense_replace") if experts else 0,
    }


def _model_type(config: Mapping[str, Any], source: str) -> str | None:
    """Returns config.json's model_type (None when absent); raises SpecError unless a string."""
    value = config.get("model_type")
    if value is not None and not isinstance(value, str):
        raise SpecError(source, "model_type", value, "expected a string such as 'llama'")
    return value


def _dtype_bytes(config: Mapping[str, Any], source: str) -> int:
    """Returns the bytes per weight from torch_dtype/dtype (fp8 quantization wins); 2 if absent."""
    quant = config.get("quantization_config")
    if isinstance(quant, dict) and quant.get("quant_method") == "fp8":
        return 1
    key = next((k for k in _DTYPE_KEYS if config.get(k) is not None), None)
    if key is None:
        return 2
    if not isinstance(config[key], str):
        raise SpecError(source, key, config[key],
                        "expected bfloat16, float16, float32 or a float8 type")
    dtype = config[key].lower().removeprefix("torch.")
    if dtype in ("bfloat16", "float16", "half", "bf16", "fp16"):
        return 2
    if dtype in ("float32", "float", "fp32"):
        return 4
    if dtype.startswith(("float8", "fp8")):
        return 1
    raise SpecError(source, key, config[key],
                    "expected bfloat16, float16, float32 or a float8 type")


MODEL_PRESETS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        # meta-llama/Llama-2-7b-hf (torch_dtype float16)
        ModelSpec("llama-2-7b", hidden_size=4096, num_attention_heads=32, num_key_value_heads=32,
                  num_hidden_layers=32, intermediate_size=11008, vocab_size=32000, head_dim=128),
        # meta-llama/Llama-2-70b-hf
        ModelSpec("llama-2-70b", hidden_size=8192, num_attention_heads=64, num_key_value_heads=8,
                  num_hidden_layers=80, intermediate_size=28672, vocab_size=32000, head_dim=128),
        # meta-llama/Meta-Llama-3-8B
        ModelSpec("llama-3-8b", hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                  num_hidden_layers=32, intermediate_size=14336, vocab_size=128256, head_dim=128),
        # meta-llama/Meta-Llama-3-70B
        ModelSpec("llama-3-70b", hidden_size=8192, num_attention_heads=64, num_key_value_heads=8,
                  num_hidden_layers=80, intermediate_size=28672, vocab_size=128256, head_dim=128),
        # Qwen/Qwen2-7B (q/k/v biases not counted)
        ModelSpec("qwen2-7b", hidden_size=3584, num_attention_heads=28, num_key_value_heads=4,
                  num_hidden_layers=28, intermediate_size=18944, vocab_size=152064, head_dim=128),
        # mistralai/Mixtral-8x7B-v0.1: experts are as wide as intermediate_size
        ModelSpec("mixtral-8x7b", hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                  num_hidden_layers=32, intermediate_size=14336, vocab_size=32000, head_dim=128,
                  num_experts=8, num_experts_per_tok=2, moe_intermediate_size=14336),
        # Qwen/Qwen3-30B-A3B: every layer is MoE, no shared expert
        ModelSpec("qwen3-30b-a3b", hidden_size=2048, num_attention_heads=32, num_key_value_heads=4,
                  num_hidden_layers=48, intermediate_size=6144, vocab_size=151936, head_dim=128,
                  num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768),
        # Qwen/Qwen3-235B-A22B: every layer is MoE, no shared expert
        ModelSpec("qwen3-235b-a22b", hidden_size=4096, num_attention_heads=64, num_key_value_heads=4,
                  num_hidden_layers=94, intermediate_size=12288, vocab_size=151936, head_dim=128,
                  num_experts=128, num_experts_per_tok=8, moe_intermediate_size=1536),
        # DeepSeek-V3-like layout: 256 routed + 1 shared expert (2048 wide), top-8, 3 dense layers
        # first (18432 wide), fp8 weights. MLA is approximated by its KV size: one KV head of 288
        # x 2 = 576 elements per token per layer (kv_lora_rank 512 + rope 64); the attention
        # projections are priced as that GQA layout's, not MLA's low-rank ones.
        ModelSpec("deepseek-v3-like", hidden_size=7168, num_attention_heads=128, num_key_value_heads=1,
                  num_hidden_layers=61, intermediate_size=18432, vocab_size=129280, head_dim=288,
                  dtype_bytes=1, num_experts=256, num_experts_per_tok=8, moe_intermediate_size=2048,
                  shared_expert_intermediate_size=2048, dense_layers=3),
        # A small Llama-shaped model for tests.
        ModelSpec("tiny-llama", hidden_size=512, num_attention_heads=8, num_key_value_heads=2,
                  num_hidden_layers=4, intermediate_size=1536, vocab_size=32000, head_dim=64),
    )
}


def get_model(name_or_path: str | Path) -> ModelSpec:
    """Returns the preset named `name_or_path` (case-insensitive) or the ModelSpec read from the
    config.json at that path; raises SpecError listing the presets otherwise."""
    key = str(name_or_path).strip().lower()
    if key in MODEL_PRESETS:
        return MODEL_PRESETS[key]
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "config.json"
    if path.is_file() or path.suffix == ".json":
        return load_model_config(path)
    presets = sorted(MODEL_PRESETS)
    raise SpecError("<dict>", "model", str(name_or_path),
                    f"unknown model{did_you_mean(key, presets)}; {one_of(presets)}"
                    " or a path to a config.json")

