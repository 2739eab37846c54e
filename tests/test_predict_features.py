"""Feature builders on hand-made batches; numpy / jax.numpy agreement under jit and vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from frontier_jax.predict import features as F
from frontier_jax.predict.importers import moe_stats_from_counts

CTX = dict(n_q_heads=32, n_kv_heads=8, head_dim=128, peak_flops=989e12, mem_bw=3.35e12, num_sms=132)
A = {n: i for i, n in enumerate(F.ATTENTION_FEATURES)}
G = {n: i for i, n in enumerate(F.GEMM_FEATURES)}
M = {n: i for i, n in enumerate(F.MOE_FEATURES)}


def _batch():
    # two prefills (100 new tokens on an empty cache, 50 on 200 cached) and two decodes;
    # the last two slots are padding with garbage values
    q = np.array([100, 50, 1, 1, 777, 5])
    c = np.array([0, 200, 300, 500, 999, 3])
    mask = np.array([1, 1, 1, 1, 0, 0], bool)
    dec = np.array([0, 0, 1, 1, 0, 1], bool)
    return q, c, mask, dec


def test_attention_features_hand_made_batch():
    q, c, mask, dec = _batch()
    f = F.attention_features(q, c, mask, np, is_decode=dec, **CTX)
    assert f.shape == (len(F.ATTENTION_FEATURES),)
    assert f[A["p_num_seqs"]] == 2 and f[A["p_q_sum"]] == 150 and f[A["p_q_mean"]] == 75
    assert f[A["p_q_var"]] == pytest.approx(625.0) and f[A["p_q_cv"]] == pytest.approx(25 / 75)
    assert f[A["p_q_max"]] == 100 and f[A["p_q_min"]] == 50
    assert f[A["p_c_sum"]] == 200 and f[A["p_c_max"]] == 200 and f[A["p_c_min"]] == 0
    assert f[A["p_qc_sum"]] == 100 * 0 + 50 * 200 and f[A["p_q2_sum"]] == 100**2 + 50**2
    assert f[A["p_kv_sum"]] == 350 and f[A["p_kv_max"]] == 250
    # GQA group 4 packs 4 query heads per KV head: ceil(400/128) + ceil(200/128) tiles
    assert f[A["p_q_tiles"]] == 4 + 2 and f[A["p_ctas"]] == 6 * 8 and f[A["p_waves"]] == 1
    assert f[A["p_kv_pages"]] == np.ceil(100 / 16) + np.ceil(250 / 16)
    pairs = 100 * 101 / 2 + (50 * 200 + 50 * 51 / 2)
    assert f[A["p_flops"]] == pytest.approx(4 * 128 * 32 * pairs)
    assert f[A["d_num_seqs"]] == 2 and f[A["d_c_sum"]] == 800 and f[A["d_c_mean"]] == 400
    assert f[A["d_c_var"]] == pytest.approx(10000.0) and f[A["d_c_min"]] == 300
    assert f[A["d_flops"]] == pytest.approx(4 * 128 * 32 * 802)
    assert f[A["num_seqs"]] == 4 and f[A["num_tokens"]] == 152
    assert f[A["prefill_seq_share"]] == 0.5 and f[A["prefill_token_share"]] == pytest.approx(150 / 152)
    assert f[A["roofline_s"]] == pytest.approx(f[A["p_roofline_s"]] + f[A["d_roofline_s"]])
    assert f[A["p_roofline_s"]] > 0 and f[A["d_roofline_s"]] > 0
    assert f[A["n_q_heads"]] == 32 and f[A["peak_tflops"]] == pytest.approx(989)


def test_attention_multiplicity_equals_expanded_batch():
    q = np.array([64, 1])
    c = np.array([32, 100])
    counts = np.array([3, 5])
    dec = np.array([False, True])
    f1 = F.attention_features(q, c, counts, np, is_decode=dec, **CTX)
    f2 = F.attention_features(np.repeat(q, counts), np.repeat(c, counts), np.ones(8, bool), np,
                              is_decode=np.repeat(dec, counts), **CTX)
    np.testing.assert_allclose(f1, f2, rtol=1e-12)


def test_attention_empty_parts_and_default_decode_flag():
    f = F.attention_features(np.array([1, 1]), np.array([10, 20]), np.array([True, True]), np, **CTX)
    assert f[A["p_num_seqs"]] == 0 and f[A["p_roofline_s"]] == 0 and f[A["p_q_min"]] == 0
    assert f[A["d_num_seqs"]] == 2 and np.all(np.isfinite(f))
    f = F.attention_features(np.zeros(3), np.zeros(3), np.zeros(3, bool), np, **CTX)
    assert np.all(f[:A["n_q_heads"]] == 0)


def test_attention_numpy_jax_jit_vmap_agree():
    q, c, mask, dec = _batch()
    ref = F.attention_features(q, c, mask, np, is_decode=dec, **CTX)

    @jax.jit
    def feat(q, c, m, d):
        return F.attention_features(q, c, m, jnp, is_decode=d, **CTX)

    got = feat(jnp.asarray(q), jnp.asarray(c), jnp.asarray(mask), jnp.asarray(dec))
    np.testing.assert_allclose(np.asarray(got), ref, rtol=2e-5)
    # vmap over configurations; leading batch axis on host gives the same rows
    Q = np.stack([q, q * 2, q + 3])
    Cc = np.stack([c, c, c * 3])
    Mk = np.stack([mask, mask, np.array([1, 0, 1, 0, 0, 0], bool)])
    Dd = np.stack([dec, dec, dec])
    got = jax.jit(jax.vmap(feat))(Q, Cc, Mk, Dd)
    ref = F.attention_features(Q, Cc, Mk, np, is_decode=Dd, **CTX)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=2e-5)


@pytest.mark.parametrize("n", [1, 7, 8, 10, 14, 15, 52])
def test_stack_last_equals_stack(n):
    """The fusion-friendly stack (groups of 7, joined by pad+add for two groups, by a
    concatenation for more) is exactly ``stack`` on any leading shape, under jit and vmap."""
    rng = np.random.default_rng(n)
    cols = [rng.normal(size=(3, 2)) for _ in range(n)]
    want = np.stack(cols, axis=-1)
    np.testing.assert_array_equal(F.stack_last(cols, np), want)
    got = jax.jit(lambda *c: F.stack_last(list(c), jnp))(*cols)
    np.testing.assert_array_equal(np.asarray(got), want)
    got = jax.vmap(lambda *c: F.stack_last(list(c), jnp))(*cols)
    np.testing.assert_array_equal(np.asarray(got), want)


def test_attention_columns_are_the_stacked_features():
    q, c, mask, dec = _batch()
    cols = F.attention_columns(q, c, mask, np, is_decode=dec, **CTX)
    assert list(cols) == list(F.ATTENTION_FEATURES)
    x = F.attention_features(q, c, mask, np, is_decode=dec, **CTX)
    np.testing.assert_array_equal(x, np.stack([cols[k] for k in F.ATTENTION_FEATURES], axis=-1))


def test_gemm_features():
    f = F.gemm_features(1000, 4096, 4096, np, peak_flops=989e12, mem_bw=3.35e12, num_sms=132)
    assert f[G["flops"]] == 2 * 1000 * 4096 * 4096
    assert f[G["bytes"]] == 2 * (4096 * 4096 + 1000 * 4096 + 1000 * 4096)
    assert f[G["roofline_s"]] == pytest.approx(max(f[G["flops"]] / 989e12, f[G["bytes"]] / 3.35e12))
    assert f[G["m_tiles"]] == 8 and f[G["n_tiles"]] == 32 and f[G["tiles"]] == 256 and f[G["waves"]] == 2
    assert f[G["m_align"]] == 8  # 1000 = 8 x 125
    assert F.gemm_features(1024, 8, 8, np, peak_flops=1, mem_bw=1, num_sms=1)[G["m_align"]] == 256
    j = jax.jit(lambda m: F.gemm_features(m, 4096.0, 4096.0, jnp, peak_flops=989e12, mem_bw=3.35e12, num_sms=132))
    np.testing.assert_allclose(np.asarray(j(jnp.float32(1000))), f, rtol=1e-5)


def test_grouped_gemm_features_match_stats_definitions():
    counts = np.array([10, 0, 5, 5, 99, 99])
    mask = np.array([1, 1, 1, 1, 0, 0], bool)
    kw = dict(hidden=2048, expert_hidden=768, topk=8, gated=1, peak_flops=312e12, mem_bw=2.0e12, num_sms=108)
    f = F.grouped_gemm_features(counts, mask, np, num_tokens=3, **kw)
    st = moe_stats_from_counts(counts[:4])
    assert f[M["routed_tokens"]] == st["routed_tokens"] == 20
    assert f[M["local_experts"]] == 4 and f[M["active_experts"]] == 3 and f[M["expert_utilization"]] == 0.75
    assert f[M["max_tokens"]] == 10 and f[M["min_tokens"]] == 0 and f[M["max_load_ratio"]] == 2
    assert f[M["load_cv"]] == pytest.approx(st["load_cv"])
    assert f[M["load_gini"]] == pytest.approx(st["load_gini"])
    assert f[M["load_entropy_bits"]] == pytest.approx(st["load_entropy_bits"])
    assert f[M["flops"]] == pytest.approx(2 * 20 * 2048 * 768 * 3)
    assert f[M["tiles_est"]] == 3 and f[M["tiles_max"]] == 1
    # the same vector from the summary statistics (what the importer sees in moe.csv)
    g = F.moe_features_from_stats(3, st["routed_tokens"], st["local_experts"], st["active_experts"],
                                  st["max_tokens"], st["min_tokens"], st["load_cv"], st["load_gini"],
                                  st["load_entropy_bits"], np, **kw)
    np.testing.assert_allclose(f, g, rtol=1e-12)
    # jit + vmap over ranks
    j = jax.jit(jax.vmap(lambda x, m: F.grouped_gemm_features(x, m, jnp, **kw)))
    X = np.stack([counts, np.array([4, 4, 4, 4, 0, 0])])
    Mk = np.stack([mask, mask])
    got = np.asarray(j(jnp.asarray(X, jnp.float32), jnp.asarray(Mk)))
    ref = F.grouped_gemm_features(X, Mk, np, **kw)
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-6)
    assert ref[1, M["load_gini"]] == pytest.approx(0.0) and ref[1, M["load_cv"]] == 0


def test_proxy_features_vidur_style():
    df = pd.DataFrame({
        "q_lens": [(30, 40, 1)], "c_lens": [(0, 10, 100)], "is_decode": [(False, False, True)],
        "counts": [(1, 1, 3)], "n_q_heads": [8.0], "n_kv_heads": [8.0], "head_dim": [128],
        "device": ["a100"], "dtype_bytes": [2], "block_size": [16],
    })
    p = F.proxy_features("attention", "attn_prefill", df)[0]
    assert p[0] == pytest.approx(50.0) and p[1] == 10  # sqrt(30^2 + 40^2), sum of cached KV
    d = F.proxy_features("attention", "attn_decode", df)[0]
    assert d[0] == 3 and d[1] == 128  # mean KV 100 rounded up to 64
    X = F.frame_features("attention", df)
    assert X.shape == (1, len(F.ATTENTION_FEATURES)) and X[0, A["d_num_seqs"]] == 3


def test_grouped_gemm_launch_features_follow_vllm_default_config():
    """vLLM's default fused_moe config: 16-row blocks (32-column) while the tokens entering the
    layer do not outnumber the local experts, else 64 x 64; each expert padded to the block;
    the expert width per TP shard; the timing context (1 = warm, the simulator's default)."""
    counts = np.array([10, 0, 5, 5])
    mask = np.ones(4, bool)
    kw = dict(hidden=2048, expert_hidden=768, topk=8, gated=1, peak_flops=312e12, mem_bw=2.0e12, num_sms=108)
    small = F.grouped_gemm_features(counts, mask, np, num_tokens=3, **kw)
    assert small[M["small_m_config"]] == 1 and small[M["block_m"]] == 16
    assert small[M["block_tiles"]] == 3  # ceil(10/16) + ceil(5/16) + ceil(5/16)
    assert small[M["ctas_up"]] == 3 * (2 * 768 // 32) and small[M["ctas_down"]] == 3 * (2048 // 32)
    assert small[M["waves_up"]] == 2 and small[M["waves_down"]] == 2  # 144 and 192 CTAs on 108 SMs
    assert small[M["grid_m"]] == 6  # ceil((3 x 8 + 4 x 15) / 16)
    # K-loops: waves x BLOCK_SIZE_K steps, 64-wide K blocks: 2048 / 64 up, 768 / 64 down
    assert small[M["kloop_up"]] == 2 * 32 and small[M["kloop_down"]] == 2 * 12
    assert small[M["warm_context"]] == 1
    large = F.grouped_gemm_features(counts, mask, np, num_tokens=5, tp=2, warm=0, **kw)
    assert large[M["small_m_config"]] == 0 and large[M["block_m"]] == 64 and large[M["block_tiles"]] == 3
    assert large[M["expert_hidden_shard"]] == 384 and large[M["ctas_up"]] == 3 * (2 * 384 // 64)
    assert large[M["warm_context"]] == 0
    # 32-wide K blocks; 36 and 96 CTAs fit one wave: 2048 / 32 up, 384 / 32 down
    assert large[M["kloop_up"]] == 64 and large[M["kloop_down"]] == 12
    # padded rows: 3 tiles of 64 for 20 rows, FLOPs at the shard width
    assert large[M["block_pad_ratio"]] == pytest.approx(3 * 64 / 20)
    assert large[M["block_roofline_s"]] == pytest.approx(
        max(2 * 3 * 64 * 2048 * 384 * 3 / 312e12, (2 * 3 * 2048 * 384 * 3 + 2 * 20 * (2 * 2048 + 3 * 768)) / 2.0e12))
