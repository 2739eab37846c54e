"""Invariant checks catch broken runs; an exhausted event budget is an explicit error."""

import jax
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import make_params
from test_cli import SMALL

from frontier_jax.cli import main
from frontier_jax.invariants import InvariantError, check, violations
from frontier_jax.reference import simulate_reference
from frontier_jax.sim import sim_shape, simulate


@pytest.fixture(scope="module")
def run():
    p = make_params(n=80, kv_blocks=40, rate=60.0)
    res = jax.device_get(simulate(sim_shape(p), p))
    return p, res


def test_sound_runs_pass(run):
    p, res = run
    assert violations(res, p.workload.arrival_s, p.workload.output) == []
    ref = simulate_reference(p, 1)
    assert violations(ref, p.workload.arrival_s, p.workload.output) == []


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (
            lambda r: r._replace(finish_s=np.where(np.arange(80) == 3, np.inf, r.finish_s)),
            "neither finished nor rejected",
        ),
        (lambda r: r._replace(generated=r.generated + (np.arange(80) == 5)), "generated tokens"),
        (lambda r: r._replace(first_token_s=r.first_token_s + 100.0), "out of order"),
        (lambda r: r._replace(backwards=np.bool_(True)), "backwards"),
        (lambda r: r._replace(kv_out_of_range=np.bool_(True)), "KV blocks"),
        (lambda r: r._replace(busy_s=r.busy_s * 1e6), "busy time"),
    ],
)
def test_corrupted_results_are_caught(run, corrupt, message):
    p, res = run
    bad = corrupt(res)
    with pytest.raises(InvariantError, match=message):
        check(bad, p.workload.arrival_s, p.workload.output)


def test_exhausted_event_budget_is_an_error(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SMALL + "\n[sim]\nmax_steps = 50\n")
    r = CliRunner().invoke(main, ["simulate", str(path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "event budget" in r.output and "\n" not in r.output.strip()
