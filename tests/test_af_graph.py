"""The AF iteration graph (frontier_jax/cost/af.py): its makespan against pipeline schedules
written out by hand, and the compiled max-plus evaluation against the task-by-task walk."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from frontier_jax.cost.af import MAX_MICRO_BATCHES, graph_makespan, makespan


def _same(L, m, A, S, F, R):
    """One group of L identical layers with the same durations for each of m micro-batches."""
    return [(L, *(np.full(m, float(v)) for v in (A, S, F, R)))]


def _both(groups, jit: bool = False):
    """The walk's makespan, asserting that the max-plus evaluation (numpy, or compiled with
    jax: ``jit``) agrees."""
    walk = graph_makespan(groups)
    npx = float(makespan([(c, *(np.asarray(v) for v in d)) for c, *d in groups], np))
    assert npx == pytest.approx(walk, rel=1e-12, abs=1e-12)
    if jit:
        jx = float(jax.jit(lambda g: makespan(g, jnp))([(c, *(jnp.asarray(v) for v in d)) for c, *d in groups]))
        assert jx == pytest.approx(walk, rel=1e-12, abs=1e-12)
    return walk


def test_two_micro_batches_two_layers_by_hand():
    """A = F = 1, S = R = 0.25, m = 2, L = 2, every task written out (start -> end):

    layer 0: attn mb0 0 -> 1, mb1 1 -> 2; send mb0 1 -> 1.25, mb1 2 -> 2.25;
             ffn mb0 1.25 -> 2.25, mb1 2.25 -> 3.25; return mb0 2.25 -> 2.5, mb1 3.25 -> 3.5
    layer 1: attn mb0 2.5 -> 3.5 (waits for its return), mb1 3.5 -> 4.5;
             send mb0 3.5 -> 3.75, mb1 4.5 -> 4.75; ffn mb0 3.75 -> 4.75, mb1 4.75 -> 5.75;
             return mb0 4.75 -> 5, mb1 5.75 -> 6
    """
    assert _both(_same(2, 2, 1.0, 0.25, 1.0, 0.25), jit=True) == 6.0


@pytest.mark.parametrize("L", [1, 2, 7, 48])
def test_one_micro_batch_is_the_sum(L):
    """m = 1: nothing overlaps; each layer is attention + send + FFN + return."""
    assert _both(_same(L, 1, 0.7, 0.2, 1.3, 0.2)) == pytest.approx(L * 2.4)


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("L", [1, 3, 61])
def test_ffn_bound(m, L):
    """A = 0.5, S = R = 0.1, F = 2: from the first arrival (0.6) the FFN side never idles
    (a micro-batch's next layer is back at the FFN 0.7 after it left, while the other m - 1
    take >= 2 each), so the makespan is 0.6 + L m F + the last return 0.1."""
    assert _both(_same(L, m, 0.5, 0.1, 2.0, 0.1)) == pytest.approx(0.6 + L * m * 2.0 + 0.1)


@pytest.mark.parametrize("m", [3, 4])
@pytest.mark.parametrize("L", [1, 2, 40])
def test_link_bound(m, L):
    """A = F = 0.2, S = R = 1: a micro-batch is around the loop in 2.4 but the A->F link
    carries m >= 3 sends per layer, so it never idles after the first attention task (0.2):
    the makespan is 0.2 + L m S + the last FFN task 0.2 + its return 1."""
    assert _both(_same(L, m, 0.2, 1.0, 0.2, 1.0)) == pytest.approx(0.2 + L * m * 1.0 + 0.2 + 1.0)


def test_attention_bound_hides_everything_else():
    """A = 2, S = F = R = 0.1, m = 4: the attention side never idles (a micro-batch returns
    0.3 after it left, the other three take 6): makespan = L m A + the last tail 0.3."""
    assert _both(_same(10, 4, 2.0, 0.1, 0.1, 0.1)) == pytest.approx(10 * 4 * 2.0 + 0.3)


def test_two_micro_batches_hide_half_the_links_three_hide_all():
    """A batch of attention 2, FFN 2 and 0.5 per link direction per layer, split into m equal
    micro-batches: m = 1 pays 5 per layer; without links 4. m = 2 pays 2.5 per layer in steady
    state: the A/F overlap saves 2 and half the links (0.5 of 1.0) are hidden; m = 3 pays 2:
    the links are hidden entirely (the sides are the bottleneck)."""
    L = 120
    per_layer = {m: _both(_same(L, m, 2 / m, 0.5 / m, 2 / m, 0.5 / m)) / L for m in (1, 2, 3)}
    no_links = {m: _both(_same(L, m, 2 / m, 0.0, 2 / m, 0.0)) / L for m in (1, 2, 3)}
    assert per_layer[1] == pytest.approx(5.0)
    assert per_layer[2] == pytest.approx(2.5, rel=1e-2)
    assert no_links[2] == pytest.approx(2.0, rel=1e-2)
    hidden = 1.0 - (per_layer[2] - no_links[2]) / 1.0  # share of the 1.0 of links per layer
    assert hidden == pytest.approx(0.5, abs=0.01)
    assert per_layer[3] == pytest.approx(no_links[3], rel=1e-2)


@pytest.mark.parametrize("seed", range(6))
def test_maxplus_power_equals_the_task_walk(seed):
    """Random durations per micro-batch, 1..3 groups of 0..127 layers, m = 1..4: the
    repeated-squaring evaluation equals the walk, and padding to MAX_MICRO_BATCHES with
    empty micro-batches changes nothing."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, MAX_MICRO_BATCHES + 1))
    groups = [(int(rng.integers(0, 128)), *rng.exponential(1.0, (4, m)))
              for _ in range(int(rng.integers(1, 4)))]
    want = _both(groups, jit=seed < 2)
    pad = [(c, *(np.concatenate([v, np.zeros(MAX_MICRO_BATCHES - m)]) for v in d)) for c, *d in groups]
    assert _both(pad) == pytest.approx(want, rel=1e-12)


def test_windows_vectorise():
    """Leading axes (a decode window's iterations) price each entry as on its own."""
    rng = np.random.default_rng(9)
    d = rng.exponential(1.0, (5, 4, 3))  # [K, 4 resources, m]
    got = makespan([(11, d[:, 0], d[:, 1], d[:, 2], d[:, 3])], np)
    want = [graph_makespan([(11, *d[k])]) for k in range(5)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
