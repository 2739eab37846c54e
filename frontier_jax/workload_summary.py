"""What a run would simulate: `frontier-jax workload SCENARIO.toml [--plot PNG]`.

The summary is computed from the very arrays the simulators get (:func:`make_workload` with
the scenario's seed): request count, duration, mean and peak arrival rate, and the prompt and
output length percentiles. The plot shows the arrival rate over time and both length
histograms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from frontier_jax.workload import Workload

PERCENTILES = (50, 90, 99)
_WINDOWS = 100  # a run is cut into at least this many windows to find its peak rate


def peak_window_s(duration_s: float) -> float:
    """The window the peak rate is measured over: 10 s, or for a run shorter than 1,000 s the
    longest of 1, 2 or 5 x 10^k s that cuts it into at least 100 windows (1 ms at least)."""
    if duration_s >= 10.0 * _WINDOWS:
        return 10.0
    target = max(duration_s / _WINDOWS, 1e-3)
    exp = np.floor(np.log10(target))
    return float(max(m * 10.0**exp for m in (1, 2, 5) if m * 10.0**exp <= target * (1 + 1e-9)))


def arrival_rate(w: Workload) -> tuple[np.ndarray, np.ndarray, float]:
    """(window starts (s), requests/s in each window, the window (s)) over the run."""
    end = float(w.arrival_s[-1]) if len(w) else 0.0
    window = peak_window_s(end)
    edges = np.arange(0.0, end + window, window)
    if len(edges) < 2:
        edges = np.array([0.0, window])
    counts, _ = np.histogram(w.arrival_s, bins=edges)
    return edges[:-1], counts / window, window


def workload_summary(w: Workload) -> dict[str, Any]:
    """The run's requests, duration (first to last arrival), mean and peak rate, and the
    prompt / output token mean, percentiles and max."""
    n = len(w)
    end = float(w.arrival_s[-1])
    _, rates, window = arrival_rate(w)
    out: dict[str, Any] = {
        "requests": n,
        "first_arrival_s": float(w.arrival_s[0]),
        "duration_s": end,
        "rate_mean": n / end if end > 0 else float("inf"),
        "rate_peak": float(rates.max()),
        "rate_peak_window_s": window,
    }
    for name, tokens in (("prompt", w.prompt_tokens), ("output", w.output_tokens)):
        out[f"{name}_mean"] = float(tokens.mean())
        for p in PERCENTILES:
            out[f"{name}_p{p}"] = float(np.percentile(tokens, p))
        out[f"{name}_max"] = int(tokens.max())
    out["tokens_total"] = int(w.prompt_tokens.sum(dtype=np.int64) + w.output_tokens.sum(dtype=np.int64))
    return out


def plot_workload(w: Workload, path: str | Path, title: str = "") -> Path:
    """Writes a PNG of the arrival rate over time and the prompt / output length histograms."""
    from matplotlib.figure import Figure

    starts, rates, window = arrival_rate(w)
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    ax_rate, ax_prompt, ax_output = fig.subplots(1, 3)
    ax_rate.step(starts, rates, where="post", color="tab:blue")
    ax_rate.axhline(len(w) / max(float(w.arrival_s[-1]), 1e-12), color="tab:gray", ls="--",
                    lw=1, label="mean")
    ax_rate.set(xlabel="time (s)", ylabel=f"requests/s ({window:g} s windows)",
                title="arrival rate")
    ax_rate.legend(loc="upper right", frameon=False)
    for ax, tokens, name, color in ((ax_prompt, w.prompt_tokens, "prompt", "tab:orange"),
                                    (ax_output, w.output_tokens, "output", "tab:green")):
        lo, hi = max(int(tokens.min()), 1), max(int(tokens.max()), 2)
        log = hi / lo > 50
        bins = np.geomspace(lo, hi, 40) if log else np.linspace(lo, hi, 40)
        ax.hist(tokens, bins=bins, color=color)
        if log:
            ax.set_xscale("log")
        p50 = float(np.median(tokens))
        ax.axvline(p50, color="k", lw=1, ls=":", label=f"p50 {p50:g}")
        ax.set(xlabel=f"{name} tokens", ylabel="requests", title=f"{name} lengths")
        ax.legend(loc="upper right", frameon=False)
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
