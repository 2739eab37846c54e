"""An engine iteration composed from its parts, written once for every cost tier.

    iteration = layers x (seconds per decoder layer)
                + (pp - 1) activation sends + LM head + embedding + host overhead

The tiers differ only in how they price a layer and the LM head (the roofline from FLOPs and
bytes, the surrogate tier from its trained networks); both hand them to
:func:`iteration_seconds`. Elementwise in its arguments, so a trailing axis prices many
iterations (a decode window) at once.
"""

from typing import Any

from frontier_jax.cost.batch import BatchTotals
from frontier_jax.cost.params import CostParams


def link(tp_or_gpus, p: CostParams, xp):
    """(bandwidth bytes/s, latency s) of the link joining ``tp_or_gpus`` GPUs: NVLink within
    a node, the network across nodes."""
    intra = tp_or_gpus <= p.gpus_per_node
    return xp.where(intra, p.nvlink_bw, p.net_bw), xp.where(intra, p.nvlink_lat_s, p.net_lat_s)


def iteration_seconds(layer_s, lm_head_s, t: BatchTotals, p: CostParams, xp: Any, extra_s=0.0):
    """Seconds of one engine iteration with batch totals ``t`` (0 for an empty batch).

    ``layer_s``: seconds of one decoder layer on one GPU; ``lm_head_s``: seconds of the LM
    head on the sampled rows. All pipeline stages run the batch in turn (no
    micro-batching): ``layers x layer_s`` plus (pp - 1) activation sends, the LM head, the
    embedding lookup and the host overhead ``cpu_s + cpu_per_seq_s x sequences``.
    ``extra_s``: seconds the layers take beyond ``layers x layer_s`` (the MoE structure,
    :func:`frontier_jax.cost.roofline.moe_seconds`).
    """
    T, h, b = t.num_tokens, p.hidden, p.dtype_bytes
    pp_bw, pp_lat = link(p.tp * p.pp, p, xp)
    sends = (p.pp - 1.0) * (pp_lat + T * h * b / pp_bw)
    embed = T * h * b / (p.hbm_bw * p.mem_eff)
    host = p.cpu_s + p.cpu_per_seq_s * t.num_seqs
    total = p.layers * layer_s + extra_s + sends + lm_head_s + embed + host
    return xp.where(t.num_seqs > 0, total, 0.0)


__all__ = ["iteration_seconds", "link"]
