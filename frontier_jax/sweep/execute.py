"""Run a sweep: group by static shape, chunk, vmap (sharded over devices), Parquet per chunk.

Configurations are grouped by the static shape they compile to (requests N, a
power-of-two bucket of replica slots R); each group is cut into fixed-size chunks
(padded by repeating a configuration, so every chunk of a group reuses one
executable), run with ``simulate_batch`` and the configuration axis sharded over
the local devices, reduced at once to one metrics row per configuration, and written
to ``chunks/<group>-<chunk>.parquet`` (atomically). A rerun with ``resume`` skips
chunks already written, so an interrupted sweep loses nothing and ends identical.
Per-request arrays exist for one chunk at a time.
"""

import hashlib
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd

from frontier_jax.cost import ROOFLINE, CostModel
from frontier_jax.invariants import violations
from frontier_jax.metrics import request_table, run_metrics
from frontier_jax.sim import SimShape, simulate_batch, stack
from frontier_jax.sim.build import INITIAL_SLOTS, cost_model, sim_params
from frontier_jax.spec import (
    Scenario,
    SpecError,
    check_feasible,
    kv_capacity_blocks,
    scenario_to_dict,
    with_overrides,
)
from frontier_jax.sweep.expand import Config, expand
from frontier_jax.workload import make_workload


@dataclass(frozen=True)
class Planned:
    """A configuration ready to chunk: its scenario, or why it cannot run."""

    config: Config
    scenario: Scenario | None
    status: str  # "ok" or the reason it is skipped


def plan_config(spec, cfg: Config) -> Planned:
    """Validate one configuration: its scenario, or the reason it cannot run."""
    try:
        s = with_overrides(spec.base, cfg.overrides) if cfg.overrides else spec.base
        check_feasible(s)
        cost_model(s)  # a missing or mismatched predictor set is this config's error
        if kv_capacity_blocks(s) < 1:
            raise SpecError(
                s.source,
                "scheduler.gpu_memory_utilization",
                s.scheduler.gpu_memory_utilization,
                "leaves no KV memory",
            )
        return Planned(cfg, s, "ok")
    except SpecError as e:
        return Planned(cfg, None, f"infeasible: {e}")


def plan(spec) -> tuple[list[Planned], int]:
    """Expand ``spec`` and validate every configuration; returns (plans, dropped by constraints)."""
    configs, dropped = expand(spec)
    return [plan_config(spec, cfg) for cfg in configs], dropped


def family(s: Scenario) -> str:
    """Layout family used for colours: TP degree (and PP when > 1)."""
    return f"TP{s.parallel.tp}" + (f"PP{s.parallel.pp}" if s.parallel.pp > 1 else "")


def layout_label(s: Scenario) -> str:
    """Short human label of a configuration's layout."""
    sc = s.scheduler
    return (
        f"{s.cluster.replicas}x{family(s)} mbt={sc.max_num_batched_tokens} "
        f"seqs={sc.max_num_seqs} rate={s.workload.arrival.rate:g}"
    )


def _spec_hash(spec) -> str:
    blob = json.dumps(
        {"sweep": spec.raw, "base": scenario_to_dict(spec.base)}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def metrics_row(p: Planned, res: Any, wl: Any, max_batch: int) -> dict[str, Any]:
    """One results row: the configuration's identity, its run metrics and status."""
    s = p.scenario
    table = request_table(res, wl.arrival_s, wl.prompt, wl.output)
    m = run_metrics(table, res, s.cluster.replicas, s.gpus_per_replica, s.slo.ttft_s, s.slo.tpot_s)
    for k in ("replica_busy_frac", "replica_kv_occupancy", "replica_iterations"):
        v = m.pop(k)
        m[k.replace("replica_", "mean_")] = float(np.mean(v))
    m["tok_s_per_user"] = 1.0 / m["tpot_mean"] if m["tpot_mean"] > 0 else float("nan")
    m["goodput_rps_per_gpu"] = m.get("goodput_rps", float("nan")) / m["gpus"]
    bad = violations(res, wl.arrival_s, wl.output)
    status = "invalid: " + "; ".join(bad) if bad else "ok"
    return {**identity(p), **m, "max_batch": max_batch, "status": status}


def identity(p: Planned) -> dict[str, Any]:
    """Columns that name a configuration: id, axis values, layout, GPUs."""
    row = {"config_id": p.config.config_id, **p.config.values}
    s = p.scenario
    if s is not None:
        row.update(
            gpus=s.num_gpus,
            family=family(s),
            layout=layout_label(s),
            replicas=s.cluster.replicas,
            tp=s.parallel.tp,
            pp=s.parallel.pp,
            rate=s.workload.arrival.rate,
        )
    return row


def simulate_configs(
    cfg_params: list,
    caps: list[int],
    chunk_size: int,
    n: int,
    r_slots: int,
    sharding,
    cost: CostModel = ROOFLINE,
) -> tuple[list[Any], list[int]]:
    """Simulate configurations in one padded batch, doubling the batch slots for those
    that bind them (up to each one's max_num_seqs). Returns results (numpy) and slots used.
    All configurations share the static cost model ``cost``.
    """
    cap = max(caps)
    todo = list(range(len(cfg_params)))
    results: list[Any] = [None] * len(cfg_params)
    slots = [0] * len(cfg_params)
    b = min(INITIAL_SLOTS, cap)
    while todo:
        shape = SimShape(num_requests=n, max_replicas=r_slots, max_batch=b, queue_capacity=n)
        batch = [cfg_params[i] for i in todo]
        batch += [batch[0]] * (chunk_size - len(batch))
        params = stack(batch)
        if sharding is not None:
            params = jax.device_put(params, sharding)
        res = jax.device_get(simulate_batch(shape, params, cost))
        again = []
        for j, i in enumerate(todo):
            one = jax.tree.map(lambda x, j=j: x[j], res)
            if bool(one.slots_full) and b < caps[i]:
                again.append(i)
            else:
                results[i], slots[i] = one, b
        todo, b = again, min(cap, 2 * b)
    return results, slots


def run_chunk(
    spec, members: list[Planned], size: int, n: int, r_slots: int, sharding
) -> tuple[list[dict], int]:
    """Metrics rows of one chunk (a max-QPS search when the spec asks for one)."""
    if spec.maxqps is not None:
        from frontier_jax.sweep.maxqps import max_qps_rows

        return max_qps_rows(spec.maxqps, members, size, n, r_slots, sharding)
    params = [
        sim_params(p.scenario, make_workload(p.scenario.workload, p.scenario.seed)) for p in members
    ]
    caps = [p.scenario.scheduler.max_num_seqs for p in members]
    cost = cost_model(members[0].scenario)  # a chunk shares one cost model (see run_sweep)
    results, slots = simulate_configs(params, caps, size, n, r_slots, sharding, cost)
    rows = [
        metrics_row(p, res, sp.workload, b)
        for p, res, sp, b in zip(members, results, params, slots, strict=True)
    ]
    return rows, len(members) * n


def run_sweep(
    spec,
    out_dir: str | Path,
    resume: bool = False,
    devices: int | None = None,
    progress: bool = True,
    chunk_size: int | None = None,
) -> pd.DataFrame:
    """Run every configuration of ``spec``; returns (and writes) the results table.

    ``out_dir/results.parquet`` gets one row per configuration (axes, layout, metrics,
    status); chunks are written as they finish under ``out_dir/chunks``.
    """
    out = Path(out_dir)
    chunks_dir = out / "chunks"
    manifest = out / "manifest.json"
    h = _spec_hash(spec)
    devs = jax.local_devices()[: (devices or len(jax.local_devices()))]
    cs = chunk_size or spec.chunk_size
    old = json.loads(manifest.read_text()) if manifest.exists() else {}
    if resume and old:
        if old.get("spec_hash") != h:
            raise SpecError(
                spec.source,
                "<resume>",
                str(out),
                "results there come from a different spec; use another --out",
            )
        # Chunk files are named by position: resuming must cut the same chunks.
        if chunk_size is not None and chunk_size != old.get("chunk_size", chunk_size):
            raise SpecError(
                spec.source,
                "<resume>",
                chunk_size,
                f"--chunk-size must match the interrupted run's ({old['chunk_size']}) to resume",
            )
        cs = old.get("chunk_size", cs)
    if not resume and chunks_dir.exists():
        for f in chunks_dir.glob("*.parquet"):
            f.unlink()
    chunks_dir.mkdir(parents=True, exist_ok=True)
    plans, dropped = plan(spec)
    manifest.write_text(
        json.dumps(
            {
                "spec_hash": h,
                "configs": len(plans),
                "chunk_size": cs,
                "dropped_by_constraints": dropped,
            },
            indent=2,
        )
    )
    cs = max(len(devs), int(math.ceil(cs / len(devs)) * len(devs)))
    sharding = None
    if len(devs) > 1:
        mesh = jax.sharding.Mesh(np.array(devs), ("config",))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("config"))

    # One group per request count and cost model (both static): replica slots are the
    # group's largest replica count (a few masked slots cost O(R) per step, far less than
    # another compilation).
    groups: dict[tuple, list[Planned]] = defaultdict(list)
    for p in plans:
        if p.status == "ok":
            c = p.scenario.cost
            hw = p.scenario.hardware.name if c.kind != "roofline" else ""
            key = (p.scenario.workload.num_requests, c.kind, c.predictor or "", hw)
            groups[key].append(p)
    skipped = [dict(identity(p), status=p.status) for p in plans if p.status != "ok"]
    jobs = []
    for gi, key in enumerate(sorted(groups)):
        members, n = groups[key], key[0]
        r_slots = max(p.scenario.cluster.replicas for p in members)
        # Balanced chunks: as few as chunk_size allows, equal sizes, so padding is minimal.
        n_chunks = math.ceil(len(members) / cs)
        size = math.ceil(len(members) / n_chunks / len(devs)) * len(devs)
        for k in range(n_chunks):
            part = members[k * size : (k + 1) * size]
            if part:
                jobs.append((f"g{gi:02d}-c{k:04d}", (n, r_slots, size), part))
    bar = _progress(sum(len(j[2]) for j in jobs), spec.name, progress)
    t0, simulated = time.perf_counter(), 0
    for name, (n, r_slots, size), members in jobs:
        path = chunks_dir / f"{name}.parquet"
        if resume and path.exists():
            bar.update(len(members))
            continue
        rows, reqs = run_chunk(spec, members, size, n, r_slots, sharding)
        tmp = path.with_suffix(".tmp")
        pd.DataFrame(rows).to_parquet(tmp, index=False)
        tmp.replace(path)
        simulated += reqs
        bar.update(len(members))
        bar.set_postfix_str(f"{simulated / (time.perf_counter() - t0):,.0f} sim req/s")
    bar.close()
    frames = [pd.read_parquet(f) for f in sorted(chunks_dir.glob("*.parquet"))]
    if skipped:
        frames.append(pd.DataFrame(skipped))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(df):
        df = df.sort_values("config_id").reset_index(drop=True)
    df.to_parquet(out / "results.parquet", index=False)
    return df


def _progress(total: int, name: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"sweep {name}", unit="cfg", disable=not enabled)


__all__ = ["family", "layout_label", "plan", "run_sweep"]
