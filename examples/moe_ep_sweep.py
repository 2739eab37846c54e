"""Expert-parallel degree x expert skew for a DeepSeek-V3-like model in one compiled call:
throughput per GPU, TPOT p90 and the straggler penalty of each layout, and what EPLB-style
replication recovers.

    python examples/moe_ep_sweep.py [--spec sweeps/moe_deepseek_ep.toml] [--out DIR] [--json]

Runs the sweep spec (EP 1..64 x Zipf skew x spare expert slots x max-vs-mean rank load on 64
H200s; the EP degrees whose weights do not fit are listed as skipped) and prints one row per
(EP, skew, spare slots): output tokens/s per GPU and TPOT p90 when every MoE layer waits for its
slowest EP rank, the same at the mean rank load (``moe.wait_for_slowest = false``), and the
straggler penalty (how much slower the slowest rank makes TPOT p90).
"""

import argparse
import json
import time
from pathlib import Path

from frontier_jax.sweep import load_sweep, run_sweep

REPO = Path(__file__).resolve().parents[1]
KEYS = ["ep", "moe.skew", "spare"]


def table(df):
    """One row per (EP, skew, spare): the max-load run beside its mean-load twin."""
    ok = df[df["status"] == "ok"]
    cols = KEYS + ["layout", "output_tok_s_per_gpu", "tpot_p90"]
    slow = ok[ok["moe.wait_for_slowest"]][cols]
    mean = ok[~ok["moe.wait_for_slowest"]][KEYS + ["output_tok_s_per_gpu", "tpot_p90"]]
    t = slow.merge(mean, on=KEYS, suffixes=("", "_mean"))
    t["straggler_tpot_pct"] = 100.0 * (t["tpot_p90"] / t["tpot_p90_mean"] - 1.0)
    for c in ("tpot_p90", "tpot_p90_mean"):
        t[c] = t[c] * 1e3
    return t.sort_values(KEYS).reset_index(drop=True)


def recovery(t):
    """Per (EP, skew): TPOT p90 without and with one spare slot per rank, and the share of the
    straggler penalty the replication removes."""
    a = t[t["spare"] == 0].set_index(["ep", "moe.skew"])
    b = t[t["spare"] == 1].set_index(["ep", "moe.skew"])
    out = a[["tpot_p90", "tpot_p90_mean"]].rename(columns={"tpot_p90": "tpot_p90_no_spare"})
    out["tpot_p90_eplb"] = b["tpot_p90"]
    gap = out["tpot_p90_no_spare"] - out["tpot_p90_mean"]
    out["recovered_pct"] = 100.0 * (out["tpot_p90_no_spare"] - out["tpot_p90_eplb"]) / gap.where(gap > 0)
    return out.reset_index()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(REPO / "sweeps" / "moe_deepseek_ep.toml"))
    ap.add_argument("--out", default=str(REPO / "results" / "moe_deepseek_ep"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    spec = load_sweep(a.spec)
    t0 = time.perf_counter()
    df = run_sweep(spec, a.out, progress=not a.json)
    wall = time.perf_counter() - t0
    t, r = table(df), None
    r = recovery(t)
    skipped = df[df["status"] != "ok"]
    if a.json:
        print(json.dumps({"wall_s": wall, "skipped": len(skipped), "table": t.to_dict(orient="records"),
                          "eplb": r.to_dict(orient="records")}, indent=1, default=float))
        return
    n_ok = int((df["status"] == "ok").sum())
    print(f"{spec.name}: {n_ok} configurations run, {len(skipped)} skipped "
          f"(EP {sorted(set(skipped['ep']))}: weights do not fit), {wall:.0f} s")
    names = {"moe.skew": "zipf s", "output_tok_s_per_gpu": "tok/s/GPU", "tpot_p90": "TPOT p90 ms",
             "output_tok_s_per_gpu_mean": "tok/s/GPU mean", "tpot_p90_mean": "TPOT p90 mean ms",
             "straggler_tpot_pct": "straggler %"}
    fmt = lambda x: f"{x:.3g}"  # noqa: E731
    print(t.rename(columns=names).to_string(index=False, float_format=fmt))
    print("\nEPLB-style replication (one spare slot per EP rank): share of the straggler penalty recovered")
    print(r.rename(columns={"moe.skew": "zipf s"}).to_string(index=False, float_format=fmt))


if __name__ == "__main__":
    main()
