"""Speed of the vectorized simulator against the exact reference, in one run.

Prints simulated requests per second (wall and CPU) for the reference simulator and
for the vectorized one at C = 1, 64, 256 configurations of the same scenario
(arrival rates spread around the scenario's), compile time apart from run time,
and the time per event at N = 10k and 100k requests (it must stay flat: per-step
cost is O(B + R), never O(N)). With ``--pd`` the same is measured for the scenario's
prefill/decode twin on the same GPUs and workload (half the replicas prefill, half decode:
``pd_variant``) and the cost of a PD event is given against a co-located one, both as run
(each with the batch slots its run needs) and with the same slots.

With ``--moe`` (an MoE scenario with sampled routing, default
``scenarios/moe_qwen3_ep8.toml``) it times that scenario at one configuration and
``--moe-requests`` requests, and prices its events against the same scenario with balanced
routing (no routing maps: the plain roofline event) run with the same batch slots.

With ``--af`` (an attention/FFN-disaggregated scenario, default
``scenarios/af_llama70b_2to1.toml``) it times that scenario at one configuration and
``--af-requests`` requests, and prices its events against its co-located twin (the same
scenario without [af], one replica per group with the group's summed caps) run with the same
batch slots.

    python benchmarks/speed.py --json [--scenario scenarios/demo.toml] [--quick] [--pd] [--moe] [--af]
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

from frontier_jax.params import first_slots
from frontier_jax.reference import simulate_reference
from frontier_jax.runner import simulate_sized
from frontier_jax.sim import sim_params, sim_shape, simulate, simulate_batch, stack
from frontier_jax.spec import load_scenario, scenario_from_dict, scenario_to_dict, with_overrides
from frontier_jax.workload import make_workload

REPO = Path(__file__).resolve().parents[1]


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    jax.block_until_ready(jax.tree.leaves(out))
    return out, time.perf_counter() - w0, time.process_time() - c0


def _configs(scenario, c: int, n: int):
    """C variants of the scenario: arrival rate x U(0.5, 1.5), seed i."""
    rng = np.random.default_rng(0)
    base = scenario.workload.arrival.rate
    out = []
    for i in range(c):
        s = with_overrides(
            scenario,
            {
                "workload.num_requests": n,
                "workload.arrival.rate": float(base * rng.uniform(0.5, 1.5)),
                "seed": i,
            },
        )
        out.append(sim_params(s, make_workload(s.workload, s.seed)))
    return out


def pd_variant(scenario):
    """The scenario's prefill/decode twin: its replicas split into prefill (half, rounded
    down, at least one) and decode instances, same TP/PP, GPUs, scheduler and workload."""
    d = scenario_to_dict(scenario)
    par = d.pop("parallel")
    r = d["cluster"].pop("replicas")
    n_p = max(1, r // 2)
    d["layout"] = {"prefill": {"role": "prefill", "count": n_p, **par},
                   "decode": {"role": "decode", "count": max(1, r - n_p), **par}}
    d["name"] = scenario.name + "-pd"
    return scenario_from_dict(d, scenario.source)


def bench_reference(scenario, n: int, repeats: int) -> dict:
    cfgs = _configs(scenario, repeats, n)
    shape = sim_shape(stack(cfgs))
    wall = cpu = 0.0
    for p in cfgs:
        _, w, c = _timed(lambda p=p: simulate_reference(p, shape.max_instances))
        wall, cpu = wall + w, cpu + c
    return {
        "configs": repeats,
        "requests": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "req_per_s": repeats * n / wall,
        "req_per_cpu_s": repeats * n / cpu,
    }


def bench_vectorized(scenario, c: int, n: int, max_batch: int | None = None) -> dict:
    """C configurations in one call, timed after a first (compiling) run. The batch slots
    are sized by the run (doubled while they bind), or fixed at ``max_batch``."""
    cfgs = _configs(scenario, c, n)
    params = stack(cfgs) if c > 1 else cfgs[0]
    fn = simulate_batch if c > 1 else simulate
    if max_batch is None:
        shape = sim_shape(params, max_batch=first_slots(cfgs))
        # Size the batch slots first (compiles, and reruns while they bind), then time.
        (_, shape), compile_wall, _ = _timed(lambda: simulate_sized(shape, params))
    else:
        shape = sim_shape(params, max_batch=max_batch)
        _, compile_wall, _ = _timed(lambda: fn(shape, params))
    res, wall, cpu = _timed(lambda: fn(shape, params))
    steps = np.asarray(res.steps)
    assert not np.any(res.incomplete), "event budget ran out"
    return {
        "configs": c,
        "requests": n,
        "compile_and_first_run_s": compile_wall,
        "max_batch": shape.max_batch,
        "wall_s": wall,
        "cpu_s": cpu,
        "req_per_s": c * n / wall,
        "req_per_cpu_s": c * n / cpu,
        "max_steps": int(steps.max()),
        "us_per_config_step": 1e6 * wall / (c * steps.max()),
    }


def bench_step_scaling(scenario, sizes) -> list[dict]:
    """Time per event for one configuration as N grows at a fixed arrival rate."""
    rows = []
    for n in sizes:
        r = bench_vectorized(scenario, 1, n)
        rows.append(
            {
                "requests": n,
                "steps": r["max_steps"],
                "wall_s": r["wall_s"],
                "us_per_step": r["us_per_config_step"],
            }
        )
    return rows


def _bench_layout(scenario, a) -> tuple[dict, list[dict]]:
    ref = bench_reference(scenario, a.requests, a.reference_repeats)
    vec = [bench_vectorized(scenario, c, a.requests) for c in a.configs]
    for v in vec:
        v["speedup_vs_reference_per_cpu_s"] = v["req_per_cpu_s"] / ref["req_per_cpu_s"]
        v["speedup_vs_reference_wall"] = v["req_per_s"] / ref["req_per_s"]
    return ref, vec


def balanced_twin(scenario):
    """The MoE scenario priced with balanced routing (the mean load, no routing maps); with
    attention DP ranks (shorthand layouts), one rank of the same instance-wide caps."""
    over = {"moe.routing": "balanced", "moe.ep": 1, "moe.placement": "contiguous",
            "moe.redundant_experts": 0}
    dp, sc = scenario.parallel.dp, scenario.scheduler
    if dp > 1:
        over.update({"parallel.dp": 1, "scheduler.max_num_seqs": dp * sc.max_num_seqs,
                     "scheduler.max_num_batched_tokens": dp * sc.max_num_batched_tokens})
    return with_overrides(scenario, over)


def af_twin(scenario):
    """The AF scenario without [af]: one co-located replica per group, on the attention
    instances' TP, with the group's summed scheduler caps (the same batch slots); with
    sampled MoE routing its experts on an EP group of the replica's TP GPUs."""
    m, sc = scenario.af.attention, scenario.scheduler
    ep = {"moe.ep": scenario.parallel.tp} if scenario.moe.sampled else {}
    return with_overrides(scenario, {"af.ffn": 0, "af.attention": 1, "af.ffn_tp": 1, "af.micro_batches": 2,
                                     "scheduler.max_num_seqs": m * sc.max_num_seqs,
                                     "scheduler.max_num_batched_tokens": m * sc.max_num_batched_tokens,
                                     **ep})


def bench_af(scenario, n: int) -> dict:
    """One configuration of the AF scenario, and its co-located twin at the same slots."""
    (af, flat), (af_same, flat_same) = bench_twins(scenario, af_twin(scenario), n)
    return {"scenario": scenario.name, "as_run": {"af": af, "colocated": flat}, "af": af_same,
            "colocated_same_slots": flat_same,
            "event_cost_vs_colocated": af_same["us_per_config_step"] / flat_same["us_per_config_step"]}


def _af_line(m: dict) -> str:
    return _twin_line(m, "af", "AF", "colocated", "co-located")


def bench_twins(scenario, twin, n: int) -> tuple:
    """One configuration of ``scenario`` and of its ``twin``: ((as run), (with the same batch
    slots)), each pair ``(scenario's, twin's)`` :func:`bench_vectorized` dicts. Per-step cost is
    linear in the batch slots, so events are compared with the same slots."""
    a, b = bench_vectorized(scenario, 1, n), bench_vectorized(twin, 1, n)
    slots = max(a["max_batch"], b["max_batch"])
    same_a = a if a["max_batch"] == slots else bench_vectorized(scenario, 1, n, max_batch=slots)
    same_b = b if b["max_batch"] == slots else bench_vectorized(twin, 1, n, max_batch=slots)
    return (a, b), (same_a, same_b)


def bench_moe(scenario, n: int) -> dict:
    """One configuration of the sampled-MoE scenario, and its balanced twin at the same slots."""
    (moe, flat), (moe_same, flat_same) = bench_twins(scenario, balanced_twin(scenario), n)
    return {"scenario": scenario.name, "as_run": {"sampled": moe, "balanced": flat}, "sampled": moe_same,
            "balanced_same_slots": flat_same,
            "event_cost_vs_balanced": moe_same["us_per_config_step"] / flat_same["us_per_config_step"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(REPO / "scenarios" / "demo.toml"))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--configs", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--reference-repeats", type=int, default=3)
    ap.add_argument("--scaling", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    ap.add_argument("--pd", action="store_true",
                    help="also measure the scenario's prefill/decode twin (same GPUs and workload)")
    ap.add_argument("--moe", nargs="?", const=str(REPO / "scenarios" / "moe_qwen3_ep8.toml"),
                    default=None, metavar="SCENARIO",
                    help="also time an MoE scenario with sampled routing (default moe_qwen3_ep8)")
    ap.add_argument("--moe-requests", type=int, default=10_000)
    ap.add_argument("--moe-only", action="store_true", help="time only the --moe scenario")
    ap.add_argument("--af", nargs="?", const=str(REPO / "scenarios" / "af_llama70b_2to1.toml"),
                    default=None, metavar="SCENARIO",
                    help="also time an AF scenario (default af_llama70b_2to1)")
    ap.add_argument("--af-requests", type=int, default=2000)
    ap.add_argument("--af-only", action="store_true", help="time only the --af scenario")
    a = ap.parse_args()
    if a.quick:
        a.requests, a.configs, a.reference_repeats, a.scaling = 300, [1, 8], 1, [2000, 8000]
        a.moe_requests = a.af_requests = 500
    if a.af_only:
        a.af = a.af or str(REPO / "scenarios" / "af_llama70b_2to1.toml")
        out = {"device": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(),
               "af": bench_af(load_scenario(a.af), a.af_requests)}
        print(json.dumps(out, indent=2) if a.json else _af_line(out["af"]))
        return
    if a.moe_only:
        a.moe = a.moe or str(REPO / "scenarios" / "moe_qwen3_ep8.toml")
        out = {"device": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(),
               "moe": bench_moe(load_scenario(a.moe), a.moe_requests)}
        print(json.dumps(out, indent=2) if a.json else _moe_line(out["moe"]))
        return
    scenario = load_scenario(a.scenario)
    ref, vec = _bench_layout(scenario, a)
    out = {
        "scenario": scenario.name,
        "device": jax.devices()[0].device_kind,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "reference": ref,
        "vectorized": vec,
        "step_scaling": bench_step_scaling(scenario, a.scaling),
    }
    if a.pd:
        pd = pd_variant(scenario)
        pref, pvec = _bench_layout(pd, a)
        for v, c in zip(pvec, vec, strict=True):
            v["event_cost_vs_colocated"] = v["us_per_config_step"] / c["us_per_config_step"]
            # Per-step cost is linear in the batch slots, and a decode instance holds every
            # decoding sequence of the layout, so the PD twin may need more slots than the
            # co-located one: its events are also priced against co-located ones run with
            # the same slots.
            if v["max_batch"] != c["max_batch"]:
                c = bench_vectorized(scenario, c["configs"], a.requests, max_batch=v["max_batch"])
            v["colocated_us_per_config_step_same_slots"] = c["us_per_config_step"]
            v["event_cost_vs_colocated_same_slots"] = v["us_per_config_step"] / c["us_per_config_step"]
        out["pd"] = {"scenario": pd.name, "gpus": pd.num_gpus, "reference": pref, "vectorized": pvec}
    if a.moe:
        out["moe"] = bench_moe(load_scenario(a.moe), a.moe_requests)
    if a.af:
        out["af"] = bench_af(load_scenario(a.af), a.af_requests)
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{scenario.name} on {out['device']}: reference {ref['req_per_cpu_s']:.0f} req/CPU-s")
    for v in vec:
        print(
            f"  C={v['configs']:4d}: {v['req_per_cpu_s']:9.0f} req/CPU-s "
            f"({v['speedup_vs_reference_per_cpu_s']:.1f}x reference), "
            f"{v['us_per_config_step']:.2f} us/config-step, compile {v['compile_and_first_run_s']:.1f}s"
        )
    for r in out["step_scaling"]:
        print(f"  N={r['requests']:7d}: {r['us_per_step']:.2f} us/step over {r['steps']} steps")
    if a.pd:
        pd = out["pd"]
        print(f"{pd['scenario']} ({pd['gpus']} GPUs): reference {pd['reference']['req_per_cpu_s']:.0f} req/CPU-s")
        for v in pd["vectorized"]:
            print(f"  C={v['configs']:4d}: {v['req_per_cpu_s']:9.0f} req/CPU-s "
                  f"({v['speedup_vs_reference_per_cpu_s']:.1f}x reference), "
                  f"{v['us_per_config_step']:.2f} us/config-step "
                  f"({v['event_cost_vs_colocated']:.2f}x a co-located event, "
                  f"{v['event_cost_vs_colocated_same_slots']:.2f}x with the same {v['max_batch']} slots)")

    if a.moe:
        print(_moe_line(out["moe"]))
    if a.af:
        print(_af_line(out["af"]))


def _moe_line(m: dict) -> str:
    return _twin_line(m, "sampled", "sampled routing", "balanced", "balanced")


def _twin_line(m: dict, key: str, label: str, twin: str, twin_label: str) -> str:
    """One line of :func:`bench_twins`' figures: the scenario as run, and its event cost
    against its twin's with the same batch slots."""
    v, f, r = m[key], m[f"{twin}_same_slots"], m["as_run"][key]
    return (f"{m['scenario']} ({label}), {v['requests']} requests: {r['req_per_cpu_s']:.0f} req/CPU-s "
            f"as run ({r['max_batch']} slots); {v['us_per_config_step']:.2f} us/step vs "
            f"{f['us_per_config_step']:.2f} {twin_label} with the same {v['max_batch']} slots "
            f"({m[f'event_cost_vs_{twin}']:.2f}x)")


if __name__ == "__main__":
    main()
