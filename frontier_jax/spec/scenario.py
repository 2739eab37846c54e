"""Scenario specs: one serving layout + workload + cost model, loaded from TOML and validated.

TOML layout (every table but `model`, `hardware` and `workload` may be left out)::

    name = "demo"                 # default: the file's stem
    seed = 0
    [model]      preset = "llama-3-8b" | config = "path/config.json" (relative to the TOML file)
                 | every ModelSpec field inline; ModelSpec fields next to preset/config override it
    [hardware]   preset = "H100-SXM" plus any HardwareSpec field as an override
                 | every HardwareSpec field inline
    [parallel]   tp, pp, dp (attention data-parallel ranks, MoE models)
    [scheduler]  max_num_seqs, max_num_batched_tokens, chunked_prefill, block_size,
                 gpu_memory_utilization, reserve_full_isl, long_prefill_token_threshold
    [cluster]    replicas, router
    [layout.NAME]  a pool of identical instances: role, count, tp, pp, dp, ep, hardware (a preset
                 name or a [hardware]-style table), [layout.NAME.scheduler] overrides; given,
                 it replaces [parallel] and cluster.replicas (the one-pool shorthand)
    [prefill] / [decode]  PD shorthand: the pools layout.prefill / layout.decode (replicas,
                 tp, pp, dp, ep, hardware, scheduler)
    [kv_transfer]  link, bandwidth, latency_s, decode_router, first_token (PD layouts)
    [workload]   num_requests, trace (a trace file, relative to the TOML file), format,
                 time_scale, start, duration, loop, trace_model, trace_log_type, drop_failed
    [workload.arrival]  process, rate (requests/s), cv
    [workload.prompt] / [workload.output]  dist + its parameters, scale, min, max (tokens)
    [slo]        ttft_s, tpot_s
    [cost]       kind, gemm_efficiency, attention_efficiency, memory_efficiency,
                 cpu_overhead_s, cpu_overhead_per_seq_s, predictor
    [sim]        max_steps, queue_capacity
    [moe]        routing, skew, trace, placement, redundant_experts, ep, tile, wait_for_slowest,
                 sampled_layers, drift, drift_iterations, replay (MoE models; trace relative to the
                 TOML file)
    [af]         attention, ffn, ffn_tp, micro_batches, ffn_hardware (attention/FFN groups)

Every problem raises `SpecError` naming the file and the dotted field.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

from frontier_jax.spec.errors import (
    INT32_MAX,
    SpecError,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_keys,
    check_str,
    did_you_mean,
    key_path,
    one_of,
    read_spec_text,
)
from frontier_jax.spec.hardware import HARDWARE_FIELDS, HARDWARE_PRESETS, HardwareSpec, get_hardware
from frontier_jax.spec.model import MODEL_PRESETS, ModelSpec, load_model_config

ROUTERS = ("round_robin", "least_outstanding")
POOL_ROLES = ("colocated", "prefill", "decode")  # attention / ffn (AF) join here
PD_ROLES = ("prefill", "decode")
KV_LINKS = ("network", "nvlink")
DECODE_ROUTERS = ("round_robin", "least_outstanding", "most_free_kv")
FIRST_TOKEN = ("decode", "prefill")
SHORTHAND_POOL = "main"  # the name of the one pool [parallel] + [cluster] describe
_BARE_NAME = re.compile(r"[A-Za-z0-9_-]+")
ARRIVAL_PROCESSES = ("poisson", "gamma", "trace")
LENGTH_DISTS = ("fixed", "uniform", "lognormal", "zipf", "trace")
COST_KINDS = ("roofline", "forest", "surrogate")

# The parameters each length distribution needs; the others must be left out.
_LENGTH_PARAMS: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "uniform": ("low", "high"),
    "lognormal": ("median", "sigma"),
    "zipf": ("alpha", "low", "high"),
    "trace": (),
}
_ALL_LENGTH_PARAMS = ("value", "low", "high", "median", "sigma", "alpha")
# A zipf length distribution is a table over high - low + 1 lengths: keep it small.
_MAX_ZIPF_SUPPORT = 2**20
# Coefficient of variation of gamma arrivals: 1/cv^2 is the gamma shape.
_MIN_CV, _MAX_CV = 1e-6, 1e3


@dataclass(frozen=True)
class ParallelSpec:
    """Tensor-parallel (`tp`) and pipeline-parallel (`pp`) degrees of one replica, and its
    attention data-parallel ranks (`dp`, MoE models: see :class:`PoolSpec`)."""

    tp: int = 1
    pp: int = 1
    dp: int = 1

    def __post_init__(self) -> None:
        check_int(self, "tp", minimum=1, maximum=INT32_MAX)
        check_int(self, "pp", minimum=1, maximum=INT32_MAX)
        check_int(self, "dp", minimum=1, maximum=MAX_DP)


MAX_AF_ATTENTION = 64  # attention instances per AF group


@dataclass(frozen=True)
class AFSpec:
    """Attention/FFN disaggregation (:mod:`frontier_jax.cost.af`), off while `ffn` is 0.

    Each replica is an AF group: `attention` attention instances of [parallel] tp GPUs (they
    hold the KV cache, run attention and schedule) and `ffn` FFN instances of `ffn_tp` GPUs
    (the dense MLP, or the MoE experts spread over every FFN GPU), stepping together; each
    iteration splits every attention instance's batch into `micro_batches` micro-batches that
    ping-pong between the sides, each layer sending activations A->F and back. `ffn_hardware`:
    the FFN side's GPU (a preset name; None: the scenario's [hardware]); a group of two kinds
    of GPU spans nodes, so its links take the network."""

    attention: int = 1
    ffn: int = 0
    ffn_tp: int = 1
    micro_batches: int = 2
    ffn_hardware: str | None = None

    def __post_init__(self) -> None:
        from frontier_jax.cost.af import MAX_MICRO_BATCHES

        check_int(self, "attention", minimum=1, maximum=MAX_AF_ATTENTION)
        check_int(self, "ffn", minimum=0, maximum=MAX_AF_ATTENTION)
        check_int(self, "ffn_tp", minimum=1, maximum=INT32_MAX)
        check_int(self, "micro_batches", minimum=1, maximum=MAX_MICRO_BATCHES)
        check_str(self, "ffn_hardware", optional=True)
        if self.ffn_hardware is not None and self.ffn_hardware not in HARDWARE_PRESETS:
            raise SpecError("<AFSpec>", "ffn_hardware", self.ffn_hardware,
                            f"a hardware preset: {', '.join(sorted(HARDWARE_PRESETS))}")

    @property
    def enabled(self) -> bool:
        """Whether the layout disaggregates attention and FFN (`ffn` >= 1)."""
        return self.ffn > 0

    @property
    def ffn_gpus(self) -> int:
        """GPUs of one group's FFN side (`ffn` x `ffn_tp`)."""
        return self.ffn * self.ffn_tp


@dataclass(frozen=True)
class SchedulerSpec:
    """vLLM-style continuous-batching limits per replica: at most `max_num_seqs` sequences and
    `max_num_batched_tokens` tokens per iteration, KV blocks of `block_size` tokens, and the
    share `gpu_memory_utilization` of each GPU's memory given to weights + KV cache. With
    `reserve_full_isl` (vLLM's `scheduler_reserve_full_isl`, on by default there) a waiting
    request is admitted only if its whole sequence fits the free KV blocks, not just its
    first chunk. `long_prefill_token_threshold` (vLLM's, 0 = off; chunked prefill only): the
    most prompt tokens one sequence computes in an iteration. With attention data parallelism
    (`dp` > 1) these limits are each DP rank's."""

    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    chunked_prefill: bool = True
    block_size: int = 16
    gpu_memory_utilization: float = 0.9
    reserve_full_isl: bool = True
    long_prefill_token_threshold: int = 0

    def __post_init__(self) -> None:
        check_int(self, "max_num_seqs", minimum=1, maximum=INT32_MAX)
        check_int(self, "max_num_batched_tokens", minimum=1, maximum=INT32_MAX)
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise SpecError("<SchedulerSpec>", "max_num_batched_tokens",
                            self.max_num_batched_tokens,
                            f"must be >= max_num_seqs = {self.max_num_seqs} (one decode token each)")
        check_bool(self, "chunked_prefill")
        check_bool(self, "reserve_full_isl")
        check_int(self, "block_size", minimum=1, maximum=INT32_MAX)
        check_float(self, "gpu_memory_utilization", low=0.0, high=1.0, low_open=True)
        check_int(self, "long_prefill_token_threshold", minimum=0, maximum=INT32_MAX)
        if self.long_prefill_token_threshold and not self.chunked_prefill:
            raise SpecError("<SchedulerSpec>", "long_prefill_token_threshold",
                            self.long_prefill_token_threshold,
                            "only used with chunked_prefill = true (it caps a prompt's chunk)")


@dataclass(frozen=True)
class ClusterSpec:
    """`replicas` identical co-located replicas behind a global `router`."""

    replicas: int = 1
    router: str = "round_robin"

    def __post_init__(self) -> None:
        check_int(self, "replicas", minimum=1, maximum=INT32_MAX)
        check_choice(self, "router", ROUTERS)


@dataclass(frozen=True)
class KVTransferSpec:
    """How prompt KV moves from prefill to decode instances (PD layouts). Each decode instance
    pulls over its own link, one transfer at a time in hand-off order, and starts a transfer only
    when it can hold the request's KV (backpressure). `link` "network" (prefill and decode on
    different nodes) or "nvlink" (one node) takes the bandwidth (bytes/s per GPU, each GPU moving
    its share in parallel) and latency (s) from the prefill pool's hardware, unless `bandwidth`
    / `latency_s` are given. `decode_router` picks the decode instance at hand-off. `first_token`
    says when TTFT counts: "decode" (as a client of vLLM's disaggregated serving sees it: the
    decode instance's first token, after the transfer) or "prefill" (DistServe's convention: the
    end of prefill)."""

    link: str = "network"
    bandwidth: float | None = None
    latency_s: float | None = None
    decode_router: str = "round_robin"
    first_token: str = "decode"

    def __post_init__(self) -> None:
        check_choice(self, "link", KV_LINKS)
        check_float(self, "bandwidth", low=0.0, low_open=True, optional=True)
        check_float(self, "latency_s", low=0.0, optional=True)
        check_choice(self, "decode_router", DECODE_ROUTERS)
        check_choice(self, "first_token", FIRST_TOKEN)


@dataclass(frozen=True)
class PoolSpec:
    """One pool of the serving layout: `count` identical instances playing `role`, each on
    `tp` x `pp` GPUs of `hardware`, with its own `scheduler` knobs (the scenario's
    [scheduler] with the pool's overrides). `count` may be 0 (a pool switched off in a
    sweep); the layout needs at least one instance. `name` is a bare TOML key (letters,
    digits, `_`, `-`). `scheduler_given` names the scheduler fields the pool sets itself and
    `hardware_given` whether it sets its hardware: those stay the pool's own when the
    scenario's [scheduler] or [hardware] is overridden (the rest follow them)."""

    name: str
    hardware: HardwareSpec
    scheduler: SchedulerSpec
    role: str = "colocated"
    count: int = 1
    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int | None = None
    scheduler_given: tuple[str, ...] = ()
    hardware_given: bool = False

    def __post_init__(self) -> None:
        check_str(self, "name")
        if not _BARE_NAME.fullmatch(self.name):
            raise SpecError("<PoolSpec>", "name", self.name,
                            "a pool name of letters, digits, '_' and '-' (it is a dotted-path key)")
        _check_type(self, "hardware", HardwareSpec)
        _check_type(self, "scheduler", SchedulerSpec)
        check_choice(self, "role", POOL_ROLES)
        check_int(self, "count", minimum=0, maximum=INT32_MAX)
        check_int(self, "tp", minimum=1, maximum=INT32_MAX)
        check_int(self, "pp", minimum=1, maximum=INT32_MAX)
        check_int(self, "dp", minimum=1, maximum=MAX_DP)
        check_int(self, "ep", minimum=1, maximum=MAX_EP, optional=True)

    @property
    def gpus_per_instance(self) -> int:
        """Returns the GPUs one instance of the pool uses (dp x tp x pp)."""
        return self.dp * self.tp * self.pp


def layout_gpus(pools) -> int:
    """Returns the GPUs of a layout given as (count, tp, pp), (count, tp, pp, dp) or (count,
    tp, pp, dp, extra) per pool: sum of count x (tp x pp x dp + extra), ``extra`` the GPUs an
    instance has beside its attention ranks (an AF group's FFN side). The one place GPUs are
    counted (scenarios, sweep expressions and metrics all use it)."""
    return sum(c * (tp * pp * (rest[0] if rest else 1) + (rest[1] if len(rest) > 1 else 0))
               for c, tp, pp, *rest in pools)


@dataclass(frozen=True)
class LengthSpec:
    """A token-length distribution. `dist` picks the parameters it needs:
    fixed: `value`; uniform: `low`..`high` (inclusive); lognormal: `median` and `sigma` of the
    underlying normal (log tokens); zipf: P(k) ~ k^-`alpha` over `low`..`high`; trace: lengths
    drawn from the workload's trace file. Every sample is multiplied by `scale`, rounded and
    clipped to [`min`, `max`]."""

    dist: str
    value: int | None = None
    low: int | None = None
    high: int | None = None
    median: float | None = None
    sigma: float | None = None
    alpha: float | None = None
    scale: float = 1.0
    min: int = 1
    max: int | None = None

    def __post_init__(self) -> None:
        check_choice(self, "dist", LENGTH_DISTS)
        needed = _LENGTH_PARAMS[self.dist]
        for name in _ALL_LENGTH_PARAMS:
            value = getattr(self, name)
            if name in needed and value is None:
                raise SpecError("<LengthSpec>", name, None, f"required by dist {self.dist!r}")
            if name not in needed and value is not None:
                raise SpecError("<LengthSpec>", name, value,
                                f"not used by dist {self.dist!r}, which takes {list(needed)}")
        for name in ("value", "low", "high"):
            check_int(self, name, minimum=1, optional=True, maximum=INT32_MAX)
        if self.high is not None and self.high < self.low:
            raise SpecError("<LengthSpec>", "high", self.high, f"must be >= low = {self.low}")
        if self.dist == "zipf" and self.high - self.low >= _MAX_ZIPF_SUPPORT:
            raise SpecError("<LengthSpec>", "high", self.high,
                            f"zipf draws from at most {_MAX_ZIPF_SUPPORT} lengths: "
                            f"expected high < low + {_MAX_ZIPF_SUPPORT} = "
                            f"{self.low + _MAX_ZIPF_SUPPORT}")
        check_float(self, "median", low=0.0, low_open=True, optional=True)
        check_float(self, "sigma", low=0.0, optional=True)
        check_float(self, "alpha", low=0.0, low_open=True, optional=True)
        check_float(self, "scale", low=0.0, low_open=True)
        check_int(self, "min", minimum=1, maximum=INT32_MAX)
        check_int(self, "max", minimum=1, optional=True, maximum=INT32_MAX)
        if self.max is not None and self.max < self.min:
            raise SpecError("<LengthSpec>", "max", self.max, f"must be >= min = {self.min}")


@dataclass(frozen=True)
class ArrivalSpec:
    """Request arrivals: "poisson" (exponential gaps at `rate` requests/s), "gamma" (gamma gaps
    with mean 1/`rate` s and coefficient of variation `cv`) or "trace" (the trace file's
    arrival times; a `rate` given with them rescales the times so that the requests arrive at
    that mean rate: N requests by the last arrival at N / rate s)."""

    process: str = "poisson"
    rate: float | None = None
    cv: float = 1.0

    def __post_init__(self) -> None:
        check_choice(self, "process", ARRIVAL_PROCESSES)
        if self.process != "trace" and self.rate is None:
            raise SpecError("<ArrivalSpec>", "rate", None, f"required by process {self.process!r}")
        check_float(self, "rate", low=0.0, low_open=True, optional=True)
        check_float(self, "cv", low=_MIN_CV, high=_MAX_CV)
        if self.process != "gamma" and self.cv != 1.0:
            raise SpecError("<ArrivalSpec>", "cv", self.cv, "only used by process 'gamma'")


TRACE_FORMATS = ("auto", "csv", "azure", "burstgpt", "mooncake")  # frontier_jax.trace_formats
_TRACE_ONLY = {"format": "auto", "time_scale": 1.0, "start": 0.0, "duration": None,
               "loop": False, "trace_model": None, "trace_log_type": None, "drop_failed": True}
_REPLAY_ONLY = ("time_scale", "start", "duration", "loop")


@dataclass(frozen=True)
class WorkloadSpec:
    """`num_requests` requests with `arrival` times and `prompt` / `output` token lengths.

    `trace` is a trace file (an absolute path once loaded from TOML) in `format` (auto, csv,
    azure, burstgpt, mooncake: :mod:`frontier_jax.trace_formats`). With a trace, a part left
    out (None) comes from it: `trace` alone replays every row, or the first `num_requests`.
    Replayed arrivals (process "trace") can be cut to the window [`start`, `start` +
    `duration`) s (times then count from `start`), stretched by `time_scale` (2 = half the
    rate; or set `arrival.rate`), and with `loop` repeated, each pass one period later (the
    window's duration, else the trace's span plus its mean gap), until `num_requests`.
    BurstGPT rows can be kept by `trace_model` and `trace_log_type`; `drop_failed` leaves out
    a public trace's failed rows (0 output tokens) instead of refusing them."""

    num_requests: int | None = None
    arrival: ArrivalSpec | None = None
    prompt: LengthSpec | None = None
    output: LengthSpec | None = None
    trace: str | None = None
    format: str = "auto"
    time_scale: float = 1.0
    start: float = 0.0
    duration: float | None = None
    loop: bool = False
    trace_model: str | None = None
    trace_log_type: str | None = None
    drop_failed: bool = True

    def __post_init__(self) -> None:
        check_int(self, "num_requests", minimum=1, maximum=INT32_MAX, optional=True)
        check_str(self, "trace", optional=True)
        if self.trace is None:
            for name in ("num_requests", "arrival", "prompt", "output"):
                if getattr(self, name) is None:
                    raise SpecError("<WorkloadSpec>", name, None,
                                    "required (or give workload.trace, which supplies it)")
            for name, default in _TRACE_ONLY.items():
                if getattr(self, name) != default:
                    raise SpecError("<WorkloadSpec>", name, getattr(self, name),
                                    "only used with workload.trace")
        else:  # parts left out come from the trace
            for name, part in (("arrival", ArrivalSpec("trace")), ("prompt", LengthSpec("trace")),
                               ("output", LengthSpec("trace"))):
                if getattr(self, name) is None:
                    object.__setattr__(self, name, part)
        _check_type(self, "arrival", ArrivalSpec)
        _check_type(self, "prompt", LengthSpec)
        _check_type(self, "output", LengthSpec)
        check_choice(self, "format", TRACE_FORMATS)
        check_float(self, "time_scale", low=0.0, low_open=True)
        check_float(self, "start", low=0.0)
        check_float(self, "duration", low=0.0, low_open=True, optional=True)
        check_bool(self, "loop")
        check_bool(self, "drop_failed")
        check_str(self, "trace_model", optional=True)
        check_str(self, "trace_log_type", optional=True)
        users = [name for name, uses in (("arrival.process", self.arrival.process == "trace"),
                                         ("prompt.dist", self.prompt.dist == "trace"),
                                         ("output.dist", self.output.dist == "trace")) if uses]
        if users and self.trace is None:
            raise SpecError("<WorkloadSpec>", users[0], "trace",
                            "needs workload.trace, the path of a trace file")
        if self.trace is not None and not users:
            raise SpecError("<WorkloadSpec>", "trace", self.trace,
                            "not used: no arrival process or length dist is 'trace'")
        if self.trace is not None and self.arrival.process != "trace":
            for name in _REPLAY_ONLY:
                if getattr(self, name) != _TRACE_ONLY[name]:
                    raise SpecError("<WorkloadSpec>", name, getattr(self, name),
                                    "only used when arrivals come from the trace "
                                    "(arrival.process = 'trace')")
        if self.time_scale != 1.0 and self.arrival.rate is not None:
            raise SpecError("<WorkloadSpec>", "time_scale", self.time_scale,
                            "give time_scale or arrival.rate, not both: each rescales the trace")
        if self.loop and self.num_requests is None:
            raise SpecError("<WorkloadSpec>", "loop", True,
                            "repeats the trace up to num_requests: give num_requests")

    @property
    def replays_trace(self) -> bool:
        """Whether requests are the trace's rows in order (arrivals from the trace)."""
        return self.arrival.process == "trace"


@dataclass(frozen=True)
class SLOSpec:
    """Latency targets in seconds: time to first token and time per output token (None: no
    target)."""

    ttft_s: float | None = None
    tpot_s: float | None = None

    def __post_init__(self) -> None:
        check_float(self, "ttft_s", low=0.0, low_open=True, optional=True)
        check_float(self, "tpot_s", low=0.0, low_open=True, optional=True)


@dataclass(frozen=True)
class CostSpec:
    """The iteration cost model: `kind` "roofline" scaled by the efficiencies (shares of peak
    FLOP/s and HBM bandwidth reached), or a trained `predictor` ("forest" / "surrogate"); plus a
    CPU overhead per iteration (`cpu_overhead_s`) and per scheduled sequence
    (`cpu_overhead_per_seq_s`), in seconds."""

    kind: str = "roofline"
    gemm_efficiency: float = 0.7
    attention_efficiency: float = 0.5
    memory_efficiency: float = 0.8
    cpu_overhead_s: float = 1e-3
    cpu_overhead_per_seq_s: float = 5e-6
    predictor: str | None = None

    def __post_init__(self) -> None:
        check_choice(self, "kind", COST_KINDS)
        for name in ("gemm_efficiency", "attention_efficiency", "memory_efficiency"):
            check_float(self, name, low=0.0, high=1.0, low_open=True)
        check_float(self, "cpu_overhead_s", low=0.0)
        check_float(self, "cpu_overhead_per_seq_s", low=0.0)
        check_str(self, "predictor", optional=True)
        if self.kind == "roofline" and self.predictor is not None:
            raise SpecError("<CostSpec>", "predictor", self.predictor,
                            "not used by kind 'roofline'")
        if self.kind != "roofline" and self.predictor is None:
            raise SpecError("<CostSpec>", "predictor", None, f"required by kind {self.kind!r}")


MOE_ROUTINGS = ("balanced", "uniform", "zipf", "dirichlet", "trace")
MOE_PLACEMENTS = ("contiguous", "round_robin", "eplb")
MAX_EP = 64
MOE_REPLAYS = ("popularity", "iterations")
MAX_DP = 64


@dataclass(frozen=True)
class MoESpec:
    """How an MoE model's routed experts are priced (`frontier_jax.cost.routing`).

    `routing` "balanced" (the default) prices the expected load of perfectly balanced routing
    with the experts sharded like the rest of the layer. Any other routing samples, per MoE
    layer and per iteration, how the batch's tokens x top_k routed rows fall on the `ep`
    expert-parallel ranks, and the layer waits for the slowest rank: "uniform" popularity,
    "zipf" (expert i's share ~ (i + 1)^-`skew`, in a random order per layer) or "dirichlet"
    (a Dirichlet(`skew`) popularity per layer) or "trace" (each layer's popularity from a
    recorded routing trace, `trace`: :func:`load_routing_counts`). `placement` puts the experts
    on the ranks:
    "contiguous", "round_robin", or "eplb" (the hottest experts replicated on
    `redundant_experts` spare slots, a multiple of `ep`, and replicas packed heaviest first).
    `ep` is 1 (experts sharded over a pipeline stage's GPUs) or the pool's dp x tp (whole
    experts per GPU; with dp = 1 vLLM's expert parallelism without attention data
    parallelism); a pool's own `ep` overrides it (:func:`pool_ep`). `tile`: the
    GroupedGEMM row tile each active expert's rows are padded to. `wait_for_slowest` false
    prices the mean rank load instead (a what-if that shows the straggler penalty).
    `sampled_layers`: how many MoE layers get their own popularity and routing map per
    iteration, each standing for an equal share of the model's MoE layers (the per-step cost
    is O(sampled_layers x ep)); the model's MoE layer count draws every layer. `drift` (0 =
    the popularity is fixed for the run): each layer's rank shares fluctuate over an
    instance's iterations by a log-normal factor of this spread, re-drawn every
    `drift_iterations` iterations and interpolated in between, so successive iterations are
    correlated and iterations a period apart are not (the placement stays the one drawn for
    the run's popularity, as between two EPLB rebalances). `replay` (routing "trace" only):
    "popularity" (default) draws every iteration's map from the trace's summed counts;
    "iterations" replays the trace's own iterations in turn (an instance's iteration t uses
    the trace's iteration t mod its length; experts placed by the summed popularity)."""

    routing: str = "balanced"
    skew: float = 1.0
    placement: str = "contiguous"
    redundant_experts: int = 0
    ep: int = 1
    tile: int = 64
    wait_for_slowest: bool = True
    sampled_layers: int = 4
    trace: str | None = None
    drift: float = 0.0
    drift_iterations: int = 64
    replay: str = "popularity"

    def __post_init__(self) -> None:
        check_choice(self, "routing", MOE_ROUTINGS)
        check_int(self, "sampled_layers", minimum=1, maximum=INT32_MAX)
        check_str(self, "trace", optional=True)
        if (self.routing == "trace") != (self.trace is not None):
            raise SpecError("<MoESpec>", "trace", self.trace,
                            "a routing trace file goes with routing 'trace' (and only with it)")
        check_float(self, "skew", low=0.0)
        check_choice(self, "placement", MOE_PLACEMENTS)
        check_int(self, "redundant_experts", minimum=0, maximum=INT32_MAX)
        check_int(self, "ep", minimum=1, maximum=MAX_EP)
        check_int(self, "tile", minimum=1, maximum=4096)
        check_bool(self, "wait_for_slowest")
        check_float(self, "drift", low=0.0, high=10.0)
        check_choice(self, "replay", MOE_REPLAYS)
        if self.replay == "iterations" and self.routing != "trace":
            raise SpecError("<MoESpec>", "replay", self.replay, "'iterations' replays a routing "
                            "trace's iterations: it needs routing = 'trace'")
        check_int(self, "drift_iterations", minimum=1, maximum=2**29)
        if self.redundant_experts and self.placement != "eplb":
            raise SpecError("<MoESpec>", "redundant_experts", self.redundant_experts,
                            "only used by placement 'eplb'")

    @property
    def sampled(self) -> bool:
        """Returns whether routing maps are sampled (any routing but "balanced")."""
        return self.routing != "balanced"


@dataclass(frozen=True)
class SimSpec:
    """Simulator limits: `max_steps` engine iterations and `queue_capacity` waiting requests per
    replica (None: left to the simulator)."""

    max_steps: int | None = None
    queue_capacity: int | None = None

    def __post_init__(self) -> None:
        check_int(self, "max_steps", minimum=1, optional=True, maximum=INT32_MAX - 1)
        check_int(self, "queue_capacity", minimum=1, optional=True, maximum=INT32_MAX)


@dataclass(frozen=True)
class Scenario:
    """One complete simulation input. `source` is the TOML file it came from (or "<dict>");
    it prefixes every error about it."""

    name: str
    model: ModelSpec
    hardware: HardwareSpec
    parallel: ParallelSpec
    scheduler: SchedulerSpec
    cluster: ClusterSpec
    workload: WorkloadSpec
    slo: SLOSpec
    cost: CostSpec
    sim: SimSpec
    seed: int = 0
    source: str = "<dict>"
    layout: tuple[PoolSpec, ...] = ()
    kv_transfer: KVTransferSpec = KVTransferSpec()
    moe: MoESpec = MoESpec()
    af: AFSpec = AFSpec()

    def __post_init__(self) -> None:
        try:
            self._validate()
        except SpecError as exc:
            raise exc.at(self.source) from None

    def _validate(self) -> None:
        check_str(self, "name")
        check_int(self, "seed", minimum=0)
        for name, cls in (("model", ModelSpec), ("hardware", HardwareSpec),
                          ("parallel", ParallelSpec), ("scheduler", SchedulerSpec),
                          ("cluster", ClusterSpec), ("workload", WorkloadSpec), ("slo", SLOSpec),
                          ("cost", CostSpec), ("sim", SimSpec)):
            _check_type(self, name, cls)
        if not isinstance(self.layout, tuple) or not all(isinstance(p, PoolSpec) for p in self.layout):
            raise SpecError("<Scenario>", "layout", self.layout, "expected a tuple of PoolSpec")
        names = [p.name for p in self.layout]
        if len(set(names)) != len(names):
            raise SpecError("<Scenario>", "layout", names, "pool names must be unique")
        if self.layout and self.parallel != ParallelSpec():
            raise SpecError("<Scenario>", "parallel", self.parallel,
                            "not used with [layout]: give tp and pp per pool (layout.<pool>.tp)")
        if self.layout and self.cluster.replicas != ClusterSpec().replicas:
            raise SpecError("<Scenario>", "cluster.replicas", self.cluster.replicas,
                            "not used with [layout]: give count per pool (layout.<pool>.count)")
        heads = self.model.num_attention_heads
        layers = self.model.num_hidden_layers
        for pool in self.pools:
            where = _pool_field(self, pool)
            if heads % pool.tp:
                raise SpecError("<Scenario>", where("tp"), pool.tp,
                                f"must divide {self.model.name}'s num_attention_heads = {heads}")
            if pool.pp > layers:
                raise SpecError("<Scenario>", where("pp"), pool.pp,
                                f"must be <= {self.model.name}'s num_hidden_layers = {layers}")
        if self.num_instances < 1:
            raise SpecError("<Scenario>", "layout", {p.name: p.count for p in self.layout},
                            "at least one instance (a pool count >= 1)")
        _check_type(self, "kv_transfer", KVTransferSpec)
        _check_moe(self)
        _check_af(self)
        roles = {p.role for p in self.pools}
        if roles & set(PD_ROLES):
            counts = {r: sum(p.count for p in self.pools if p.role == r) for r in POOL_ROLES}
            if "colocated" in roles:
                raise SpecError("<Scenario>", "layout", sorted(roles),
                                "co-located pools or prefill + decode pools, not both")
            for role in PD_ROLES:
                if counts[role] < 1:
                    raise SpecError("<Scenario>", "layout", counts,
                                    f"at least one {role} instance in a prefill/decode layout")
        elif self.kv_transfer != KVTransferSpec():
            raise SpecError("<Scenario>", "kv_transfer", _fields_dict(self.kv_transfer),
                            "only used by a prefill/decode layout ([prefill] and [decode] pools)")

    @property
    def pools(self) -> tuple[PoolSpec, ...]:
        """Returns the layout's pools: the [layout] tables, or the one co-located pool that
        [parallel], [cluster] replicas, [hardware] and [scheduler] describe."""
        if self.layout:
            return self.layout
        return (PoolSpec(SHORTHAND_POOL, self.hardware, self.scheduler, "colocated",
                         self.cluster.replicas, self.parallel.tp, self.parallel.pp,
                         self.parallel.dp),)

    @property
    def disaggregated(self) -> bool:
        """Returns whether the layout has prefill and decode pools (PD disaggregation)."""
        return any(p.role in PD_ROLES for p in self.pools)

    @property
    def num_instances(self) -> int:
        """Returns the instances of all pools."""
        return sum(p.count for p in self.pools)

    @property
    def num_gpus(self) -> int:
        """Returns the GPUs of the whole cluster (:func:`layout_gpus` of the pools; an AF
        group counts its attention instances and its FFN side)."""
        af = self.af
        if af.enabled:
            return layout_gpus((p.count, p.tp, p.pp, p.dp * af.attention, af.ffn_gpus) for p in self.pools)
        return layout_gpus((p.count, p.tp, p.pp, p.dp) for p in self.pools)


def _check_af(s: Scenario) -> None:
    """[af] against the layout, the model and the cost tier: one clear line each."""
    af = s.af
    _check_type(s, "af", AFSpec)
    if af == AFSpec():
        return
    if not af.enabled:
        raise SpecError("<Scenario>", "af.ffn", af.ffn,
                        "at least 1 FFN instance per group to disaggregate attention and FFN "
                        "(leave [af] out for co-located replicas)")
    if s.layout:
        raise SpecError("<Scenario>", "af", _fields_dict(af),
                        "AF groups are built from [parallel] and [cluster] replicas, not a [layout]")
    if s.parallel.pp != 1 or s.parallel.dp != 1:
        raise SpecError("<Scenario>", "parallel", _fields_dict(s.parallel),
                        "an AF group's attention instances take tp only (pp = dp = 1): the FFN "
                        "side is its own stage")
    if s.moe.sampled:
        if s.moe.ep != af.ffn_gpus:
            raise SpecError("<Scenario>", "moe.ep", s.moe.ep,
                            f"= af.ffn x af.ffn_tp = {af.ffn_gpus} with [af]: the experts live on "
                            "the FFN side's GPUs, one EP rank each")
        moe_layers = s.model.num_hidden_layers - s.model.dense_layers
        if moe_layers % s.moe.sampled_layers:
            raise SpecError("<Scenario>", "moe.sampled_layers", s.moe.sampled_layers,
                            f"must divide {s.model.name}'s {moe_layers} MoE layers with [af] (each "
                            "sampled layer stands for a whole number of the graph's layers)")
    if s.cost.kind != "roofline":
        raise SpecError("<Scenario>", "cost.kind", s.cost.kind, "'roofline' with [af]")
    from frontier_jax.cost.af import LAYER_BITS

    if s.model.num_hidden_layers >= 2**LAYER_BITS:
        raise SpecError("<Scenario>", "af", _fields_dict(af),
                        f"models of up to {2**LAYER_BITS - 1} layers with [af]; "
                        f"{s.model.name} has {s.model.num_hidden_layers}")
    if s.model.is_moe:
        if s.model.num_experts % af.ffn_gpus:
            raise SpecError("<Scenario>", "af.ffn_tp", af.ffn_tp,
                            f"ffn x ffn_tp = {af.ffn_gpus} must divide {s.model.name}'s "
                            f"{s.model.num_experts} experts (they are spread over the FFN GPUs)")
    elif s.model.intermediate_size % af.ffn_tp:
        raise SpecError("<Scenario>", "af.ffn_tp", af.ffn_tp,
                        f"must divide {s.model.name}'s intermediate_size = {s.model.intermediate_size}")
    sched = s.scheduler
    caps = max(sched.max_num_seqs, sched.max_num_batched_tokens)
    if af.attention * caps > INT32_MAX:
        raise SpecError("<Scenario>", "af.attention", af.attention,
                        f"attention x the scheduler caps ({caps}) must stay under 2**31")
    if af.attention > 1 and not sched.chunked_prefill:
        raise SpecError("<Scenario>", "af.attention", af.attention,
                        "more than one attention instance per group needs chunked_prefill = true "
                        "(one scheduler holds the group's; a prompt's chunk fits one instance's budget)")


def _check_moe(s: Scenario) -> None:
    """[moe] against the model and the pools: one clear line for a layout that cannot run."""
    moe, m = s.moe, s.model
    _check_type(s, "moe", MoESpec)
    for pool in s.pools:
        if pool.ep is not None and not (m.is_moe and moe.sampled):
            raise SpecError(s.source, _pool_field(s, pool)("ep"), pool.ep,
                            "a pool's EP degree needs an MoE model and a sampled [moe] routing "
                            "(uniform, zipf, dirichlet or trace)")
        if pool.dp == 1:
            continue
        where = _pool_field(s, pool)("dp")
        if not m.is_moe:
            raise SpecError(s.source, where, pool.dp,
                            f"attention data parallelism is for MoE models; {m.name} is dense "
                            "(its data-parallel ranks are replicas: use count / cluster.replicas)")
        if not moe.sampled:
            raise SpecError(s.source, where, pool.dp,
                            "attention data parallelism is priced from sampled routing maps: set "
                            "[moe] routing = 'uniform' (or zipf, dirichlet, trace)")
        caps = max(pool.scheduler.max_num_seqs, pool.scheduler.max_num_batched_tokens)
        if pool.dp * caps > INT32_MAX:
            raise SpecError(s.source, where, pool.dp,
                            f"dp x the scheduler caps ({caps}) must stay under 2**31 (the "
                            "instance's one scheduler holds every rank's)")
        if not pool.scheduler.chunked_prefill:
            raise SpecError(s.source, where, pool.dp,
                            "attention data parallelism needs chunked_prefill = true (one "
                            "scheduler prices the DP ranks; a prompt's chunk fits one rank's budget)")
    if moe == MoESpec():
        return
    if not m.is_moe:
        raise SpecError("<Scenario>", "moe", _fields_dict(moe),
                        f"{m.name} is a dense model (num_experts = 0): [moe] is for MoE models")
    if not moe.sampled and (moe.ep != 1 or moe.placement != "contiguous" or moe.redundant_experts
                            or moe.drift):
        raise SpecError("<Scenario>", "moe.routing", moe.routing,
                        "EP degree, placement, redundant experts and drift need a sampled routing "
                        "(uniform, zipf or dirichlet); 'balanced' prices the mean load")
    moe_layers = m.num_hidden_layers - m.dense_layers
    if moe.sampled_layers > moe_layers:
        raise SpecError("<Scenario>", "moe.sampled_layers", moe.sampled_layers,
                        f"must be <= {m.name}'s MoE layers = {moe_layers}")
    if moe.trace is not None:
        try:
            counts = load_routing_counts(moe.trace)
        except (OSError, ValueError, KeyError) as exc:
            raise SpecError("<Scenario>", "moe.trace", moe.trace, f"a readable routing trace ({exc})") from None
        if moe.replay == "iterations" and moe.drift:
            raise SpecError("<Scenario>", "moe.drift", moe.drift,
                            "replaying a trace's iterations and drifting its popularity do not mix")
        if counts.shape != (moe_layers, m.num_experts):
            raise SpecError("<Scenario>", "moe.trace", moe.trace,
                            f"has {counts.shape[0]} MoE layers x {counts.shape[1]} experts; "
                            f"{m.name} has {moe_layers} x {m.num_experts}")
    for pool in s.pools:
        ep = pool_ep(s, pool)
        field = "moe.ep" if pool.ep is None else _pool_field(s, pool)("ep")
        if m.num_experts % ep:
            raise SpecError("<Scenario>", field, ep,
                            f"must divide {m.name}'s num_experts = {m.num_experts}")
        if moe.redundant_experts % ep:
            raise SpecError("<Scenario>", "moe.redundant_experts", moe.redundant_experts,
                            f"must be a multiple of {field} = {ep} (the same spare slots on every rank)")
        if pool.count and not s.af.enabled and ep not in (1, pool.tp * pool.dp):
            span = f"dp x tp = {pool.dp * pool.tp}" if pool.dp > 1 else f"tp = {pool.tp}"
            raise SpecError("<Scenario>", field, ep,
                            f"must be 1 or pool {pool.name!r}'s {span} (EP spans all the GPUs of "
                            "an instance's pipeline stage)")


def pool_ep(s: Scenario, pool: PoolSpec) -> int:
    """Returns the EP degree of `pool`'s instances: the pool's own `ep`, else [moe] ep."""
    return s.moe.ep if pool.ep is None else pool.ep


@functools.lru_cache(maxsize=16)
def load_routing_counts(path: str) -> Any:
    """Routed rows per MoE layer and expert, float64 [layers, experts], from a routing trace
    (:func:`load_routing_iterations` summed over its iterations). Every layer must route some
    rows. Raises ValueError, KeyError or OSError."""
    import numpy as np

    c = load_routing_iterations(path).sum(axis=0)
    if np.any(c.sum(axis=1) <= 0):
        raise ValueError("every layer must route some rows")
    c.setflags(write=False)
    return c


@functools.lru_cache(maxsize=16)
def load_routing_iterations(path: str) -> Any:
    """Routed rows per iteration, MoE layer and expert, float64 [iterations, layers, experts],
    from a routing trace: a CSV with columns `layer`, `expert`, `tokens` and optionally
    `iteration` (0-based indices; rows of the same cell are summed; without `iteration`, one
    iteration) or an NPZ with an array `counts` of shape [layers, experts] (one iteration) or
    [iterations, layers, experts]. Raises ValueError, KeyError or OSError."""
    import numpy as np

    p = Path(path)
    if p.suffix == ".npz":
        with np.load(p) as z:
            c = np.asarray(z["counts"], dtype=np.float64)
        c = c[None] if c.ndim == 2 else c
        if c.ndim != 3:
            raise ValueError(f"'counts' has {c.ndim} axes; expected [layers, experts] or [iterations, layers, experts]")
    else:
        rows = np.genfromtxt(p, delimiter=",", names=True, dtype=None, encoding="utf-8")
        names = set(rows.dtype.names or ())
        missing = {"layer", "expert", "tokens"} - names
        if missing:
            raise ValueError(f"missing column(s) {', '.join(sorted(missing))}; expected layer,expert,tokens")
        col = lambda k: np.atleast_1d(rows[k]).astype(np.int64)  # noqa: E731
        layer, expert = col("layer"), col("expert")
        it = col("iteration") if "iteration" in names else np.zeros_like(layer)
        tokens = np.atleast_1d(rows["tokens"]).astype(np.float64)
        if layer.min() < 0 or expert.min() < 0 or it.min() < 0:
            raise ValueError("negative iteration, layer or expert index")
        c = np.zeros((it.max() + 1, layer.max() + 1, expert.max() + 1))
        np.add.at(c, (it, layer, expert), tokens)
    if not np.all(np.isfinite(c)) or c.min() < 0:
        raise ValueError("counts must be finite and >= 0")
    c.setflags(write=False)
    return c


def load_scenario(path: str | Path) -> Scenario:
    """Returns the validated Scenario in the TOML file at `path`; relative paths inside it are
    read from the file's folder. Raises SpecError for an unreadable file or any invalid value."""
    path = Path(path)
    source = str(path)
    data = read_toml(path, "expected a TOML scenario file")
    return scenario_from_dict(data, source=source, base_dir=path.parent)


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """Returns the tables of the TOML file at `path` (UTF-8, a leading BOM allowed); raises a
    SpecError with `what` as its allowed part for a missing, unreadable or invalid file."""
    source = str(path)
    try:
        return tomllib.loads(read_spec_text(path))
    except SpecError:
        raise
    except FileNotFoundError:
        raise SpecError(source, "<file>", source, "file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(source, "<file>", str(exc), what) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # huge integer, deep nesting
        raise SpecError(source, "<file>", f"{type(exc).__name__}: {exc}",
                        f"{what} (integers under 4300 digits, nesting under ~900 levels)") from None


def scenario_from_dict(
    d: Mapping[str, Any], source: str = "<dict>", base_dir: str | Path | None = None
) -> Scenario:
    """Returns the validated Scenario described by `d` (the TOML layout as nested dicts).
    `source` names `d` in errors; relative file paths are read from `base_dir` (default: the
    current directory)."""
    if not isinstance(d, Mapping):
        raise SpecError(source, "<root>", d, "expected a table")
    check_keys(d, _TOP_KEYS, source, "", required=("model", "hardware", "workload"))
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    default_name = "scenario" if source.startswith("<") else Path(source).stem
    tables = {key: _build(cls, _table(d, key, source), source, key)
              for key, cls in _PLAIN_TABLES.items()}
    if tables["moe"].trace is not None:  # relative to the scenario file, like workload.trace
        tables["moe"] = replace(tables["moe"], trace=str(_resolve_file(tables["moe"].trace, base,
                                                                       source, "moe.trace")))
    hardware = _hardware_from_table(_table(d, "hardware", source), source)
    d = _pd_shorthand(d, source)
    layout = ()
    if "layout" in d:
        layout = _layout_from_table(d, hardware, tables["scheduler"], source)
    kv = _build(KVTransferSpec, _table(d, "kv_transfer", source), source, "kv_transfer")
    return Scenario(
        name=d.get("name", default_name),
        model=_model_from_table(_table(d, "model", source), source, base),
        hardware=hardware,
        workload=_workload_from_table(_table(d, "workload", source), source, base),
        seed=d.get("seed", 0),
        source=source,
        layout=layout,
        kv_transfer=kv,
        **tables,
    )


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    """Returns `s` in the TOML layout as nested dicts (None values left out; a preset model or
    GPU as its preset name plus the fields that differ), such that
    `scenario_from_dict(scenario_to_dict(s), s.source) == s`."""
    workload = s.workload
    d = {
        "name": s.name,
        "seed": s.seed,
        "model": _preset_dict(s.model, MODEL_PRESETS.get(s.model.name)),
        "hardware": _hardware_dict(s.hardware),
        **{key: _fields_dict(getattr(s, key)) for key, cls in _PLAIN_TABLES.items()
           if key not in ("moe", "af") or getattr(s, key) != cls()},  # [moe], [af] only when set
        "workload": {
            **{k: v for k, v in _fields_dict(workload).items()
               if k not in ("arrival", "prompt", "output") and _TRACE_ONLY.get(k, object()) != v},
            "arrival": _fields_dict(workload.arrival),
            "prompt": _fields_dict(workload.prompt),
            "output": _fields_dict(workload.output),
        },
    }
    if s.layout:
        del d["parallel"], d["cluster"]["replicas"]
        d["layout"] = {p.name: _pool_dict(p, s) for p in s.layout}
    if s.disaggregated or s.kv_transfer != KVTransferSpec():
        d["kv_transfer"] = _fields_dict(s.kv_transfer)
    return d


def with_overrides(s: Scenario, overrides: Mapping[str, Any]) -> Scenario:
    """Returns a new validated Scenario: `s` with each dotted key of `overrides` (such as
    "scheduler.max_num_seqs" or "workload.prompt" with a whole table) set to its value.
    "model.preset", "model.config" and "hardware.preset" replace the whole table (other keys of
    that table in `overrides` then apply on top); "prefill.replicas", "decode.tp" ... are the
    pools' paths "layout.prefill.count", "layout.decode.tp" (:func:`pool_path`). Raises SpecError
    like `scenario_from_dict`."""
    if not isinstance(overrides, Mapping):
        raise SpecError(s.source, "<overrides>", overrides, "expected a table of dotted keys")
    for key in overrides:
        if not isinstance(key, str) or not all(key.split(".")):
            raise SpecError(s.source, "<overrides>", key,
                            "expected a dotted scenario key such as 'scheduler.max_num_seqs'")
    d = scenario_to_dict(s)
    overrides = {pool_path(k): v for k, v in overrides.items()}
    for key in sorted(overrides, key=lambda k: k not in _TABLE_RESETS):
        value = overrides[key]
        *parents, leaf = key.split(".")
        if key in _TABLE_RESETS:
            d[parents[0]] = {leaf: value}
            continue
        node = d
        for i, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SpecError(s.source, ".".join(parents[: i + 1]), node,
                                f"is not a table, so {key!r} cannot be set")
        node[leaf] = value
    base_dir = None if s.source.startswith("<") else Path(s.source).parent
    return scenario_from_dict(d, source=s.source, base_dir=base_dir)


_PD_KEYS = ("replicas", "tp", "pp", "dp", "ep", "hardware", "scheduler")


def pool_path(key: str) -> str:
    """Returns the [layout] path of a dotted key: ``prefill.X`` / ``decode.X`` (the PD shorthand
    tables) are ``layout.prefill.X`` / ``layout.decode.X``, with ``replicas`` as ``count``;
    any other key is returned as it is."""
    head, _, rest = key.partition(".")
    if head not in PD_ROLES or not rest:
        return key
    field, _, sub = rest.partition(".")
    return f"layout.{head}." + ("count" if field == "replicas" else field) + (f".{sub}" if sub else "")


def _pd_shorthand(d: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """`d` with its [prefill] / [decode] tables (replicas, tp, pp, dp, ep, hardware, scheduler) as the
    [layout] pools "prefill" and "decode"."""
    given = [r for r in PD_ROLES if r in d]
    if not given:
        return d
    if "layout" in d:
        raise SpecError(source, given[0], d[given[0]],
                        "give [prefill] / [decode] or [layout] pools, not both")
    missing = [r for r in PD_ROLES if r not in d]
    if missing:
        raise SpecError(source, missing[0], None, f"a prefill/decode layout needs [{missing[0]}] "
                        "(replicas, tp, pp, hardware, scheduler) beside "
                        f"[{given[0]}]")
    layout = {}
    for role in PD_ROLES:
        table = _table(d, role, source)
        check_keys(table, _PD_KEYS, source, role, required=("replicas",))
        layout[role] = {"role": role, **{("count" if k == "replicas" else k): v
                                          for k, v in table.items()}}
    out = {k: v for k, v in d.items() if k not in PD_ROLES}
    out["layout"] = layout
    return out


def kv_link(s: Scenario) -> tuple[float, float]:
    """Returns (bandwidth in bytes/s per GPU, latency in s) of a PD layout's KV links:
    [kv_transfer] bandwidth / latency_s, else the prefill pool's hardware link of that kind
    (network: net_bw, net_latency_s; nvlink: nvlink_bw, nvlink_latency_s)."""
    kv = s.kv_transfer
    hw = next((p.hardware for p in s.pools if p.role == "prefill"), s.hardware)
    bw, lat = ((hw.net_bw, hw.net_latency_s) if kv.link == "network"
               else (hw.nvlink_bw, hw.nvlink_latency_s))
    return (kv.bandwidth if kv.bandwidth is not None else bw,
            kv.latency_s if kv.latency_s is not None else lat)


def _one_pool(s: Scenario, pool: PoolSpec | None) -> PoolSpec:
    if pool is not None:
        return pool
    if len(s.pools) != 1:
        raise ValueError(f"{s.source}: the layout has {len(s.pools)} pools; name one")
    return s.pools[0]


def kv_bytes_per_token_per_gpu(s: Scenario, pool: PoolSpec | None = None) -> int:
    """Returns the KV-cache bytes one token takes on one GPU of an instance of `pool` (default:
    the layout's only pool): 2 x ceil(layers / pp) x ceil(kv_heads / tp) x head_dim x
    dtype_bytes (KV heads are replicated when tp > kv_heads)."""
    m, par = s.model, _one_pool(s, pool)
    return (2 * math.ceil(m.num_hidden_layers / par.pp)
            * math.ceil(m.num_key_value_heads / par.tp) * m.head_dim * m.dtype_bytes)


def kv_capacity_blocks(s: Scenario, pool: PoolSpec | None = None) -> int:
    """Returns the KV-cache blocks of one instance of `pool` (default: the layout's only pool;
    each block `block_size` tokens; every GPU of a DP rank holds its share of the rank's blocks):
    dp x floor((hbm_bytes x gpu_memory_utilization - weight bytes per GPU)
               / (block_size x kv_bytes_per_token_per_gpu)), and 0 when the weights leave no room."""
    pool = _one_pool(s, pool)
    free_bytes = _usable_bytes(pool) - _weight_bytes_per_gpu(s, pool)
    block_bytes = pool.scheduler.block_size * kv_bytes_per_token_per_gpu(s, pool)
    return attention_ranks(s, pool) * max(0, math.floor(free_bytes / block_bytes))  # each rank its own KV


def attention_ranks(s: Scenario, pool: PoolSpec) -> int:
    """Returns the attention ranks one instance of `pool` schedules as one: its DP ranks, or an
    AF group's attention instances. Each has the scheduler caps and KV given; the instance's
    one scheduler holds their sum."""
    return pool.dp * (s.af.attention if s.af.enabled else 1)


def ffn_hardware(s: Scenario) -> HardwareSpec:
    """The GPU of an AF group's FFN side: [af] ffn_hardware's preset, else [hardware]."""
    name = s.af.ffn_hardware
    return s.hardware if name is None or name == s.hardware.name else HARDWARE_PRESETS[name]


def ffn_weight_bytes_per_gpu(s: Scenario) -> float:
    """An AF group's FFN GPU: a dense MLP sharded over one FFN instance's `ffn_tp` GPUs (the
    instances split the tokens), or the routed experts spread over all `ffn x ffn_tp` FFN GPUs
    and the rest of the MLP (router, shared expert, dense first layers) over `ffn_tp`."""
    m, af = s.model, s.af
    experts = m.routed_expert_bytes()
    return (m.ffn_weight_bytes() - experts) / af.ffn_tp + experts / af.ffn_gpus


def check_feasible(s: Scenario) -> None:
    """Returns None when, in every pool with instances, each GPU of an instance holds its share
    of the weights and at least one KV block within hbm_bytes x gpu_memory_utilization, and
    (PD) every decode instance can hold the longest request the workload can draw; raises
    SpecError saying how many GB are missing, or which request does not fit, otherwise.
    (A co-located replica that cannot hold a request rejects it at its arrival instead.)"""
    for pool in s.pools:
        if pool.count:
            _check_pool_feasible(s, pool)
    if s.af.enabled:
        hw = ffn_hardware(s)
        need = ffn_weight_bytes_per_gpu(s)
        usable = hw.hbm_bytes * s.pools[0].scheduler.gpu_memory_utilization
        if need > usable:
            raise SpecError(s.source, "af.ffn_tp", s.af.ffn_tp,
                            f"the FFN weights need {need / 1e9:.1f} GB per FFN GPU but "
                            f"{hw.name} leaves {usable / 1e9:.1f} GB: more ffn or ffn_tp "
                            "(or a larger af.ffn_hardware)")
    longest = max_request_tokens(s.workload)
    for pool in s.pools:
        if pool.role != "decode" or not pool.count or longest is None:
            continue
        cap = kv_capacity_blocks(s, pool) * pool.scheduler.block_size
        if longest > cap:
            raise SpecError(s.source, _pool_field(s, pool)("scheduler.gpu_memory_utilization"),
                            pool.scheduler.gpu_memory_utilization,
                            f"a request can have up to {longest} tokens (prompt + output maxima) but "
                            f"a {pool.name} instance holds {cap} tokens of KV: give it more memory "
                            "or bound the workload's lengths")


def max_request_tokens(wl: WorkloadSpec) -> int | None:
    """Returns the most tokens (prompt + output) one request of workload `wl` can have, or None
    when a length is unbounded (no `max`) or comes from a trace."""
    parts = [_max_length(wl.prompt), _max_length(wl.output)]
    return None if None in parts else sum(parts)


def _max_length(ls: LengthSpec) -> int | None:
    top = {"fixed": ls.value, "uniform": ls.high, "zipf": ls.high}.get(ls.dist)
    bound = ls.max
    if top is not None:
        top = max(ls.min, round(top * ls.scale))
        bound = top if bound is None else min(bound, top)
    return bound if ls.dist != "trace" or ls.max is not None else None


def _check_pool_feasible(s: Scenario, pool: PoolSpec) -> None:
    usable, weights = _usable_bytes(pool), _weight_bytes_per_gpu(s, pool)
    sched, field = pool.scheduler, _pool_field(s, pool)
    named = f"pool {pool.name!r}: " if s.layout else ""
    dp = f", dp={pool.dp}" if pool.dp > 1 else ""
    where = (f"{named}{pool.hardware.name} x {pool.gpus_per_instance} (tp={pool.tp}, pp={pool.pp}{dp}) "
             f"with gpu_memory_utilization={sched.gpu_memory_utilization:g}")
    if weights > usable:
        raise SpecError(s.source, "model", s.model.name,
                        f"weights need {weights / 1e9:.1f} GB per GPU but {where} leaves "
                        f"{usable / 1e9:.1f} GB: {(weights - usable) / 1e9:.1f} GB missing")
    blocks = kv_capacity_blocks(s, pool)
    if blocks > INT32_MAX:
        raise SpecError(s.source, field("scheduler.block_size"), sched.block_size,
                        f"{blocks} KV blocks per replica on {where} is over the "
                        f"simulator's limit of 2**31 - 1: expected a larger block_size")
    if blocks < 1:
        block_gb = sched.block_size * kv_bytes_per_token_per_gpu(s, pool) / 1e9
        raise SpecError(s.source, field("scheduler.gpu_memory_utilization"),
                        sched.gpu_memory_utilization,
                        f"no room for one KV block ({block_gb:.4f} GB) after the weights on {where}")


def _pool_field(s: Scenario, pool: PoolSpec):
    """Returns name -> the dotted field of `pool`'s setting `name` in the scenario's TOML
    (``parallel.tp``, ``scheduler.block_size`` for the shorthand; ``layout.<pool>.tp`` ...)."""
    if s.layout:
        return lambda name: f"layout.{pool.name}.{name}"
    return lambda name: name if "." in name else f"parallel.{name}"


_PLAIN_TABLES: dict[str, type] = {
    "parallel": ParallelSpec,
    "scheduler": SchedulerSpec,
    "cluster": ClusterSpec,
    "slo": SLOSpec,
    "cost": CostSpec,
    "sim": SimSpec,
    "moe": MoESpec,
    "af": AFSpec,
}
_TOP_KEYS = ("name", "seed", "model", "hardware", "workload", "layout", "kv_transfer", *PD_ROLES,
             *_PLAIN_TABLES)
_POOL_KEYS = ("role", "count", "tp", "pp", "dp", "ep", "hardware", "scheduler")
_MODEL_FIELDS = tuple(f.name for f in fields(ModelSpec))
_TABLE_RESETS = ("model.preset", "model.config", "hardware.preset")


def _usable_bytes(pool: PoolSpec) -> float:
    return pool.hardware.hbm_bytes * pool.scheduler.gpu_memory_utilization


def _weight_bytes_per_gpu(s: Scenario, pool: PoolSpec) -> float:
    """Every weight sharded over the instance's GPUs, except with attention data parallelism
    (dp > 1): each DP rank holds all but the routed experts (sharded over its tp x pp GPUs),
    and the routed experts are spread over all dp x tp x pp GPUs. An AF group's attention GPUs
    hold all but the MLP / experts (:func:`ffn_weight_bytes_per_gpu` has the FFN side's)."""
    m = s.model
    if s.af.enabled:
        return (m.weight_bytes() - m.ffn_weight_bytes()) / (pool.tp * pool.pp)
    spare = 0.0  # EPLB's redundant experts: extra expert copies spread over the EP ranks
    if m.is_moe and s.moe.redundant_experts:
        spare = m.routed_expert_bytes() / m.num_experts * s.moe.redundant_experts / pool.gpus_per_instance
    if pool.dp == 1:
        return m.weight_bytes() / pool.gpus_per_instance + spare
    experts = m.routed_expert_bytes()
    return (m.weight_bytes() - experts) / (pool.tp * pool.pp) + experts / pool.gpus_per_instance + spare


def _check_type(obj: object, name: str, cls: type) -> None:
    value = getattr(obj, name)
    if not isinstance(value, cls):
        raise SpecError(f"<{type(obj).__name__}>", name, value, f"expected a {cls.__name__}")


def _required(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls)
                 if f.default is MISSING and f.default_factory is MISSING)


def _table(parent: Mapping[str, Any], key: str, source: str, prefix: str = "") -> Mapping[str, Any]:
    value = parent.get(key, {})
    if not isinstance(value, Mapping):
        dotted = f"{prefix}.{key}" if prefix else key
        raise SpecError(source, dotted, value, "expected a table")
    return value


def _build(cls: type, table: Mapping[str, Any], source: str, prefix: str) -> Any:
    check_keys(table, [f.name for f in fields(cls)], source, prefix, required=_required(cls))
    try:
        return cls(**table)
    except SpecError as exc:
        raise exc.at(source, prefix) from None


def _resolve_file(value: Any, base: Path, source: str, field: str) -> Path:
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise SpecError(source, field, value, "expected a file path")
    try:
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base / path
        found = path.is_file()
    except (OSError, RuntimeError, ValueError) as exc:  # name too long, unknown ~user
        raise SpecError(source, field, value, f"expected a readable file path ({exc})") from None
    if not found:
        raise SpecError(source, field, value, f"file not found (looked for {path})")
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise SpecError(source, field, value, f"expected a readable file path ({exc})") from None


def _model_from_table(table: Mapping[str, Any], source: str, base: Path) -> ModelSpec:
    check_keys(table, ("preset", "config", *_MODEL_FIELDS), source, "model")
    given = {k: v for k, v in table.items() if k not in ("preset", "config")}
    if "preset" in table and "config" in table:
        raise SpecError(source, "model.config", table["config"], "give preset or config, not both")
    if "preset" in table:
        name = table["preset"]
        key = name.strip().lower() if isinstance(name, str) else ""
        if key not in MODEL_PRESETS:
            presets = sorted(MODEL_PRESETS)
            raise SpecError(source, "model.preset", name,
                            f"unknown model{did_you_mean(key, presets)}; {one_of(presets)}")
        start: ModelSpec | None = MODEL_PRESETS[key]
    elif "config" in table:
        start = load_model_config(_resolve_file(table["config"], base, source, "model.config"))
    else:
        check_keys(given, _MODEL_FIELDS, source, "model", required=_required(ModelSpec))
        start = None
    try:
        return ModelSpec(**given) if start is None else replace(start, **given)
    except SpecError as exc:
        raise exc.at(source, "model") from None


def _hardware_from_table(table: Mapping[str, Any], source: str,
                         prefix: str = "hardware") -> HardwareSpec:
    check_keys(table, ("preset", *HARDWARE_FIELDS), source, prefix)
    if "preset" not in table:
        return _build(HardwareSpec, table, source, prefix)
    overrides = {k: v for k, v in table.items() if k != "preset"}
    try:
        return get_hardware(table["preset"], overrides)
    except SpecError as exc:
        raise exc.at(source, prefix) from None


def _layout_from_table(d: Mapping[str, Any], hardware: HardwareSpec, scheduler: SchedulerSpec,
                       source: str) -> tuple[PoolSpec, ...]:
    """The pools of a [layout] table; [hardware] and [scheduler] are every pool's defaults."""
    layout = _table(d, "layout", source)
    if not layout:
        raise SpecError(source, "layout", {}, "at least one pool table, e.g. [layout.main] count = 2")
    if "parallel" in d:
        raise SpecError(source, "parallel", d["parallel"],
                        "not used with [layout]: give tp and pp per pool (layout.<pool>.tp)")
    if "replicas" in _table(d, "cluster", source):
        raise SpecError(source, "cluster.replicas", d["cluster"]["replicas"],
                        "not used with [layout]: give count per pool (layout.<pool>.count)")
    pools = []
    for name, table in layout.items():
        prefix = key_path("layout", name)
        if not _BARE_NAME.fullmatch(name):
            raise SpecError(source, prefix, name,
                            "a pool name of letters, digits, '_' and '-' (it is a dotted-path key)")
        if not isinstance(table, Mapping):
            raise SpecError(source, prefix, table, "expected a pool table (role, count, tp, pp, ...)")
        check_keys(table, _POOL_KEYS, source, prefix, required=("count",))
        hw = table.get("hardware")
        if hw is None:
            pool_hw = hardware
        elif isinstance(hw, str):
            pool_hw = _hardware_from_table({"preset": hw}, source, f"{prefix}.hardware")
        else:  # a table: a preset with overrides, or overrides of the scenario's [hardware]
            hw_t = _table(table, "hardware", source, prefix)
            if "preset" not in hw_t:
                hw_t = {**_hardware_dict(hardware), **hw_t}
            pool_hw = _hardware_from_table(hw_t, source, f"{prefix}.hardware")
        overrides = _table(table, "scheduler", source, prefix)
        check_keys(overrides, [f.name for f in fields(SchedulerSpec)], source, f"{prefix}.scheduler")
        try:
            sched = replace(scheduler, **overrides)
        except SpecError as exc:
            raise exc.at(source, f"{prefix}.scheduler") from None
        given = {k: table[k] for k in ("role", "count", "tp", "pp", "dp", "ep") if k in table}
        try:
            pools.append(PoolSpec(name=name, hardware=pool_hw, scheduler=sched,
                                  scheduler_given=tuple(sorted(overrides)),
                                  hardware_given=hw is not None, **given))
        except SpecError as exc:
            raise exc.at(source, prefix) from None
    return tuple(pools)


def _workload_from_table(table: Mapping[str, Any], source: str, base: Path) -> WorkloadSpec:
    check_keys(table, [f.name for f in fields(WorkloadSpec)], source, "workload")
    parts = {key: _build(cls, _table(table, key, source, "workload"), source, f"workload.{key}")
             for key, cls in (("arrival", ArrivalSpec), ("prompt", LengthSpec),
                              ("output", LengthSpec)) if key in table}
    rest = {k: v for k, v in table.items() if k not in parts}
    if rest.get("trace") is not None:
        rest["trace"] = str(_resolve_file(rest["trace"], base, source, "workload.trace"))
    try:
        return WorkloadSpec(**rest, **parts)
    except SpecError as exc:
        raise exc.at(source, "workload") from None


def _fields_dict(obj: object) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)
            if getattr(obj, f.name) is not None}


def _hardware_dict(hw: HardwareSpec) -> dict[str, Any]:
    return _preset_dict(hw, HARDWARE_PRESETS.get(hw.name))


def _pool_dict(pool: PoolSpec, s: Scenario) -> dict[str, Any]:
    """A pool in the TOML layout: hardware and scheduler fields where the pool sets them (or
    they differ from the scenario's [hardware] and [scheduler])."""
    out: dict[str, Any] = {"role": pool.role, "count": pool.count, "tp": pool.tp, "pp": pool.pp}
    if pool.dp != 1:
        out["dp"] = pool.dp
    if pool.ep is not None:
        out["ep"] = pool.ep
    if pool.hardware_given or pool.hardware != s.hardware:
        out["hardware"] = _hardware_dict(pool.hardware)
    changed = {f.name: getattr(pool.scheduler, f.name) for f in fields(SchedulerSpec)
               if f.name in pool.scheduler_given
               or getattr(pool.scheduler, f.name) != getattr(s.scheduler, f.name)}
    if changed:
        out["scheduler"] = changed
    return out


def _preset_dict(
    obj: ModelSpec | HardwareSpec, preset: ModelSpec | HardwareSpec | None
) -> dict[str, Any]:
    if preset is None:
        return _fields_dict(obj)
    changed = {f.name: getattr(obj, f.name) for f in fields(obj)
               if getattr(obj, f.name) != getattr(preset, f.name)}
    return {"preset": preset.name, **changed}
