"""Fuzz the input loaders with hypothesis: every generated input must load or fail with one clear
line (SpecError naming the file, field, value and what is allowed), never crash or hang.

Kinds (strategies from tests/test_fuzz_inputs.py): valid and mutated scenario TOML files,
broken TOML text, valid and mutated sweep specs (hostile derived / constraint expressions
included; sweeps with few configurations are also expanded and planned), valid and broken
config.json, valid and broken trace CSVs, hardware presets with overrides. A few valid
scenarios are also simulated (reference simulator, <= 20 requests): every request must finish
or be rejected.

Predictor inputs (strategies from tests/test_profile_fuzz.py and tests/test_artifact.py): valid
and mutated native / Vidur / Frontier profile CSVs and garbage files (arbitrary bytes or text,
broken parquet) through `load_file` - a valid profile must load to exactly its rows, in
seconds - and random corruptions of a tiny trained predictor set (card edits, deleted keys,
truncated or byte-flipped files, flipped shapes, non-finite weights) through
`load_predictor_set`. A clear error there is a one-line DataError naming the file and what is
allowed; a reader's safety-net error (`internal`) counts as unclear.

    python benchmarks/fuzz.py --json [--examples 11000] [--sims 40] [--seed 0] [--kinds a,b]

Per kind it reports: inputs tried, loaded OK, clear errors (SpecError), unclear errors (a
SpecError that is not one line naming a file), crashes (any other exception; the first few
are printed with their input), hangs (inputs over 2 s, or stopped at 10 s), valid inputs
rejected, and the slowest input in seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import test_artifact as ta  # noqa: E402
import test_fuzz_inputs as fz  # noqa: E402
import test_profile_fuzz as pf  # noqa: E402

from frontier_jax.spec import SpecError  # noqa: E402

HANG_S = 2.0
SHOWN = 3  # problem inputs printed per kind and status

KINDS: dict[str, tuple[str, Any]] = {
    "scenario_valid": ("scenario", fz.valid_scenario()),
    "scenario_mutated": ("scenario", fz.mutated_scenario()),
    "scenario_raw_toml": ("scenario", fz.raw_toml()),
    "sweep_valid": ("sweep", fz.valid_sweep()),
    "sweep_mutated": ("sweep", fz.mutated_sweep()),
    "config_valid": ("config", fz.config_cases(valid=True)),
    "config_broken": ("config", fz.config_cases(valid=False)),
    "trace_valid": ("trace", fz.trace_cases(valid=True)),
    "trace_broken": ("trace", fz.trace_cases(valid=False)),
    "hardware": ("hardware", fz.hardware_cases()),
    **{name: ("profile", strategy) for name, strategy in pf.PROFILE_KINDS.items()},
    "predictor_card": ("artifact", ta.artifact_cases("card")),
    "predictor_files": ("artifact", ta.artifact_cases("files")),
}

_BASE_SET: list[Path] = []


def base_predictor_set() -> Path:
    """The tiny valid predictor set the artifact kinds corrupt (trained once, ~5 s)."""
    if not _BASE_SET:
        _BASE_SET.append(ta.build_tiny_set(Path(tempfile.mkdtemp(prefix="fuzz-pset-")) / "set"))
    return _BASE_SET[0]


def load_any(loader: str, case: Any, folder: Path) -> fz.Outcome:
    """The Outcome of one input of any kind."""
    if loader == "profile":
        return pf.load_profile_case(case, folder)
    if loader == "artifact":
        return ta.load_artifact_case(case, base_predictor_set(), folder)
    return fz.load_case(loader, case, folder)


def _shown(case: Any) -> tuple[Any, Any]:
    if isinstance(case, pf.ProfileCase):
        return case.content, case.name
    return case.main, case.files


def _short(x: Any, n: int = 600) -> str:
    text = repr(x)
    return text if len(text) <= n else text[: n - 100] + " ... " + text[-95:]


def run_kind(name: str, n: int, seed: int, sims: int) -> dict[str, Any]:
    """Returns the counts of one kind over `n` generated inputs (and, for valid scenarios, the
    results of simulating up to `sims` of them)."""
    loader, strategy = KINDS[name]
    row: dict[str, Any] = dict(tried=0, ok=0, clear_errors=0, unclear_errors=0, crashes=0,
                               hangs=0, valid_rejected=0, max_s=0.0, examples=[])
    sim = dict(run=0, all_done=0, infeasible=0, failed=0, examples=[])

    def note(status: str, case: fz.Case, message: str) -> None:
        if sum(e["status"] == status for e in row["examples"]) < SHOWN:
            main, files = _shown(case)
            row["examples"].append({"status": status, "message": message[-800:],
                                    "input": _short(main), "files": _short(files, 300)})

    @hypothesis_seed(seed)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def body(case: fz.Case) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            out = load_any(loader, case, Path(tmp))
            row["tried"] += 1
            row["max_s"] = max(row["max_s"], out.seconds)
            key = {"ok": "ok", "error": "clear_errors", "unclear": "unclear_errors",
                   "crash": "crashes", "hang": "hangs"}[out.status]
            row[key] += 1
            if out.status in ("unclear", "crash", "hang"):
                note(out.status, case, out.message)
            elif out.seconds > HANG_S:
                row["hangs"] += 1
                note("slow", case, f"{out.seconds:.2f} s")
            if case.valid and out.status != "ok":
                row["valid_rejected"] += 1
                note("valid_rejected", case, out.message)
            if loader == "scenario" and case.valid and out.status == "ok" and sim["run"] < sims:
                run_sim(out.result, case, sim)

    body()
    if name == "scenario_valid":
        row["simulated"] = sim
    return row


def run_sim(scenario: Any, case: fz.Case, sim: dict[str, Any]) -> None:
    """Simulates one loaded valid scenario and counts the result in `sim`."""
    sim["run"] += 1
    try:
        problem = fz.simulate_tiny(scenario)
    except SpecError as e:
        if fz.is_clear(e):
            sim["infeasible"] += 1
            return
        problem = f"unclear SpecError: {e}"
    except Exception as e:  # noqa: BLE001
        problem = f"{type(e).__name__}: {e}"
    if problem is None:
        sim["all_done"] += 1
    else:
        sim["failed"] += 1
        if len(sim["examples"]) < SHOWN:
            sim["examples"].append({"problem": problem[-800:], "input": _short(case.main)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=11_000, help="inputs in all, split over kinds")
    ap.add_argument("--sims", type=int, default=40, help="valid scenarios to simulate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds to run")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    a = ap.parse_args()
    kinds = [k for k in a.kinds.split(",") if k]
    per_kind = -(-a.examples // len(kinds))
    t0 = time.perf_counter()
    report: dict[str, Any] = {"seed": a.seed, "examples_per_kind": per_kind, "kinds": {}}
    for name in kinds:
        t = time.perf_counter()
        report["kinds"][name] = run_kind(name, per_kind, a.seed, a.sims)
        report["kinds"][name]["wall_s"] = round(time.perf_counter() - t, 2)
        print(f"{name}: {report['kinds'][name]['tried']} inputs in "
              f"{report['kinds'][name]['wall_s']} s", file=sys.stderr)
    cols = ("tried", "ok", "clear_errors", "unclear_errors", "crashes", "hangs", "valid_rejected")
    rows = report["kinds"].values()
    report["total"] = {c: sum(r[c] for r in rows) for c in cols}
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    table = [f"{'kind':<20}" + "".join(f"{c:>16}" for c in (*cols, "max_s"))]
    for name, r in report["kinds"].items():
        table.append(f"{name:<20}" + "".join(f"{r[c]:>16}" for c in cols) + f"{r['max_s']:>16.3f}")
    table.append(f"{'total':<20}" + "".join(f"{report['total'][c]:>16}" for c in cols))
    report["table"] = table
    if a.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print("\n".join(table))
        for name, r in report["kinds"].items():
            for e in r["examples"]:
                print(f"\n[{name}] {e['status']}: {e['message']}\n  input: {e['input']}")
            if "simulated" in r:
                print(f"\nsimulated valid scenarios: {json.dumps(r['simulated'], default=str)}")
    bad = report["total"]
    sims_failed = report["kinds"].get("scenario_valid", {}).get("simulated", {}).get("failed", 0)
    sys.exit(1 if bad["crashes"] or bad["hangs"] or bad["unclear_errors"]
             or bad["valid_rejected"] or sims_failed else 0)


if __name__ == "__main__":
    main()
