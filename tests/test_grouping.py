"""Configurations are grouped by what their compiled simulator depends on, so a chunk never
prices one configuration with another's cost model (the optimiser once did: it grouped by
request count only and priced every chunk with its first member's predictor set)."""

import shutil

import numpy as np
import pytest
from conftest import REPO, SCENARIOS

from frontier_jax.sweep import sweep_from_dict
from frontier_jax.sweep.plan import group_plans, plan
from frontier_jax.sweep.search import goodput_per_gpu, with_budget_and_slo

SHIPPED_SET = REPO / "predictors" / "cpu-llama-512"


@pytest.fixture(scope="module")
def slow_set(tmp_path_factory):
    """The shipped CPU set with every network 3x slower (its log-time offset moved)."""
    d = tmp_path_factory.mktemp("sets") / "cpu-llama-512-slow"
    shutil.copytree(SHIPPED_SET, d)
    for f in d.glob("*.npz"):
        with np.load(f) as z:
            w = {k: z[k] for k in z.files}
        w["y_mean"] = (w["y_mean"] + np.log(3.0)).astype(w["y_mean"].dtype)
        np.savez(f, **w)
    return d


def _spec(slow_set):
    base = slow_set.parent / "cpu_tiny_llama_slo.toml"
    base.write_text((SCENARIOS / "cpu_tiny_llama.toml").read_text()
                    + "\n[slo]\nttft_s = 2.0\ntpot_s = 0.05\n")
    return sweep_from_dict({
        "base": str(base),
        "axes": {"cost.predictor": [str(SHIPPED_SET), str(slow_set)],
                 "scheduler.max_num_seqs": [16, 32]},
        "derived": {"workload.num_requests": "40"},
        "maxqps": {"target": 0.9, "low": 0.5, "high": 64.0, "rounds": 5},
    })


def test_groups_split_by_cost_model(slow_set):
    spec = _spec(slow_set)
    plans, _ = plan(spec)
    groups = group_plans(plans)
    assert len(groups) == 2
    for g in groups:
        assert len({p.scenario.cost.predictor for p in g.members}) == 1
        assert g.cost.iteration_time.__self__.w is not None
    assert groups[0].cost != groups[1].cost


def test_the_optimiser_prices_each_layout_with_its_own_predictor_set(slow_set):
    spec = with_budget_and_slo(_spec(slow_set), None, None, None)
    layouts = [{"cost.predictor": p, "scheduler.max_num_seqs": 16}
               for p in (str(SHIPPED_SET), str(slow_set))]
    together = goodput_per_gpu(spec, layouts, chunk_size=2)["objective"].to_numpy()
    alone = np.array([goodput_per_gpu(spec, [lay], chunk_size=1)["objective"].iloc[0]
                      for lay in layouts])
    assert np.all(alone > 0)
    assert alone[1] < 0.8 * alone[0], "3x slower networks must sustain a lower rate"
    np.testing.assert_allclose(together, alone, rtol=1e-12)
