"""Write a randomly initialised checkpoint of a small Llama/Qwen2-shaped model for vLLM.

    benchmarks/vllm_cpu/.venv/bin/python benchmarks/vllm_cpu/make_model.py [--out DIR]

Nothing is downloaded: the architecture comes from a config built here (hidden 512, 4 layers,
8 query heads, 2 KV heads, FFN 1536, vocab 32000 by default), the weights are drawn by
transformers' own initialisers under a fixed seed, and a minimal word-level tokenizer with
the same vocabulary size is saved beside them (the harness runs vLLM with
skip_tokenizer_init=True and feeds token ids, so the tokenizer is only there to make the folder
a complete Hugging Face model). Serving speed does not depend on the weight values.

The folder gets config.json, model.safetensors, generation_config.json, tokenizer.json and
tokenizer_config.json. `frontier_jax` reads the same config.json
(scenario `[model] config = ".../config.json"`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "work" / "model"


def model_config(arch: str, hidden: int, layers: int, heads: int, kv_heads: int, ffn: int,
                 vocab: int, max_pos: int, dtype: str) -> dict:
    """Returns a Hugging Face config.json dict for a Llama- or Qwen2-shaped decoder."""
    common = {
        "hidden_size": hidden,
        "intermediate_size": ffn,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": hidden // heads,
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "tie_word_embeddings": False,
        "use_cache": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": dtype,
        "dtype": dtype,
        "_name_or_path": f"random-{arch}-h{hidden}-l{layers}",
    }
    if arch == "llama":
        return {**common, "architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "rope_theta": 10000.0, "attention_bias": False, "mlp_bias": False}
    if arch == "qwen2":
        return {**common, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                "rope_theta": 1000000.0, "use_sliding_window": False, "sliding_window": None,
                "max_window_layers": layers}
    raise ValueError(f"unknown arch {arch!r}: expected llama or qwen2")


def write_tokenizer(out: Path, vocab: int) -> None:
    """A word-level tokenizer over `vocab` entries: <unk>=0, <s>=1, </s>=2, then t3..t{vocab-1}
    (whitespace pre-tokenizer). Enough for tooling that expects one; vLLM never loads it here."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<unk>": 0, "<s>": 1, "</s>": 2}
    words.update({f"t{i}": i for i in range(3, vocab)})
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="</s>")
    fast.save_pretrained(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--arch", choices=("llama", "qwen2"), default="llama")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=1536)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--max-pos", type=int, default=8192,
                    help="max_position_embeddings (the longest max_model_len vLLM accepts)")
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="rewrite even if the config matches")
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = model_config(args.arch, args.hidden, args.layers, args.heads, args.kv_heads, args.ffn,
                       args.vocab, args.max_pos, args.dtype)
    out: Path = args.out
    stamp = out / "make_model.json"
    if (not args.force and stamp.exists() and (out / "model.safetensors").exists()
            and json.loads(stamp.read_text()) == {"config": cfg, "seed": args.seed}):
        print(f"make_model: {out} is up to date")
        return 0
    if stamp.exists() and (prev := json.loads(stamp.read_text())).get("config", {}) != cfg:
        was = prev.get("config", {}).get("architectures", ["?"])[0]
        print(f"make_model: replacing {out} ({was} -> {cfg['architectures'][0]}; "
              "pass another --out to keep both)")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    hf_cfg = AutoConfig.for_model(cfg["model_type"], **{
        k: v for k, v in cfg.items() if k not in ("model_type", "_name_or_path")})
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_config(hf_cfg, dtype=dtype)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out, safe_serialization=True)
    # save_pretrained writes transformers' view of the config; put ours (with torch_dtype and
    # the name) on top so that frontier_jax and vLLM read the same values.
    saved = json.loads((out / "config.json").read_text())
    saved.update(cfg)
    (out / "config.json").write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    write_tokenizer(out, args.vocab)
    stamp.write_text(json.dumps({"config": cfg, "seed": args.seed}, indent=2, sort_keys=True))
    size = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    print(f"make_model: {cfg['architectures'][0]} {n_params / 1e6:.1f}M parameters "
          f"({size / 1e6:.1f} MB {args.dtype}) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
