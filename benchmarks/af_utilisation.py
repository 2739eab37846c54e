"""AF groups' per-resource utilisation, the straggler of skewed routing on the FFN side, and
an FFN side on other GPUs: the README's AF tables, in one run (about 4 minutes here).

1. af_llama70b_2to1 and af_qwen3_4to1 at their 2,000 requests with m = 1, 2, 3: the share of
   the iteration time the attention side, the A->F link and the FFN side work, and TPOT p50.
2. af_qwen3_4to1 under balanced, uniform and Zipf(1.2) routing (the slowest EP rank, and the
   same Zipf maps at the mean rank load), and compare-reference on af_qwen3_4to1_zipf.
3. af_llama70b_2to1's first 200 requests with the FFN side on H200s.

Usage: ``python benchmarks/af_utilisation.py [--json]``.
"""

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from frontier_jax.runner import compare, prepare, run_reference, run_vectorized  # noqa: E402
from frontier_jax.spec import load_scenario, with_overrides  # noqa: E402

KEYS = ("tpot_p50", "tpot_p90", "ttft_p90", "throughput_rps", "af_attention_util",
        "af_link_a2f_util", "af_ffn_util")
ROUTINGS = {
    "balanced (mean load)": {},
    "uniform, slowest rank": {"moe.routing": "uniform", "moe.ep": 4},
    "zipf 1.2, mean rank load": {"moe.routing": "zipf", "moe.skew": 1.2, "moe.ep": 4,
                                 "moe.wait_for_slowest": False},
    "zipf 1.2, slowest rank": {"moe.routing": "zipf", "moe.skew": 1.2, "moe.ep": 4},
}


def scenario(name: str, **overrides):
    s = load_scenario(REPO / "scenarios" / f"{name}.toml")
    return with_overrides(s, overrides) if overrides else s


def metrics(s) -> dict:
    m = run_vectorized(prepare(s)).metrics
    return {k: float(m[k]) for k in KEYS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON only")
    a = ap.parse_args()
    out = {"micro_batches": {}, "routing": {}, "ffn_hardware": {}}
    for name in ("af_llama70b_2to1", "af_qwen3_4to1"):
        out["micro_batches"][name] = {m: metrics(scenario(name, **{"af.micro_batches": m}))
                                      for m in (1, 2, 3)}
    for label, ov in ROUTINGS.items():
        out["routing"][label] = metrics(scenario("af_qwen3_4to1", **ov))
    prep = prepare(scenario("af_qwen3_4to1_zipf"))
    c = compare(run_vectorized(prep).result, run_reference(prep).result)
    out["compare_reference_zipf"] = {k: v for k, v in c.items() if k.startswith("max_rel")}
    for hw in (None, "H200"):
        ov = {"workload.num_requests": 200, **({"af.ffn_hardware": hw} if hw else {})}
        out["ffn_hardware"][hw or "H100-SXM (as shipped)"] = metrics(scenario("af_llama70b_2to1", **ov))
    if a.json:
        print(json.dumps(out, indent=1))
        return
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    ms = lambda x: f"{1e3 * x:.1f} ms"  # noqa: E731
    for name, per in out["micro_batches"].items():
        for m, r in per.items():
            print(f"{name} m={m}: attention {pct(r['af_attention_util'])}, link A->F "
                  f"{pct(r['af_link_a2f_util'])}, FFN {pct(r['af_ffn_util'])}, TPOT p50 {ms(r['tpot_p50'])}")
    for label, r in out["routing"].items():
        print(f"af_qwen3_4to1 {label}: TPOT p50 {ms(r['tpot_p50'])}, p90 {ms(r['tpot_p90'])}, TTFT p90 "
              f"{ms(r['ttft_p90'])}, FFN {pct(r['af_ffn_util'])}, attention {pct(r['af_attention_util'])}")
    print("compare-reference af_qwen3_4to1_zipf:", out["compare_reference_zipf"])
    for hw, r in out["ffn_hardware"].items():
        print(f"af_llama70b_2to1 (200 requests), FFN on {hw}: TPOT p50 {ms(r['tpot_p50'])}, FFN "
              f"{pct(r['af_ffn_util'])}, link A->F {pct(r['af_link_a2f_util'])}")


if __name__ == "__main__":
    main()
