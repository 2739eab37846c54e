"""``frontier-jax profile``: time one decoder layer's operators with torch (lazy import)."""

from __future__ import annotations

import shlex
import sys

INSTALL_HINT = "pip install -e '.[profile]'"


def register_cli(group) -> None:
    """Add the ``profile`` command to the click group ``group``."""
    import click

    @group.command("profile")
    @click.option("--model", "model", required=True,
                  help="model preset name or path to a Hugging Face config.json")
    @click.option("--tp", default=1, show_default=True, type=int, help="tensor-parallel degree (shapes per device)")
    @click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N")
    @click.option("--out", "out", type=click.Path(file_okay=False),
                  help="output folder [profiling/<device>/<model>/]")
    @click.option("--quick", is_flag=True, help="tiny plan (seconds), for smoke tests")
    @click.option("--repeats", default=15, show_default=True, type=int,
                  help="timed repetitions per configuration (over all rounds)")
    @click.option("--warmup", default=2, show_default=True, type=int, help="untimed calls per configuration")
    @click.option("--max-time", "max_time_s", default=0.5, show_default=True, type=float,
                  help="time budget of one configuration over all rounds, s (>= 3 repetitions)")
    @click.option("--seed", default=0, show_default=True, type=int, help="draws the random part of the plan")
    @click.option("--dtype", default="auto", show_default=True, type=click.Choice(["auto", "bf16", "fp32"]),
                  help="auto: bf16 on CUDA; on CPU bf16 where it is fast (AMX), else fp32")
    @click.option("--threads", type=int, default=None,
                  help="torch CPU threads [torch default]; 1 on a CPU shared with other jobs")
    @click.option("--rounds", default=3, show_default=True, type=int,
                  help="passes over the plan (in new random orders); the repeats are split over them")
    @click.option("--quiet", is_flag=True, help="no progress bar")
    def profile(model, tp, device, out, quick, repeats, warmup, max_time_s, seed, dtype, threads, rounds,
                quiet):
        """Time the operators of one decoder layer of MODEL (GEMMs, norms, rope, activation,
        heterogeneous prefill/decode attention, MoE grouped GEMM) at the TP-sharded shapes on
        this machine; write native CSVs (linear.csv, attention.csv, moe.csv) and profile.json."""
        try:
            import torch  # noqa: F401
        except ImportError:
            click.echo(f"error: frontier-jax profile needs torch: {INSTALL_HINT}", err=True)
            sys.exit(2)
        from pathlib import Path

        from frontier_jax.spec.model import get_model

        from .runner import run_profile

        spec = get_model(model)
        if out is None:
            dev = "cpu" if device == "cpu" else "cuda"
            out = str(Path("profiling") / dev / spec.name)
        command = "frontier-jax " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        frames = run_profile(spec, tp, device, out, quick=quick, repeats=repeats, warmup=warmup,
                             seed=seed, max_time_s=max_time_s, dtype=dtype, threads=threads, rounds=rounds,
                             progress=not quiet,
                             command=command)
        wall = next(iter(frames.values())).attrs.get("wall_s", float("nan")) if frames else float("nan")
        counts = ", ".join(f"{len(df)} {fam}" for fam, df in frames.items())
        click.echo(f"{spec.name} tp{tp} on {device}: {counts} rows in {wall:.1f} s -> {out}")
