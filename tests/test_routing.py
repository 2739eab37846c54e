"""MoE routing maps: the in-step load sampler against a per-row Monte Carlo, placement, keys."""

import jax.numpy as jnp
import numpy as np
import pytest

from frontier_jax.cost.context import IterationContext
from frontier_jax.cost.routing import popularity, rank_loads, rank_shares

DRAWS = 4000


def _keys(n: int, xp, seed: int = 7):
    return IterationContext(seed, 0, 0).key(xp, xp.arange(n))


def _ratio_stats(loads: np.ndarray, rows: float, ep: int) -> tuple[float, float]:
    """mean and p95 over draws of max-rank-load / mean-rank-load."""
    r = loads[..., :ep].max(axis=-1) / (rows / ep)
    return float(np.mean(r)), float(np.quantile(r, 0.95))


# (tokens, experts, top_k, ep, routing, skew): decode-sized to prefill-sized batches, small to
# wide EP, uniform and skewed popularity
SETTINGS = [
    (64, 128, 8, 8, "uniform", 0.0),
    (16, 128, 8, 8, "uniform", 0.0),
    (256, 128, 8, 8, "zipf", 1.0),
    (32, 256, 8, 32, "uniform", 0.0),
    (128, 256, 8, 32, "zipf", 0.8),
    (2048, 256, 8, 64, "zipf", 1.2),
    (512, 8, 2, 4, "dirichlet", 1.0),
    (8, 64, 6, 4, "uniform", 0.0),
]


@pytest.mark.parametrize("tokens,experts,top_k,ep,routing,skew", SETTINGS)
def test_sampler_matches_per_row_monte_carlo(tokens, experts, top_k, ep, routing, skew):
    """The max/mean rank-load ratio of the in-step sampler: mean and p95 within 2% of drawing
    every routed row's rank from the same shares (the issue's acceptance figure)."""
    rows = tokens * top_k
    shares = rank_shares(popularity(routing, experts, 1, skew=skew, seed=3), ep, 64)
    got = np.asarray(rank_loads(shares, rows, _keys(DRAWS, np), np))[:, 0]
    rng = np.random.default_rng(11)
    mc = rng.multinomial(rows, shares[0, :ep], size=DRAWS)
    g_mean, g_p95 = _ratio_stats(got, rows, ep)
    m_mean, m_p95 = _ratio_stats(mc, rows, ep)
    assert g_mean == pytest.approx(m_mean, rel=0.02)
    assert g_p95 == pytest.approx(m_p95, rel=0.02)
    assert np.all(got >= 0) and np.all(got[:, ep:] == 0)
    assert np.all(got == np.round(got))
    # the total is kept up to the rounding and skew terms (a few rows, not a fraction of them)
    assert np.abs(got.sum(-1) - rows).mean() < 0.5 + 0.1 * ep


def test_numpy_and_jax_draw_the_same_map():
    shares = rank_shares(popularity("zipf", 128, 4, skew=1.0, seed=1), 8, 16)
    a = rank_loads(shares, 512.0, _keys(64, np), np)
    b = rank_loads(jnp.asarray(shares), jnp.float64(512.0), _keys(64, jnp), jnp)
    np.testing.assert_array_equal(a, np.asarray(b))


def test_loads_have_no_token_sized_axis():
    """A window of iterations with different row counts: one [K, L, S] array, whatever the rows."""
    shares = rank_shares(popularity("uniform", 64, 3), 4, 8)
    out = rank_loads(shares, np.array([1.0, 10.0, 1e6]), _keys(3, np), np)
    assert out.shape == (3, 3, 8)
    assert np.all(out[0].sum(-1) <= 4) and out[2, 0, :4].sum() == pytest.approx(1e6, rel=1e-3)


def test_forced_imbalance_and_zero_rows():
    pop = np.zeros((1, 16))
    pop[0, :4] = 0.9 / 4  # 90% of the rows on rank 0's four experts (contiguous, EP 4)
    pop[0, 4:] = 0.1 / 12
    shares = rank_shares(pop, 4, 4)
    np.testing.assert_allclose(shares[0], [0.9, 0.1 / 3, 0.1 / 3, 0.1 / 3])
    loads = rank_loads(shares, 0.0, _keys(5, np), np)
    assert np.all(loads == 0)


def test_placements_and_eplb_replication():
    pop = popularity("zipf", 16, 1, skew=1.5, seed=0)
    shares = {p: rank_shares(pop, 4, 4, p) for p in ("contiguous", "round_robin", "eplb")}
    for s in shares.values():
        assert s.sum() == pytest.approx(1.0)
    # EPLB packs heaviest first onto the least-loaded rank: never worse than contiguous or round robin
    assert shares["eplb"].max() <= min(shares["contiguous"].max(), shares["round_robin"].max()) + 1e-12
    # spare slots for the hottest experts bring the hottest rank down further
    more = rank_shares(pop, 4, 4, "eplb", redundant=8)
    assert more.sum() == pytest.approx(1.0) and more.max() < shares["eplb"].max()
    with pytest.raises(ValueError, match="divide"):
        rank_shares(pop, 3, 4)
    with pytest.raises(ValueError, match="multiple of EP"):
        rank_shares(pop, 4, 4, "eplb", redundant=3)


def test_popularity_kinds():
    z = popularity("zipf", 32, 5, skew=1.0, seed=2)
    assert z.shape == (5, 32) and np.allclose(z.sum(1), 1.0)
    assert not np.array_equal(z[0], z[1])  # a fresh random order per layer
    np.testing.assert_array_equal(z, popularity("zipf", 32, 5, skew=1.0, seed=2))
    d = popularity("dirichlet", 8, 2, skew=0.5, seed=2)
    assert np.allclose(d.sum(1), 1.0)
    t = popularity("trace", 4, 1, trace=np.array([[1, 1, 2, 0]]))
    np.testing.assert_allclose(t, [[0.25, 0.25, 0.5, 0.0]])
    with pytest.raises(ValueError, match="unknown routing"):
        popularity("hot", 4, 1)


def test_popularity_drift_correlates_successive_iterations():
    """[moe] drift: each rank share moves by a log-normal factor whose anchors are re-drawn
    every drift_iterations; successive iterations are strongly correlated, iterations two
    periods apart are not; the shares still sum to 1, and numpy and jax draw the same ones."""
    import jax.numpy as jnp
    from conftest import SCENARIOS

    from frontier_jax.cost.context import IterationContext
    from frontier_jax.cost.params import cost_params_from_scenario
    from frontier_jax.cost.routing import layer_shares, routing_key
    from frontier_jax.spec import load_scenario, with_overrides

    s = with_overrides(load_scenario(SCENARIOS / "moe_qwen3_ep4.toml"),
                       {"moe.drift": 0.5, "moe.drift_iterations": 20})
    moe = cost_params_from_scenario(s).moe
    lag1, far = [], []
    for inst in range(16):
        k = routing_key(IterationContext(np.uint32(3), np.int32(inst), np.int32(0)), moe, np,
                      np.arange(2000))
        sh = layer_shares(moe, k, np)  # [2000, G, S]
        np.testing.assert_allclose(sh.sum(-1), 1.0)
        x = np.log(sh / moe.shares).reshape(2000, -1)
        x = (x - x.mean(0)) / x.std(0)
        lag1.append(np.mean(x[1:] * x[:-1]))
        far.append(np.mean(x[40:] * x[:-40]))
    assert np.mean(lag1) > 0.9 and abs(np.mean(far)) < 0.1
    kj = routing_key(IterationContext(jnp.uint32(3), jnp.int32(5), jnp.int32(7)), moe, jnp, jnp.arange(16))
    kn = routing_key(IterationContext(np.uint32(3), np.int32(5), np.int32(7)), moe, np, np.arange(16))
    np.testing.assert_allclose(np.asarray(layer_shares(moe, kj, jnp)), layer_shares(moe, kn, np), rtol=1e-12)
    assert cost_params_from_scenario(with_overrides(s, {"moe.drift": 0.0})).moe.drift is None


def test_placement_matrix_gives_the_rank_shares():
    """The [E, ep] placement matrix routes a popularity to the same rank shares as
    rank_shares, for every placement; EPLB replicas split an expert's rows."""
    from frontier_jax.cost.routing import placement_matrix

    rng = np.random.default_rng(4)
    pop = rng.dirichlet(np.full(32, 0.3), size=3)
    for placement, red in (("contiguous", 0), ("round_robin", 0), ("eplb", 0), ("eplb", 8)):
        want = rank_shares(pop, 8, 8, placement, red)
        for layer in range(3):
            m = placement_matrix(pop[layer], 8, placement, red)
            np.testing.assert_allclose(m.sum(axis=1), 1.0)
            np.testing.assert_allclose(pop[layer] @ m, want[layer], rtol=1e-12)
