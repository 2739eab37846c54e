"""Simulate recorded 1P+1D vLLM replays (pd_replay.py) with frontier-jax and compare.

    /work/main/.venv/bin/python benchmarks/vllm_cpu/disagg/pd_compare.py work/disagg/replay \
        --profile work/disagg/profile/profile.csv [--json OUT]

Runs in the project's environment. For each run it builds a 1P+1D scenario: the harness's
model, one prefill and one decode instance (tp 1) with the servers' scheduler settings
(online_start.sh: max_num_seqs 16, budget 2048, 128-token blocks, chunked prefill on the
decode server only) and the KV
capacity the decode server logged (less vLLM's null block); the same requests (the times the
prompts were sent to the prefill server, prompt and output tokens); the KV link fitted to the
connector's own timings in the servers' logs (``TIMED save`` on the prefill side, ``TIMED load``
on the decode side: latency = the sum of the two fits' intercepts, bandwidth = KV bytes per
token over the sum of their slopes). The cost model is the roofline on this CPU's measured
rates with its rates and host overheads fitted to the profile of one engine with the same settings
(``compare.py``'s "roofline-fit"), and the MLP surrogate trained on that profile.

Printed per rate and cost: measured vs simulated throughput, TTFT, TPOT, E2E (vLLM's
convention: the first token streamed by the decode server) and the parts of TTFT: prompt done
(arrival to the prefill server's reply; simulated: to the end of the prefill) and the KV
transfer (measured: the connector's save + load time for the request's tokens, by the fits;
simulated: the link's time).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
HARNESS = HERE.parent
ROOT = HARNESS.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HARNESS))

from compare import ROWS as COMPARE_ROWS  # noqa: E402
from compare import fit_cost, hardware_override, stats, train_engine_predictor  # noqa: E402

from frontier_jax.cost.tiers import cost_model  # noqa: E402
from frontier_jax.params import first_slots  # noqa: E402
from frontier_jax.runner import Prepared, simulate_sized, summarize  # noqa: E402
from frontier_jax.sim import sim_params, sim_shape  # noqa: E402
from frontier_jax.spec import scenario_from_dict  # noqa: E402
from frontier_jax.workload import Workload  # noqa: E402

# the servers' settings (online_start.sh)
ENGINE = {"max_num_seqs": 16, "max_num_batched_tokens": 2048, "chunked_prefill": True,
          "block_size": 128}
SAVE = re.compile(r"TIMED save: (\d+) tokens, \d+ layer calls, ([\d.]+) ms")
LOAD = re.compile(r"TIMED load: (\d+) tokens in ([\d.]+) ms")
KV_TOKENS = re.compile(r"KV cache size: ([\d,]+) tokens")


def _log_slice(path: str, span: list[int] | None) -> str:
    text = Path(path).read_bytes()
    return (text[span[0]:span[1]] if span else text).decode(errors="replace")


def connector_times(meta: dict[str, Any]) -> dict[str, Any]:
    """The connector's save (prefill side) and load (decode side) lines of this run: token
    counts and ms, and a least-squares line ms = a + b tokens for each."""
    out: dict[str, Any] = {}
    for side, pat, key in (("save", SAVE, "prefill"), ("load", LOAD, "decode")):
        rows = [(int(n), float(ms)) for n, ms in
                pat.findall(_log_slice(meta["logs"][key], meta["log_offsets"][key]))]
        if len(rows) < 2:
            raise SystemExit(f"pd_compare: fewer than 2 'TIMED {side}' lines in {meta['logs'][key]}"
                             " for this run (was the server started with timed_connector?)")
        x, y = np.array(rows, float).T
        b, a = np.polyfit(x, y, 1)
        out[side] = {"n": len(rows), "tokens": x.tolist(), "ms": y.tolist(),
                     "intercept_ms": float(a), "ms_per_token": float(b),
                     "median_ms": float(np.median(y)), "median_tokens": float(np.median(x))}
    return out


def kv_blocks(meta: dict[str, Any]) -> int:
    """KV blocks a request can use on the decode server: its logged capacity less the null block."""
    m = KV_TOKENS.findall(Path(meta["logs"]["decode"]).read_text(errors="replace"))
    if not m:
        raise SystemExit(f"pd_compare: no 'KV cache size' line in {meta['logs']['decode']}")
    return int(m[0].replace(",", "")) // ENGINE["block_size"] - 1


def scenario_for(meta: dict[str, Any], hw: dict[str, Any], cost: dict[str, Any], n: int,
                 link: dict[str, float] | None, pd_layout: bool = True) -> Any:
    """The 1P+1D scenario of a run (``pd_layout`` False: one co-located engine with the same
    settings, the layout the profile was measured on, for fitting the cost model)."""
    d = {
        "name": f"vllm-cpu-1p1d-rate{meta['rate']:g}",
        "model": {"config": str(Path(meta["model"]) / "config.json")},
        "hardware": hw,
        "scheduler": dict(ENGINE),
        # the prefill server runs without chunked prefill (online_start.sh)
        "prefill": {"replicas": 1, "tp": 1, "scheduler": {"chunked_prefill": False}},
        "decode": {"replicas": 1, "tp": 1},
        "workload": {"num_requests": n, "arrival": {"process": "poisson", "rate": 1.0},
                     "prompt": {"dist": "fixed", "value": 1},
                     "output": {"dist": "fixed", "value": 1}},
        "cost": cost,
    }
    if not pd_layout:
        del d["prefill"], d["decode"]
    elif link:
        d["kv_transfer"] = link
    return scenario_from_dict(d)


def link_from(conn: dict[str, Any], bytes_per_token: float) -> dict[str, float]:
    a = max(conn["save"]["intercept_ms"] + conn["load"]["intercept_ms"], 0.0) / 1e3
    b = max(conn["save"]["ms_per_token"] + conn["load"]["ms_per_token"], 1e-9) / 1e3
    return {"latency_s": a, "bandwidth": bytes_per_token / b}


def kv_bytes_per_token(model_config: Path) -> float:
    c = json.loads(model_config.read_text())
    heads = int(c["num_attention_heads"])
    head_dim = int(c.get("head_dim") or c["hidden_size"] // heads)
    return float(c["num_hidden_layers"] * 2 * int(c.get("num_key_value_heads", heads)) * head_dim * 2)


def _mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.mean(x)) if x.size else float("nan")


def simulate_run(run: Path, hw: dict[str, Any], cost: dict[str, Any]) -> dict[str, Any]:
    meta = json.loads((run / "meta.json").read_text())
    req = pd.DataFrame(json.loads((run / "requests.json").read_text())).sort_values("prefill_sent_s")
    for col in ("prefill_done_s", "first_token_s", "last_token_s", "generated"):
        if col not in req:
            req[col] = np.nan
    conn = connector_times(meta)
    bpt = kv_bytes_per_token(Path(meta["model"]) / "config.json")
    link = link_from(conn, bpt)
    t_shift = float(req["prefill_sent_s"].min())
    arrival = np.maximum.accumulate(req["prefill_sent_s"].to_numpy(float) - t_shift)
    prompt = req["prompt_tokens"].to_numpy(np.int64)
    output = req["output_tokens"].to_numpy(np.int64)
    sc = scenario_for(meta, hw, cost, len(req), link)
    blocks = kv_blocks(meta)
    params = sim_params(sc, Workload(arrival, prompt, output), kv_blocks=blocks)
    shape = sim_shape(params, max_batch=first_slots([params]))
    tier = cost_model(sc)
    res, shape = simulate_sized(shape, params, tier)
    out = summarize(Prepared(sc, params, shape, tier), res, 0.0)
    tab = out.table
    sim = stats(tab["arrival_s"], tab["arrival_s"] + tab["ttft_s"], tab["arrival_s"] + tab["e2e_s"],
                tab["output_tokens"], tab["generated_tokens"], tab["preemptions"], 0)
    sim["prompt_done_mean_s"] = _mean(np.asarray(tab["prefill_end_s"]) - np.asarray(tab["arrival_s"]))
    sim["transfer_mean_s"] = _mean(np.asarray(tab["transfer_s"]))
    sim["transfer_wait_mean_s"] = _mean(np.asarray(tab["transfer_wait_s"]))
    first = req["first_token_s"].to_numpy(float) - t_shift
    last = req["last_token_s"].to_numpy(float) - t_shift
    meas = stats(arrival, first, last, output, req["generated"].fillna(0).to_numpy(np.int64),
                 np.zeros(len(req), np.int64), 0)
    meas["prompt_done_mean_s"] = _mean(req["prefill_done_s"].to_numpy(float) - t_shift - arrival)
    # measured transfer: the connector's save + load time for each request's stored tokens
    stored = (prompt - 1) // ENGINE["block_size"] * ENGINE["block_size"]
    per_tok = (conn["save"]["ms_per_token"] + conn["load"]["ms_per_token"]) / 1e3
    fixed = (conn["save"]["intercept_ms"] + conn["load"]["intercept_ms"]) / 1e3
    meas["transfer_mean_s"] = float(np.mean(fixed + per_tok * stored))
    meas["transfer_wait_mean_s"] = float("nan")
    generated = req["generated"].fillna(0).to_numpy(np.int64)
    return {"run": run.name, "rate": meta["rate"], "link": link, "connector": {
                k: {kk: v[kk] for kk in ("n", "intercept_ms", "ms_per_token", "median_ms", "median_tokens")}
                for k, v in conn.items()},
            "errors": int(req["error"].notna().sum()) if "error" in req else 0,
            "generated_as_asked": bool(np.all(generated == output)),
            "kv_blocks": blocks, "measured": meas, "simulated": sim}


# compare.py's rows less those a replay without an iteration log cannot measure, plus TTFT's parts
ROWS = [r for r in COMPARE_ROWS if r[1] not in ("iterations", "mean_iteration_s", "preemptions")] + [
    ("prompt done mean ms", "prompt_done_mean_s", 1e3, "{:.1f}"),
    ("KV transfer mean ms", "transfer_mean_s", 1e3, "{:.2f}")]


def print_run(variant: str, r: dict[str, Any]) -> None:
    c = r["connector"]
    print(f"\n== cost {variant}, rate {r['rate']:g} req/s ({r['errors']} request errors, every "
          f"output as asked: {r['generated_as_asked']}; decode KV {r['kv_blocks']} blocks)")
    print(f"   link fitted to the connector: latency {r['link']['latency_s'] * 1e3:.2f} ms, "
          f"{r['link']['bandwidth'] / 1e9:.3f} GB/s (save: {c['save']['n']} steps, median "
          f"{c['save']['median_ms']:.1f} ms for {c['save']['median_tokens']:.0f} tokens; load: "
          f"{c['load']['n']} steps, median {c['load']['median_ms']:.1f} ms for "
          f"{c['load']['median_tokens']:.0f} tokens)")
    print(f"{'metric':<22} {'measured':>10} {'simulated':>10} {'error':>8}")
    for label, key, scale, fmt in ROWS:
        m, s = r["measured"][key], r["simulated"][key]
        err = (s - m) / m if m and math.isfinite(m) and math.isfinite(s) else float("nan")
        print(f"{label:<22} {fmt.format(m * scale):>10} {fmt.format(s * scale):>10} "
              f"{'' if not math.isfinite(err) else f'{err:+.1%}':>8}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("replay", type=Path, help="pd_replay.py's --out folder")
    ap.add_argument("--profile", type=Path, required=True, help="profile_engine.py's CSV")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    runs = sorted((p for p in a.replay.iterdir() if (p / "meta.json").exists()),
                  key=lambda p: json.loads((p / "meta.json").read_text())["rate"])
    if not runs:
        raise SystemExit(f"pd_compare: no runs (folders with meta.json) under {a.replay}")
    hw_path = a.profile.parent / "cpu_hardware.json"
    hw = hardware_override(hw_path if hw_path.exists() else None)
    meta0 = json.loads((runs[0] / "meta.json").read_text())
    sc0 = scenario_for(meta0, hw, {"kind": "roofline"}, 1, None, pd_layout=False)
    cal = fit_cost(pd.read_csv(a.profile), sc0)
    print(f"pd_compare: roofline fitted to {a.profile}: "
          + ", ".join(f"{k}={v:.4g}" for k, v in cal.cost.items())
          + "; rates / microbenchmark "
          + ", ".join(f"{k} {v:.3g}x" for k, v in cal.vs_start.items())
          + f"; profile rows median |err| {cal.error['median_abs_rel_err']:.1%}")
    pred = train_engine_predictor(a.profile, Path(meta0["model"]) / "config.json",
                                  a.profile.parent / "predictor")
    # the fitted roofline runs on its own hardware (peaks raised to rates above them)
    variants = {"roofline-fit": ({**hw, **cal.hardware}, {"kind": "roofline", **cal.cost}),
                "surrogate": (hw, {"kind": "surrogate", "predictor": str(pred.resolve())})}
    results = []
    for name, (vhw, cost) in variants.items():
        for run in runs:
            r = simulate_run(run, vhw, cost)
            r["variant"] = name
            print_run(name, r)
            results.append(r)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"hardware": hw, "fit": {**cal.summary(), "error": cal.error},
                                      "runs": results}, indent=2, default=float) + "\n")
        print(f"\npd_compare: JSON -> {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
