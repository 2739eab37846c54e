"""Stamp a predictor set trained on this project's own profiles with where its data came from.

``train_predictors`` records the data path and looks for third-party licenses; for profiles
written by ``frontier-jax profile`` this adds the profiler's ``profile.json`` (device, date,
command, torch version, wall time) to ``card.json["data"]`` and writes a ``README.md`` next
to the card. No torch needed::

    python -m frontier_jax.profile.provenance PREDICTOR_DIR PROFILE_DIR \
        --train-command "frontier-jax predictors train ..." [--eval-json eval.json --eval-command "..."]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SOURCE = "frontier-jax operator profiler (this project: frontier_jax/profile, `frontier-jax profile`)"
LICENSE = "MIT (the project's license; measured by this project, no third-party data)"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * float(x):.1f}"


def eval_table(res: dict) -> str:
    """Markdown table of an ``eval_predictors`` result: rows, median relative error and share
    within 5/10/20% for forest, surrogate and proxy."""
    head = ("| operator | rows | forest med / 5 / 10 / 20 % | surrogate med / 5 / 10 / 20 % "
            "| proxy med / 5 / 10 / 20 % |\n|---|---:|---|---|---|")
    lines = [head]
    for op, r in res.get("ops", {}).items():
        cells = []
        for k in ("forest", "surrogate", "proxy"):
            a = r.get(k) or {}
            cells.append(" / ".join(_pct(a.get(f)) for f in ("median_rel_err", "within_5", "within_10", "within_20")))
        lines.append(f"| {op} | {r['rows']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stamp(pred_dir: str | Path, profile_dir: str | Path, *, train_command: str | None = None,
          eval_result: dict | None = None, eval_command: str | None = None,
          notes: str | None = None) -> dict:
    """Add the profile manifest to ``pred_dir/card.json`` and write ``pred_dir/README.md``.

    Returns the updated card.
    """
    pred_dir, profile_dir = Path(pred_dir), Path(profile_dir)
    card = json.loads((pred_dir / "card.json").read_text())
    man_path = profile_dir / "profile.json"
    man = json.loads(man_path.read_text()) if man_path.exists() else {}
    card["data"]["source"] = SOURCE
    card["data"]["license"] = [{"source": SOURCE, "license": LICENSE}]
    card["data"]["profile"] = {k: man.get(k) for k in (
        "profiler_version", "command", "started", "finished", "wall_s", "device", "device_name",
        "torch_version", "torch_threads", "dtype", "model", "tp", "shapes_per_device", "seed",
        "repeats", "rounds", "warmup", "max_time_s", "timing", "rows")}
    att = profile_dir / "attention.csv"
    if "attention_block_size" not in card and att.exists():  # cards written before train.py recorded it
        import pandas as pd

        bs = pd.read_csv(att, usecols=["block_size"])["block_size"]
        if len(bs):
            card["attention_block_size"] = int(bs.mode().iloc[0])
    if train_command:
        card["data"]["train_command"] = train_command
    if eval_command:
        card["data"]["eval_command"] = eval_command
    (pred_dir / "card.json").write_text(json.dumps(card, indent=1))

    lines = [
        f"# Predictor set `{pred_dir.name}`",
        "",
        f"Operator runtime predictors (random forest, Vidur-style proxy baseline, MLP surrogate) for "
        f"`{man.get('model', '?')}` (TP {man.get('tp', '?')}) on `{man.get('device', '?')}` "
        f"({man.get('device_name', '?')}).",
        "",
        "## Data source",
        "",
        f"- Measured by this project's own profiler ({SOURCE}); license: {LICENSE}.",
        f"- Profiles: `{profile_dir}` (native CSVs + `profile.json`), profiled "
        f"{man.get('started', '?')} .. {man.get('finished', '?')} (UTC), {man.get('wall_s', '?')} s wall.",
        f"- Profile command: `{man.get('command', '?')}`",
        f"- torch {man.get('torch_version', '?')}, {man.get('torch_threads', '?')} thread(s), dtype "
        f"{man.get('dtype', '?')}; timing: {man.get('timing', '?')}.",
        f"- Rows: {man.get('rows', {})}.",
    ]
    if train_command:
        lines += [f"- Train command: `{train_command}` (card.json created {card.get('created', '?')}, "
                  f"{card.get('train_seconds', '?')} s)."]
    lines += ["", "`card.json` holds the features, split, settings and per-operator test accuracy; "
              "`<op>.npz` the surrogate weights; `forests/` (git-ignored) the forests and proxies."]
    if eval_result is not None:
        lines += ["", "## Accuracy on an independent profiling run", ""]
        if eval_command:
            lines += [f"`{eval_command}` (split `{eval_result.get('split')}`: rows whose configuration "
                      "was not trained on). Median relative error and share of rows within 5/10/20%, in %:", ""]
        lines += [eval_table(eval_result)]
    if notes:
        lines += ["", notes]
    (pred_dir / "README.md").write_text("\n".join(lines) + "\n")
    return card


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pred_dir")
    ap.add_argument("profile_dir")
    ap.add_argument("--train-command")
    ap.add_argument("--eval-json", help="output of `frontier-jax predictors eval --json`")
    ap.add_argument("--eval-command")
    ap.add_argument("--notes-file", help="markdown appended to the README")
    a = ap.parse_args(argv)
    ev = json.loads(Path(a.eval_json).read_text()) if a.eval_json else None
    notes = Path(a.notes_file).read_text() if a.notes_file else None
    stamp(a.pred_dir, a.profile_dir, train_command=a.train_command, eval_result=ev,
          eval_command=a.eval_command, notes=notes)


if __name__ == "__main__":
    main()
