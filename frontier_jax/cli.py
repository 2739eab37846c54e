"""Command line: ``frontier-jax simulate | compare-reference | workload | sweep | optimize | ...``."""

import json
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

from frontier_jax.invariants import InvariantError
from frontier_jax.spec import SpecError, load_scenario


class _Group(click.Group):
    """Turns input errors into one line and a non-zero exit, unless --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (SpecError, FileNotFoundError, ValueError, InvariantError) as err:
            if ctx.params.get("debug"):
                raise
            click.echo(f"error: {err}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
def main(debug: bool) -> None:
    """frontier-jax: simulate LLM serving layouts, thousands at once."""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def summary_table(m: dict[str, Any]) -> str:
    """The run metrics as aligned 'name  value' lines."""
    width = max(len(k) for k in m)
    return "\n".join(f"{k:<{width}}  {_fmt(v)}" for k, v in m.items())


def _jsonable(m: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in m.items()}


@main.command()
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False))
@click.option("--reference", is_flag=True, help="Use the exact reference simulator.")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder [results/<name>].")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--trace", is_flag=True, help="Also write trace.json (Chrome/Perfetto).")
def simulate(scenario: str, reference: bool, out: str | None, as_json: bool, trace: bool) -> None:
    """Simulate SCENARIO.toml; write metrics.json and requests.parquet."""
    import pandas as pd

    from frontier_jax.runner import prepare, run_reference, run_vectorized

    s = load_scenario(scenario)
    prep = prepare(s)
    run = (run_reference if reference else run_vectorized)(prep)
    run.metrics["simulator"] = "reference" if reference else "vectorized"
    out_dir = Path(out or Path("results") / s.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(_jsonable(run.metrics), indent=2))
    pd.DataFrame(run.table).to_parquet(out_dir / "requests.parquet", index=False)
    if trace:
        from frontier_jax.trace import iteration_trace, write_trace

        write_trace(
            out_dir / "trace.json",
            iteration_trace(prep.params, prep.shape.max_instances, prep.cost),
        )
    if as_json:
        click.echo(json.dumps(_jsonable(run.metrics), indent=2))
    else:
        click.echo(f"{s.name}: {s.model.name} on {_layout_text(s)}, "
                   f"{len(run.table['arrival_s'])} requests")
        click.echo(summary_table(run.metrics))
        click.echo(
            f"wrote {out_dir}/metrics.json, {out_dir}/requests.parquet"
            + (f", {out_dir}/trace.json" if trace else "")
        )


def _dp(pool) -> str:
    return f"DP{pool.dp} " if pool.dp > 1 else ""


def _layout_text(s) -> str:
    """``H100-SXM, 2 x (TP1 PP1)``; with several pools one ``count x (TPt PPp) on HW`` each."""
    used = [p for p in s.pools if p.count]
    if len(used) == 1 and used[0].hardware == s.hardware:
        p = used[0]
        return f"{s.hardware.name}, {p.count} x ({_dp(p)}TP{p.tp} PP{p.pp})"
    role = lambda p: "" if p.role == "colocated" else f"{p.role} "  # noqa: E731
    return " + ".join(f"{p.count} x {role(p)}({_dp(p)}TP{p.tp} PP{p.pp}) on {p.hardware.name}"
                      for p in used)


@main.command("compare-reference")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compare_reference(scenario: str, as_json: bool) -> None:
    """Run SCENARIO.toml with both simulators and report request-by-request agreement."""
    from frontier_jax.runner import compare, prepare, run_reference, run_vectorized

    prep = prepare(load_scenario(scenario))
    vec, ref = run_vectorized(prep), run_reference(prep)
    report = compare(vec.result, ref.result)
    report.update(
        scenario=prep.scenario.name, vectorized_wall_s=vec.wall_s, reference_wall_s=ref.wall_s
    )
    click.echo(json.dumps(report, indent=2) if as_json else summary_table(report))


@main.command()
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False))
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Also write a PNG of the arrival rate and the length histograms.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def workload(scenario: str, plot_path: str | None, as_json: bool) -> None:
    """Summarise the requests SCENARIO.toml would simulate (nothing is simulated)."""
    from frontier_jax.workload import make_workload
    from frontier_jax.workload_summary import plot_workload, workload_summary

    s = load_scenario(scenario)
    w = make_workload(s.workload, s.seed)
    summary = workload_summary(w)
    if as_json:
        click.echo(json.dumps(_jsonable(summary), indent=2))
    else:
        wl = s.workload
        src = (f"trace {wl.trace}" if wl.replays_trace
               else f"{wl.arrival.process} arrivals" + (f", lengths from {wl.trace}" if wl.trace else ""))
        click.echo(f"{s.name}: {summary['requests']} requests ({src}, seed {s.seed})")
        click.echo(summary_table(summary))
    if plot_path:
        path = plot_workload(w, plot_path, title=f"{s.name}: {summary['requests']} requests")
        click.echo(f"wrote {path}", err=as_json)


@main.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Output folder [results/<name>].")
@click.option("--resume", is_flag=True, help="Skip chunks already written in --out.")
@click.option("--devices", type=int, help="Local devices to shard configurations over [all].")
@click.option("--chunk-size", type=int, help="Configurations per compiled call [spec's].")
@click.option("--no-plot", is_flag=True, help="Do not draw the frontier plot.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep(
    spec: str,
    out: str | None,
    resume: bool,
    devices: int | None,
    chunk_size: int | None,
    no_plot: bool,
    quiet: bool,
) -> None:
    """Run the sweep SPEC.toml: results.parquet, per-chunk files, frontier plot."""
    from frontier_jax.sweep import load_sweep, run_sweep

    sp = load_sweep(spec)
    out_dir = Path(out or Path("results") / sp.name)
    df = run_sweep(
        sp, out_dir, resume=resume, devices=devices, progress=not quiet, chunk_size=chunk_size
    )
    ok = df[df["status"] == "ok"]
    click.echo(f"{sp.name}: {len(df)} configurations ({len(ok)} ok) -> {out_dir}/results.parquet")
    for status, count in df.loc[df["status"] != "ok", "status"].value_counts().items():
        click.echo(f"  {count} x {status}")
    if not no_plot and len(ok):
        from frontier_jax.plot import pareto_table, plot_frontier

        paths = plot_frontier(
            df, out_dir, title=f"{sp.name}: {sp.base.model.name} on {sp.base.hardware.name}"
        )
        click.echo(pareto_table(df))
        click.echo("wrote " + ", ".join(str(p) for p in paths.values()))
    if len(ok):
        from frontier_jax.launch import best_front_row, sweep_scenario, vllm_launch

        config_id, why = best_front_row(df)
        row = df.loc[df["config_id"] == config_id].iloc[0]
        plan = vllm_launch(sweep_scenario(sp, config_id))
        _write_launch(out_dir, [{"config_id": config_id, "layout": str(row["layout"]),
                                 "chosen_as": why, **plan.to_json()}])
        click.echo(f"\nbest layout ({why}): {row['layout']}\n{plan.text()}")
        click.echo(f"wrote {out_dir}/launch.json")


@main.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("--gpus", type=int, help="GPU budget: layouts use at most this many GPUs.")
@click.option("--slo-ttft", type=float, help="TTFT SLO in seconds.")
@click.option("--slo-tpot", type=float, help="TPOT SLO in seconds.")
@click.option("--budget", type=int, help="Distinct layouts to evaluate [25% of the space].")
@click.option("--popsize", type=int, default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Output folder [results/<name>-opt].")
@click.option("--top", "n_top", type=int, default=5, show_default=True)
def optimize(
    spec: str,
    gpus: int | None,
    slo_ttft: float | None,
    slo_tpot: float | None,
    budget: int | None,
    popsize: int,
    seed: int,
    out: str | None,
    n_top: int,
) -> None:
    """Search SPEC.toml's layouts (CMA-ES) for the best goodput per GPU under the SLOs."""
    from frontier_jax.sweep import load_sweep
    from frontier_jax.sweep.search import optimize_layouts, search_space, with_budget_and_slo

    sp = with_budget_and_slo(load_sweep(spec), gpus, slo_ttft, slo_tpot)
    size = search_space(sp).size()
    result, table = optimize_layouts(sp, budget=budget, popsize=popsize, seed=seed, progress=True)
    out_dir = Path(out or Path("results") / f"{sp.name}-opt")
    out_dir.mkdir(parents=True, exist_ok=True)
    result.save(out_dir / "history.csv")
    table.to_parquet(out_dir / "evaluated.parquet", index=False)
    click.echo(
        f"{sp.name}: evaluated {result.n_evaluations} of {size} layouts "
        f"(SLO ttft={sp.base.slo.ttft_s} s, tpot={sp.base.slo.tpot_s} s, "
        f"target {sp.maxqps.target:.0%})"
    )
    top = result.top(n_top)
    click.echo(top.to_string(index=False))
    click.echo(f"best: {result.best_layout} -> {result.best_value:.4g} req/s per GPU")
    from frontier_jax.launch import layout_scenario, vllm_launch

    plans = [{"layout": lay, "goodput_per_gpu": float(value),
              **vllm_launch(layout_scenario(sp, lay)).to_json()}
             for lay, value in zip(result.top_layouts(n_top), top["value"], strict=True)]
    if plans:
        click.echo("\n" + vllm_launch(layout_scenario(sp, result.best_layout)).text())
    _write_launch(out_dir, plans)
    click.echo(f"wrote {out_dir}/history.csv, {out_dir}/evaluated.parquet, {out_dir}/launch.json")


def _write_launch(out_dir: Path, plans: list[dict]) -> None:
    """launch.json: the vLLM launch settings of the best layouts, best first."""
    (out_dir / "launch.json").write_text(
        json.dumps(plans, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _register_optional() -> None:
    from frontier_jax.plot import register_cli as register_plot

    register_plot(main)
    __import__("frontier_jax.profile.cli", fromlist=["register_cli"]).register_cli(main)  # profile
    try:
        from frontier_jax.predict.train import register_cli
    except ImportError:
        return
    register_cli(main)


_register_optional()

if __name__ == "__main__":
    main()
