"""Small hand-made configurations for simulator tests (no TOML needed)."""

import numpy as np

from frontier_jax.contract import (
    COLOCATED,
    DECODE,
    DECODE_ROUTERS,
    PREFILL,
    ROUTERS,
    EngineParams,
    PoolParams,
    SimParams,
    WorkloadArrays,
)
from frontier_jax.cost import CostParams


def llama8b_h100_cost(tp: float = 1.0) -> CostParams:
    """Roofline params of Llama-3-8B on an H100-SXM (numpy float64 scalars)."""
    vals = dict(
        hidden=4096,
        q_heads=32,
        kv_heads=8,
        head_dim=128,
        ffn=14336,
        vocab=128256,
        layers=32,
        dtype_bytes=2,
        gated=1,
        num_experts=0,
        top_k=0,
        moe_ffn=0,
        shared_ffn=0,
        dense_layers=0,
        tp=tp,
        pp=1,
        peak_flops=989e12,
        hbm_bw=3.35e12,
        nvlink_bw=450e9,
        nvlink_lat_s=5e-6,
        net_bw=50e9,
        net_lat_s=1e-5,
        gpus_per_node=8,
        gemm_eff=0.7,
        attn_eff=0.5,
        mem_eff=0.8,
        cpu_s=1e-3,
        cpu_per_seq_s=5e-6,
    )
    return CostParams(**{k: np.float64(v) for k, v in vals.items()})


def make_params(
    n: int = 64,
    rate: float = 20.0,
    replicas: int = 1,
    router: str = "round_robin",
    max_num_seqs: int = 16,
    max_batched_tokens: int = 512,
    chunked: bool = True,
    block_size: int = 16,
    kv_blocks: int = 2000,
    prompt: tuple[int, int] = (8, 400),
    output: tuple[int, int] = (1, 60),
    seed: int = 0,
    reserve_full_isl: bool = True,
) -> SimParams:
    """One configuration with Poisson arrivals and uniform lengths: ``replicas`` co-located
    instances of one pool."""
    rng = np.random.default_rng(seed)
    wl = WorkloadArrays(
        arrival_s=np.cumsum(rng.exponential(1.0 / rate, n)),
        prompt=rng.integers(prompt[0], prompt[1] + 1, n).astype(np.int32),
        output=rng.integers(output[0], output[1] + 1, n).astype(np.int32),
    )
    pool = PoolParams(
        role=np.array([COLOCATED], np.int32),
        max_num_seqs=np.array([max_num_seqs], np.int32),
        max_batched_tokens=np.array([max_batched_tokens], np.int32),
        chunked_prefill=np.array([chunked]),
        block_size=np.array([block_size], np.int32),
        kv_blocks=np.array([kv_blocks], np.int32),
        reserve_full_isl=np.array([reserve_full_isl]),
        max_chunk=np.array([max_batched_tokens], np.int32),
    )
    ep = EngineParams(
        pool=np.zeros(replicas, np.int32),
        router=np.int32(ROUTERS[router]),
        max_steps=np.int32(1_000_000),
        pools=pool,
        decode_router=np.int32(0),
        link_bw=np.float64(50e9),
        link_lat_s=np.float64(1e-5),
    )
    cost = llama8b_h100_cost()._replace(tables=None)
    per_pool = CostParams(*[np.asarray([x]) if x is not None else None for x in cost])
    return SimParams(ep, per_pool, wl, np.uint32(seed))


def make_pd_params(
    n: int = 64,
    rate: float = 20.0,
    prefill: int = 1,
    decode: int = 1,
    router: str = "round_robin",
    decode_router: str = "round_robin",
    max_num_seqs: tuple[int, int] = (16, 16),
    max_batched_tokens: tuple[int, int] = (512, 512),
    chunked: tuple[bool, bool] = (True, True),
    block_size: tuple[int, int] = (16, 16),
    kv_blocks: tuple[int, int] = (2000, 2000),
    tp: tuple[float, float] = (1.0, 1.0),
    link_bw: float = 50e9,
    link_lat_s: float = 1e-5,
    prompt: tuple[int, int] = (8, 400),
    output: tuple[int, int] = (1, 60),
    seed: int = 0,
    reserve_full_isl: bool = True,
) -> SimParams:
    """One PD configuration: ``prefill`` instances of a prefill pool, ``decode`` of a decode
    pool (each pool's knobs as a (prefill, decode) pair), Poisson arrivals, uniform lengths."""
    base = make_params(n=n, rate=rate, router=router, seed=seed, prompt=prompt, output=output)
    pool = PoolParams(
        role=np.array([PREFILL, DECODE], np.int32),
        max_num_seqs=np.array(max_num_seqs, np.int32),
        max_batched_tokens=np.array(max_batched_tokens, np.int32),
        chunked_prefill=np.array(chunked),
        block_size=np.array(block_size, np.int32),
        kv_blocks=np.array(kv_blocks, np.int32),
        reserve_full_isl=np.array([reserve_full_isl] * 2),
        max_chunk=np.array(max_batched_tokens, np.int32),
    )
    ep = base.engine._replace(
        pool=np.array([0] * prefill + [1] * decode, np.int32), pools=pool,
        decode_router=np.int32(DECODE_ROUTERS[decode_router]), link_bw=np.float64(link_bw),
        link_lat_s=np.float64(link_lat_s))
    costs = [llama8b_h100_cost(t)._replace(tables=None) for t in tp]
    per_pool = CostParams(*[None if x[0] is None else np.asarray(x) for x in zip(*costs, strict=True)])
    return base._replace(engine=ep, cost=per_pool)


def agree(s, n: int) -> dict:
    """Scenario ``s`` on its first ``n`` requests, vectorized and reference: asserts that every
    request finished and that per-request finish and first-token times agree within 1e-6
    relative with equal iteration counts; returns :func:`frontier_jax.runner.compare`'s dict."""
    import dataclasses

    from frontier_jax.runner import compare, prepare, run_reference, run_vectorized

    s = dataclasses.replace(s, workload=dataclasses.replace(s.workload, num_requests=n))
    prep = prepare(s)
    c = compare(run_vectorized(prep).result, run_reference(prep).result)
    assert c["finished"] == n
    assert c["max_rel_err_finish"] <= 1e-6 and c["max_rel_err_ttft"] <= 1e-6
    assert c["iterations_equal"] and c["preemptions_equal"]
    return c
