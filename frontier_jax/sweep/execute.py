"""Run a sweep: group by static shape, chunk, vmap (sharded over devices), Parquet per chunk.

Configurations are grouped by the static shape and cost model they compile to
(:func:`frontier_jax.sweep.plan.group_plans`: requests N and the cost tier; instance slots
R are the group's largest layout); each group is cut into fixed-size chunks
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
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from frontier_jax.params import sim_params
from frontier_jax.sim.sized import simulate_sized
from frontier_jax.spec import SpecError, scenario_to_dict
from frontier_jax.sweep.maxqps import chunk_shape, max_qps_rows
from frontier_jax.sweep.plan import (  # noqa: F401  (family, layout_label: this module's API)
    Group,
    Planned,
    family,
    group_plans,
    identity,
    layout_label,
    metrics_row,
    plan,
)
from frontier_jax.workload import make_workload


def _spec_hash(spec) -> str:
    blob = json.dumps(
        {"sweep": spec.raw, "base": scenario_to_dict(spec.base)}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_chunk(spec, group: Group, members: list[Planned], size: int,
              sharding) -> tuple[list[dict], int]:
    """Metrics rows of one chunk of ``group`` (a max-QPS search when the spec asks for one)."""
    if spec.maxqps is not None:
        return max_qps_rows(spec.maxqps, group, members, size, sharding)
    n = group.num_requests
    params = group.pad([sim_params(p.scenario, make_workload(p.scenario.workload, p.scenario.seed),
                                   group.cost) for p in members])
    results, slots = simulate_sized(chunk_shape(group, params), params,
                                    group.cost, chunk_size=size, sharding=sharding)
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

    # One group per request count and cost model (both static: group_plans).
    skipped = [dict(identity(p), status=p.status) for p in plans if p.status != "ok"]
    jobs = []
    for gi, group in enumerate(group_plans(plans)):
        members = group.members
        # Balanced chunks: as few as chunk_size allows, equal sizes, so padding is minimal.
        n_chunks = math.ceil(len(members) / cs)
        size = math.ceil(len(members) / n_chunks / len(devs)) * len(devs)
        for k in range(n_chunks):
            part = members[k * size : (k + 1) * size]
            if part:
                jobs.append((f"g{gi:02d}-c{k:04d}", group, size, part))
    bar = _progress(sum(len(j[3]) for j in jobs), spec.name, progress)
    t0, simulated = time.perf_counter(), 0
    for name, group, size, members in jobs:
        path = chunks_dir / f"{name}.parquet"
        if resume and path.exists():
            bar.update(len(members))
            continue
        rows, reqs = run_chunk(spec, group, members, size, sharding)
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
