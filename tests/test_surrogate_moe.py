"""The surrogate tier's MoE experts: one EP rank's GroupedGEMM priced by a trained
``moe_grouped_gemm`` network inside the step.

A set trained by the real pipeline on synthetic GroupedGEMM profiles (one GPU's expert token
counts -> a tile-padded roofline "measurement", tests/synthetic_predictors.py) prices the
moe_qwen3_ep8 scenario. The tests hold (1) the table to the kernel it learned, (2) the
table to a function of the params alone (chunks, extensions, what else is stacked), (3) the
step's use of it to the roofline's expert pricing with the rank price swapped, and (4) the
two simulators to each other.
"""

import dataclasses

import numpy as np
import pytest
from conftest import SCENARIOS
from helpers import agree
from synthetic_predictors import make_moe_predictor_set, moe_truth

from frontier_jax.cost.batch import BatchSlots
from frontier_jax.cost.context import IterationContext
from frontier_jax.cost.roofline import _expert_rank_seconds
from frontier_jax.cost.surrogate import MOE_EXACT_ROWS, SurrogateCost, surrogate_cost
from frontier_jax.params import sim_shape
from frontier_jax.runner import prepare, run_reference
from frontier_jax.sim import simulate_batch, stack
from frontier_jax.spec import load_scenario, with_overrides
from frontier_jax.spec.scenario import CostSpec


@pytest.fixture(scope="module")
def moe_set(tmp_path_factory):
    return make_moe_predictor_set(tmp_path_factory.mktemp("moe_pset"))


def _scenario(moe_set, **extra):
    s = load_scenario(SCENARIOS / "moe_qwen3_ep8.toml")
    return with_overrides(s, {"cost.kind": "surrogate", "cost.predictor": str(moe_set),
                              "workload.num_requests": 200, **extra})


def _tier(prep) -> SurrogateCost:
    return prep.cost.iteration_time.__self__


def _first_pool(cost):
    """Pool 0 of a prepared configuration's [K]-stacked cost params."""
    import jax

    return jax.tree.map(lambda x: np.asarray(x)[0], cost)


def test_table_prices_the_kernel_the_network_learned(moe_set):
    """The table at x rows is the mean over multinomial spreads of x rows on the rank's 17
    slots (EP 8 + EPLB spares) of the learned kernel: within 8% of the synthetic truth's own
    mean over such spreads, from a handful of rows to every row of a 4,096-token batch."""
    prep = prepare(_scenario(moe_set))
    p = _first_pool(prep.params.cost)
    table = p.tables.moe
    assert table.shape == (4096 * 8 + 1,) and table[0] == 0.0
    rng = np.random.default_rng(7)
    for x in (1, 40, 64, 300, 1500, 2048, 5000, 12000, 30000):
        truth = np.mean([moe_truth(rng.multinomial(x, np.full(17, 1 / 17)), 8, 8) for _ in range(32)])
        assert table[x] == pytest.approx(truth, rel=0.08), x
    # and it is not the roofline's rank price (which the tier would use without the network)
    roof = _expert_rank_seconds(np.array([300.0, 5000.0]), p, np)
    assert np.all(np.abs(table[[300, 5000]] / roof - 1.0) > 0.05)


def test_table_is_a_function_of_the_params_alone(moe_set):
    """Built in one go, in chunks, or by extending a shorter budget's table: the same entries
    (each count's spreads come from their own stream, the grid above MOE_EXACT_ROWS is fixed)."""
    p = _first_pool(prepare(_scenario(moe_set)).params.cost)
    tier = surrogate_cost(str(moe_set), "h100").iteration_time.__self__
    fresh = SurrogateCost("fresh", tier.w, tier.dev, 16)
    q = p._replace(tables=None)
    short = fresh.prepare(q, 512, 128).tables.moe
    longer = fresh.prepare(q, 4096, 128).tables.moe  # extends the cached 512-token table
    whole = fresh.expert_rank_time(np.arange(4096 * 8 + 1.0), q)
    np.testing.assert_array_equal(longer, whole)
    np.testing.assert_array_equal(short, whole[:512 * 8 + 1])
    x = np.array([3.0, MOE_EXACT_ROWS - 1.0])  # exact counts: the mean of their own spreads
    np.testing.assert_array_equal(fresh._expert_mean(x, q), whole[x.astype(int)])


def test_step_prices_ranks_from_the_table(moe_set):
    """The step's MoE term is the roofline's with each rank's price read from the table:
    swapping in a table of the roofline's rank prices gives exactly the untabled (roofline
    experts) price, and the network's table gives another."""
    prep = prepare(_scenario(moe_set))
    tier = _tier(prep)
    p = _first_pool(prep.params.cost)
    B = 32
    rng = np.random.default_rng(3)
    m = np.arange(B) < 24
    dec = m & (np.arange(B) >= 3)
    b = BatchSlots(np.where(dec, 1, rng.integers(64, 900, B)).astype(np.int32),
                   rng.integers(0, 3000, B).astype(np.int32), dec, m, m)
    ctx = IterationContext(3, 1, 17)
    rows = np.arange(p.tables.moe.shape[-1], dtype=float)
    as_roofline = p._replace(tables=p.tables._replace(moe=_expert_rank_seconds(rows, p, np)))
    untabled = tier.iteration_time(b, p._replace(tables=None), np, ctx)
    # the untabled step computes the linear family directly: equal to the tables within float32
    assert tier.iteration_time(b, as_roofline, np, ctx) == pytest.approx(untabled, rel=1e-6)
    net = tier.iteration_time(b, p, np, ctx)
    assert abs(net / untabled - 1.0) > 1e-3


def test_simulators_agree_under_the_network(moe_set):
    c = agree(_scenario(moe_set), 200)
    assert c["max_rel_err_finish"] <= 1e-9
    # and the network changes the answer against the roofline's experts
    s = _scenario(moe_set)
    tpot = run_reference(prepare(s)).metrics["tpot_mean"]
    roof = run_reference(prepare(dataclasses.replace(s, cost=CostSpec()))).metrics["tpot_mean"]
    assert abs(tpot / roof - 1.0) > 0.01


def test_stacked_budgets_and_slots_price_like_their_own_runs(moe_set):
    """Configurations of different token budgets and expert slots per rank (tables of
    different lengths, padded) in one vmapped call: each equals its own reference run."""
    scen = [_scenario(moe_set, **{"scheduler.max_num_batched_tokens": 2048}),
            _scenario(moe_set, **{"moe.redundant_experts": 0, "moe.placement": "contiguous"})]
    preps = [prepare(s) for s in scen]
    params = stack([p.params for p in preps])
    res = simulate_batch(sim_shape(params), params, preps[0].cost)
    for i, p in enumerate(preps):
        ref = run_reference(p).result
        np.testing.assert_allclose(np.asarray(res.finish_s[i]), ref.finish_s, rtol=1e-6)
