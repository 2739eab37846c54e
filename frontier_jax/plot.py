"""Frontier plots of sweep results: throughput per GPU against latency, Pareto fronts marked.

A sweep's results table has one row per simulated configuration (see ``REQUIRED_COLUMNS``;
times in seconds). :func:`plot_frontier` draws three panels, all with output tokens/s per GPU
on y (higher is better):

(a) against TPOT p90 (lower is better),
(b) against TTFT p90 (lower is better),
(c) against tokens/s per user = 1 / mean TPOT (higher is better; aiconfigurator's view),

and writes ``frontier.png``, ``frontier.svg`` and ``frontier.csv`` (the ok rows with one
boolean front flag per panel). :func:`pareto_table` prints panel (a)'s front for a terminal,
:func:`register_cli` adds ``plot RESULTS.parquet`` to a click group.

Matplotlib is used through ``Figure`` objects and the Agg/SVG canvases only (no pyplot), so
nothing here touches the global backend or opens windows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from frontier_jax.pareto import pareto_mask

Y_COLUMN = "output_tok_s_per_gpu"
Y_LABEL = "Output tokens/s per GPU (higher is better)"

REQUIRED_COLUMNS = (
    "status",
    "family",
    "layout",
    "gpus",
    Y_COLUMN,
    "tpot_p90",
    "ttft_p90",
    "tok_s_per_user",
)
"""Columns :func:`plot_frontier` and :func:`pareto_table` need; ``slo_attainment`` is optional."""


@dataclass(frozen=True)
class Panel:
    """One panel: its x column, which direction is better, how to label it, its CSV flag."""

    key: str
    x: str
    maximize_x: bool
    title: str
    label: str  # axis label without unit
    time_axis: bool  # x in seconds: shown in ms or s, whichever reads better
    flag: str  # boolean column in frontier.csv


PANELS: tuple[Panel, ...] = (
    Panel("tpot", "tpot_p90", False, "(a) vs TPOT p90", "TPOT p90", True, "front_tpot_p90"),
    Panel("ttft", "ttft_p90", False, "(b) vs TTFT p90", "TTFT p90", True, "front_ttft_p90"),
    Panel(
        "user",
        "tok_s_per_user",
        True,
        "(c) vs per-user speed",
        "Tokens/s per user = 1 / mean TPOT",
        False,
        "front_tok_s_per_user",
    ),
)


# --------------------------------------------------------------------------- helpers


def _numeric(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _ok_rows(df: pd.DataFrame, who: str) -> pd.DataFrame:
    """The rows with status "ok", checked for the required columns; raises a one-line ValueError."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{who}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{who}: results lack required columns: {', '.join(missing)}")
    ok = df.loc[df["status"].astype(str) == "ok"].copy()
    if ok.empty:
        statuses = sorted(df["status"].astype(str).unique())[:5]
        seen = f" (statuses seen: {', '.join(statuses)})" if statuses else ""
        raise ValueError(f"{who}: no rows with status 'ok' among {len(df)} rows{seen}")
    ok["family"] = ok["family"].astype(str)
    return ok


_KIND_ORDER = ("TP", "PD", "AF", "EP")  # co-located first, then disaggregated kinds


def _family_key(s: str) -> tuple:
    """Sort key: known kinds in ``_KIND_ORDER`` first, then natural order ("TP2" < "TP10")."""
    kind = next((i for i, k in enumerate(_KIND_ORDER) if s.upper().startswith(k)), len(_KIND_ORDER))
    parts = [
        (0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", s) if t
    ]
    return (kind, parts)


def family_colors(families) -> dict[str, tuple]:
    """Colour (RGBA) per family name, in a stable order: TP*, PD*, AF*, EP*, then others, each
    in natural order; tab10 (tab20 past 10 families)."""
    from matplotlib import colormaps

    names = sorted({str(f) for f in families}, key=_family_key)
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {f: cmap(i % cmap.N) for i, f in enumerate(names)}


def front_flags(ok: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per panel (``Panel.flag``): is the row on that panel's Pareto front."""
    y = _numeric(ok[Y_COLUMN])
    return pd.DataFrame(
        {p.flag: pareto_mask(_numeric(ok[p.x]), y, p.maximize_x, True) for p in PANELS},
        index=ok.index,
    )


def _time_scale(values: np.ndarray) -> tuple[float, str]:
    """(factor, unit) to show times given in seconds: ms when most values are under a second."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.size and np.quantile(v, 0.9) < 1.0:
        return 1e3, "ms"
    return 1.0, "s"


def _spans_decade(values: np.ndarray) -> bool:
    v = values[np.isfinite(values) & (values > 0)]
    return bool(v.size) and v.max() / v.min() > 10.0


# --------------------------------------------------------------------------- the figure


def _log_x(ax, values: np.ndarray) -> None:
    """Log x scale with plain-number tick labels (3, 10, 200), and 2/5 minor labels when the
    data spans under three decades."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    axis = ax.xaxis
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)
    if values.size and values.max() / values.min() < 1e3:
        axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
        axis.set_minor_formatter(fmt)
    else:
        axis.set_minor_formatter(NullFormatter())


def _draw_panel(ax, ok: pd.DataFrame, flags: pd.Series, panel: Panel, colors: dict, n_total: int):
    """Scatter every ok row by family, then the front (``flags``) as a black line with markers."""
    x = _numeric(ok[panel.x])
    y = _numeric(ok[Y_COLUMN])
    if panel.time_axis:
        factor, unit = _time_scale(x)
        x = x * factor
        xlabel = f"{panel.label} ({unit}, lower is better)"
    else:
        xlabel = f"{panel.label} (higher is better)"
    log_x = _spans_decade(x)
    finite = np.isfinite(x) & np.isfinite(y) & ((x > 0) if log_x else True)

    big = n_total > 2000
    fam = ok["family"].to_numpy()
    for f, c in colors.items():
        m = finite & (fam == f)
        if m.any():
            ax.scatter(
                x[m],
                y[m],
                s=8 if big else 16,
                color=c,
                alpha=0.25 if big else 0.4,
                linewidths=0,
                rasterized=big,
                zorder=2,
            )

    on = flags.to_numpy() & finite
    order = np.lexsort((y[on], x[on]))
    fx, fy, ff = x[on][order], y[on][order], fam[on][order]
    ax.plot(fx, fy, "-", color="black", lw=1.4, zorder=3)
    ax.scatter(
        fx, fy, s=42, c=[colors[f] for f in ff], edgecolors="black", linewidths=0.9, zorder=4
    )

    if log_x:
        _log_x(ax, x[finite & (x > 0)])
    if np.nanmin(np.where(finite, y, np.nan), initial=np.inf) >= 0:
        ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(Y_LABEL)
    ax.set_title(f"{panel.title} \u2014 {on.sum()} of {finite.sum()} on the front", fontsize=11)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)


def plot_frontier(df: pd.DataFrame, out_dir, title: str | None = None) -> dict[str, Path]:
    """Draw the three frontier panels for the ok rows of the sweep results ``df``.

    Writes ``frontier.png`` (150 dpi), ``frontier.svg`` and ``frontier.csv`` (all ok rows plus a
    boolean column per panel: ``front_tpot_p90``, ``front_ttft_p90``, ``front_tok_s_per_user``)
    into ``out_dir`` (created if needed). Returns ``{"png": path, "svg": path, "csv": path}``.
    Raises ValueError if required columns are missing or no row has status "ok".
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    ok = _ok_rows(df, "plot_frontier")
    flags = front_flags(ok)
    colors = family_colors(ok["family"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    fig = Figure(figsize=(17, 5.4), layout="constrained")
    axes = fig.subplots(1, len(PANELS))
    for ax, panel in zip(axes, PANELS, strict=True):
        _draw_panel(ax, ok, flags[panel.flag], panel, colors, len(ok))

    handles = [Line2D([], [], ls="", marker="o", ms=7, color=c, label=f) for f, c in colors.items()]
    handles.append(
        Line2D(
            [],
            [],
            color="black",
            lw=1.4,
            marker="o",
            ms=7,
            mfc="white",
            mec="black",
            label="Pareto front",
        )
    )
    fig.legend(
        handles=handles,
        loc="outside right upper",
        title="Layout family",
        fontsize=9,
        title_fontsize=10,
        frameon=False,
    )
    n_bad = len(df) - len(ok)
    sub = f"{len(ok)} ok configurations" + (f", {n_bad} not ok (not shown)" if n_bad else "")
    fig.suptitle(f"{title or 'Serving frontier'} \u2014 {sub}", fontsize=13)

    paths = {"png": out / "frontier.png", "svg": out / "frontier.svg", "csv": out / "frontier.csv"}
    fig.savefig(paths["png"], dpi=150)
    fig.savefig(paths["svg"])
    pd.concat([ok, flags], axis=1).to_csv(paths["csv"], index=False)
    return paths


# --------------------------------------------------------------------------- terminal table


def _fmt(v: float, spec: str) -> str:
    return "-" if not np.isfinite(v) else format(v, spec)


def pareto_table(df: pd.DataFrame, n: int = 15) -> str:
    """Panel (a)'s Pareto front (output tok/s/GPU vs TPOT p90) as an aligned plain-text table.

    Rows run along the front from lowest TPOT p90 up; at most ``n`` rows, picked evenly along
    the front (both ends kept) when it is longer; ``n <= 0`` shows all. TPOT in ms, TTFT in s, SLO attainment in %.
    Raises ValueError like :func:`plot_frontier`.
    """
    ok = _ok_rows(df, "pareto_table")
    panel = PANELS[0]
    front = ok.loc[front_flags(ok)[panel.flag]]
    front = front.assign(_x=_numeric(front[panel.x]), _y=_numeric(front[Y_COLUMN]))
    front = front.sort_values(["_x", "_y"], kind="stable")
    k = len(front)
    head = f"Pareto front, output tok/s/GPU vs TPOT p90: {k} of {len(ok)} ok configurations"
    if k == 0:
        return head + " (no finite points)"
    if n > 0 and k > n:
        front = front.iloc[np.unique(np.linspace(0, k - 1, n).round().astype(int))]
        head += f" (showing {len(front)}, evenly along the front)"

    slo = (
        _numeric(front["slo_attainment"])
        if "slo_attainment" in front
        else np.full(len(front), np.nan)
    )
    cols = ["layout", "gpus", "out tok/s/GPU", "TPOT p90 ms", "TTFT p90 s", "SLO att."]
    rows = []
    for (_, r), s in zip(front.iterrows(), slo, strict=True):
        layout = str(r["layout"])
        if len(layout) > 48:
            layout = layout[:47] + "\u2026"
        gpus = pd.to_numeric(r["gpus"], errors="coerce")
        rows.append(
            [
                layout,
                "-" if pd.isna(gpus) else str(int(gpus)),
                _fmt(r["_y"], ",.1f"),
                _fmt(r["_x"] * 1e3, ".2f"),
                _fmt(float(pd.to_numeric(r["ttft_p90"], errors="coerce")), ".3f"),
                _fmt(s * 100, ".1f") + ("%" if np.isfinite(s) else ""),
            ]
        )
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]

    def line(cells):
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    return "\n".join([head, line(cols), line(["-" * w for w in widths]), *map(line, rows)])


# --------------------------------------------------------------------------- CLI


def register_cli(group) -> None:
    """Add ``plot RESULTS.parquet [--out DIR] [--title T]`` to the click group ``group``."""
    import click

    @group.command("plot")
    @click.argument("results", type=click.Path(exists=True, dir_okay=False))
    @click.option(
        "--out", type=click.Path(file_okay=False), help="Output folder [the folder of RESULTS]."
    )
    @click.option("--title", default=None, help="Figure title [Serving frontier].")
    def plot_cmd(results: str, out: str | None, title: str | None) -> None:
        """Frontier plots of a sweep's RESULTS.parquet: frontier.png/.svg/.csv and the front."""
        df = pd.read_parquet(results)
        out_dir = Path(out) if out else Path(results).resolve().parent
        try:
            paths = plot_frontier(df, out_dir, title=title)
            table = pareto_table(df)
        except ValueError as err:
            raise click.ClickException(str(err)) from None
        click.echo(table)
        click.echo("")
        for p in paths.values():
            click.echo(f"wrote {p}")
