"""Cost-model parameters: a pytree of float64 scalars that vmap can sweep.

Only primary quantities are stored (model dimensions, parallel degrees, hardware
specs, efficiencies); everything per-GPU is derived inside the cost functions so a
swept leaf (e.g. ``tp``) never leaves a stale derived value behind.
"""

from typing import Any, NamedTuple

import numpy as np


class CostParams(NamedTuple):
    """Roofline cost parameters (each a float64 scalar, or [C] when vmapped).

    Model: hidden, q_heads, kv_heads, head_dim, ffn (dense intermediate size), vocab,
    layers, dtype_bytes, gated (1.0 gated MLP else 0.0), num_experts (0 dense), top_k,
    moe_ffn, shared_ffn, dense_layers (an MoE model's first layers with a dense MLP of width
    ``ffn``, DeepSeek's ``first_k_dense_replace``). Parallelism: tp, pp. Hardware: peak_flops (FLOP/s),
    hbm_bw (bytes/s), nvlink_bw / net_bw (bytes/s per direction), nvlink_lat_s /
    net_lat_s (s), gpus_per_node. Efficiencies (fractions of peak): gemm_eff,
    attn_eff, mem_eff. Host overhead per iteration: cpu_s + cpu_per_seq_s * seqs.
    ``moe``: None (dense models, and MoE with "balanced" routing: the mean load), or
    :class:`MoEParams` (sampled routing maps, the layer waits for its slowest EP rank).
    ``tables``: None, or what a tier's ``CostModel.prepare`` attached (e.g. the surrogate
    tier's per-token-count tables, :class:`frontier_jax.cost.surrogate.StepTables`).
    In ``SimParams.cost`` every leaf gains a leading [K] axis, one entry per pool
    (:func:`frontier_jax.contract.instance_params` reads an instance's).
    """

    hidden: Any
    q_heads: Any
    kv_heads: Any
    head_dim: Any
    ffn: Any
    vocab: Any
    layers: Any
    dtype_bytes: Any
    gated: Any
    num_experts: Any
    top_k: Any
    moe_ffn: Any
    shared_ffn: Any
    dense_layers: Any
    tp: Any
    pp: Any
    peak_flops: Any
    hbm_bw: Any
    nvlink_bw: Any
    nvlink_lat_s: Any
    net_bw: Any
    net_lat_s: Any
    gpus_per_node: Any
    gemm_eff: Any
    attn_eff: Any
    mem_eff: Any
    cpu_s: Any
    cpu_per_seq_s: Any
    moe: Any = None  # MoEParams when routing maps are sampled ([moe] routing other than "balanced")
    tables: Any = None  # a cost tier's host-precomputed lookup tables (CostModel.prepare)
    af: Any = None  # AFParams of an attention/FFN-disaggregated group ([af]), else None


# the scalar leaves (what fixes a tier's host tables; ``moe`` and ``tables`` are not scalars)
SCALAR_FIELDS = tuple(f for f in CostParams._fields if f not in ("moe", "tables", "af"))


class AFParams(NamedTuple):
    """Attention/FFN disaggregation (:mod:`frontier_jax.cost.af_price`), float64 leaves.

    ranks [M]: 1.0 for each attention instance of the group (0 past it); micro [MB]: 1.0 for
    each of the m micro-batches (0 past them); groups [G]: the layer counts of the groups of
    identical layers, in order (G = 2: an MoE model's dense first layers, then the rest; G =
    1: every layer alike; with sampled MoE routing G = 1 + sampled layers: the dense layers,
    maybe 0, then each sampled layer's share of the MoE layers). M, MB and G are static shapes (a sweep pads them to its group's
    most); the values are traced. ffn: FFN instances; ffn_tp: GPUs per FFN instance; link_bw
    (bytes/s per GPU and direction), link_lat_s: the A<->F link (NVLink when the group fits a
    node of one kind of GPU, else the slower network of the two sides); ffn_flops, ffn_hbm_bw,
    ffn_nvlink_bw, ffn_nvlink_lat_s: the FFN side's GPU (peak FLOP/s, HBM bytes/s, its NVLink
    for the FFN instance's TP all-reduce)."""

    ranks: Any
    micro: Any
    groups: Any
    ffn: Any
    ffn_tp: Any
    link_bw: Any
    link_lat_s: Any
    ffn_flops: Any = None
    ffn_hbm_bw: Any = None
    ffn_nvlink_bw: Any = None
    ffn_nvlink_lat_s: Any = None


def af_params_from_scenario(s: Any) -> AFParams | None:
    """The :class:`AFParams` of scenario ``s`` (None without [af])."""
    af = s.af
    if not af.enabled:
        return None
    from frontier_jax.spec.scenario import ffn_hardware

    h, hf = s.hardware, ffn_hardware(s)
    intra = hf == h and af.attention * s.parallel.tp + af.ffn_gpus <= h.gpus_per_node
    f = np.float64
    m = s.model
    moe_layers = m.num_hidden_layers - m.dense_layers
    if s.moe.sampled:  # the dense layers (maybe 0), then each sampled layer's equal share
        groups = [m.dense_layers] + [moe_layers // s.moe.sampled_layers] * s.moe.sampled_layers
    else:
        groups = [m.dense_layers, moe_layers] if m.dense_layers else [m.num_hidden_layers]
    return AFParams(np.ones(af.attention, f), np.ones(af.micro_batches, f), np.asarray(groups, f),
                    f(af.ffn), f(af.ffn_tp), f(h.nvlink_bw if intra else min(h.net_bw, hf.net_bw)),
                    f(h.nvlink_latency_s if intra else max(h.net_latency_s, hf.net_latency_s)),
                    f(hf.peak_flops), f(hf.hbm_bw), f(hf.nvlink_bw), f(hf.nvlink_latency_s))


class MoEParams(NamedTuple):
    """Sampled MoE routing (:mod:`frontier_jax.cost.routing`), float64 leaves.

    shares [G, S]: each sampled MoE layer's share of the routed rows on each of S rank slots
    (0 past the EP degree); layers_per_map: the model's MoE layers / G (each sampled layer
    stands for that many); ep: the EP degree; slots: expert slots per rank ((experts +
    redundant) / ep); tile: the GroupedGEMM row tile; wait_for_slowest: 1.0 the layer takes its
    slowest rank's time, 0.0 the mean rank load's (the what-if that shows the straggler
    penalty); dp_ranks [D]: 1.0 for each of the instance's attention data-parallel ranks (0
    past its DP degree; D > 1, a static shape, selects :mod:`frontier_jax.cost.dp`); drift,
    drift_period: None (the popularity is fixed for the run), or the log-normal fluctuation of
    each rank's share and the iterations between its independent anchors
    (:func:`frontier_jax.cost.routing.layer_shares`); iter_shares [I, G, S]: None, or the rank
    shares of each iteration of a replayed routing trace (``[moe] replay = "iterations"``)."""

    shares: Any
    layers_per_map: Any
    ep: Any
    slots: Any
    tile: Any
    wait_for_slowest: Any
    dp_ranks: Any
    drift: Any = None  # popularity drift (exp(drift x z) per rank share); None: fixed for the run
    drift_period: Any = None  # iterations between drift anchors
    iter_shares: Any = None  # [I, G, S] a replayed trace's per-iteration rank shares, or None


def moe_params_from_scenario(s: Any, pool: Any = None) -> MoEParams | None:
    """The :class:`MoEParams` of scenario ``s``'s pool ``pool`` (None unless [moe] samples
    routing maps): the popularity and placement drawn on the host from the scenario's seed,
    the pool's EP degree and attention DP ranks (no pool: [moe] ep and one DP rank)."""
    from frontier_jax.cost.routing import popularity, rank_shares

    moe, m = s.moe, s.model
    if not moe.sampled:
        return None
    layers = m.num_hidden_layers - m.dense_layers
    trace = None
    picked = ((np.arange(moe.sampled_layers) + 0.5) * layers / moe.sampled_layers).astype(int)
    if moe.routing == "trace":  # the sampled layers: evenly spaced over the trace's MoE layers
        from frontier_jax.spec.scenario import load_routing_counts

        trace = load_routing_counts(moe.trace)[picked]
    pop = popularity(moe.routing, m.num_experts, moe.sampled_layers, skew=moe.skew, seed=s.seed,
                     trace=trace)
    ep = moe.ep if pool is None or pool.ep is None else pool.ep
    shares = rank_shares(pop, ep, ep, moe.placement, moe.redundant_experts)
    iters = None
    if moe.replay == "iterations":
        from frontier_jax.cost.routing import iteration_shares
        from frontier_jax.spec.scenario import load_routing_iterations

        counts = load_routing_iterations(moe.trace)[:, picked]
        iters = iteration_shares(counts, pop, ep, ep, moe.placement, moe.redundant_experts)
    f = np.float64
    return MoEParams(shares, f(layers / moe.sampled_layers), f(ep),
                     f((m.num_experts + moe.redundant_experts) / ep),
                     f(moe.tile), f(1.0 if moe.wait_for_slowest else 0.0),
                     np.ones(1 if pool is None else pool.dp, np.float64),
                     f(moe.drift) if moe.drift else None,
                     f(moe.drift_iterations) if moe.drift else None, iters)


def cost_params_from_scenario(s: Any, pool: Any = None) -> CostParams:
    """Build :class:`CostParams` (numpy float64 scalars) of one pool of a validated Scenario
    (default: its only pool): the model, the pool's TP/PP and hardware, the [cost] knobs."""
    if pool is None:
        if len(s.pools) != 1:
            raise ValueError(f"{s.source}: the layout has {len(s.pools)} pools; name one")
        pool = s.pools[0]
    m, h, c = s.model, pool.hardware, s.cost
    moe_ffn = (m.moe_intermediate_size or m.intermediate_size) if m.num_experts else 0
    vals = dict(
        hidden=m.hidden_size,
        q_heads=m.num_attention_heads,
        kv_heads=m.num_key_value_heads,
        head_dim=m.head_dim,
        ffn=m.intermediate_size,
        vocab=m.vocab_size,
        layers=m.num_hidden_layers,
        dtype_bytes=m.dtype_bytes,
        gated=1.0 if m.gated_mlp else 0.0,
        num_experts=m.num_experts,
        top_k=m.num_experts_per_tok,
        moe_ffn=moe_ffn,
        shared_ffn=m.shared_expert_intermediate_size,
        dense_layers=m.dense_layers,
        tp=pool.tp,
        pp=pool.pp,
        peak_flops=h.peak_flops,
        hbm_bw=h.hbm_bw,
        nvlink_bw=h.nvlink_bw,
        nvlink_lat_s=h.nvlink_latency_s,
        net_bw=h.net_bw,
        net_lat_s=h.net_latency_s,
        gpus_per_node=h.gpus_per_node,
        gemm_eff=c.gemm_efficiency,
        attn_eff=c.attention_efficiency,
        mem_eff=c.memory_efficiency,
        cpu_s=c.cpu_overhead_s,
        cpu_per_seq_s=c.cpu_overhead_per_seq_s,
    )
    return CostParams(**{k: np.float64(v) for k, v in vals.items()}, moe=moe_params_from_scenario(s, pool),
                      af=af_params_from_scenario(s))
