"""GPU specs: `HardwareSpec`, published presets and lookup with overrides.

Memory sizes are the marketed decimal figures (80 GB = 80e9 bytes, 141 GB = 141e9 bytes), which
is a little less than the cards report (an "80 GB" A100 has 80 GiB = 85.9e9 bytes): KV capacity
comes out slightly conservative. Link bandwidths are per GPU and per direction (NVLink 600 GB/s
bidirectional on an A100 is 300e9 here). Peak FLOP/s are dense bf16 tensor-core figures (no
sparsity). Inter-node bandwidth is one NIC per GPU: HDR InfiniBand 200 Gb/s = 25e9 B/s for
Ampere, NDR 400 Gb/s = 50e9 B/s for Hopper.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from frontier_jax.spec.errors import (
    INT32_MAX,
    SpecError,
    check_float,
    check_int,
    check_keys,
    check_str,
    did_you_mean,
    one_of,
)


@dataclass(frozen=True)
class HardwareSpec:
    """One GPU model: `peak_flops` (dense bf16 FLOP/s), `hbm_bytes` (bytes of device memory),
    `hbm_bw` (bytes/s), `nvlink_bw` (bytes/s per GPU, one direction) and `nvlink_latency_s`,
    `net_bw` (bytes/s per GPU between nodes) and `net_latency_s`, and `gpus_per_node`."""

    name: str
    peak_flops: float
    hbm_bytes: int
    hbm_bw: float
    nvlink_bw: float
    nvlink_latency_s: float
    net_bw: float
    net_latency_s: float
    gpus_per_node: int = 8

    def __post_init__(self) -> None:
        check_str(self, "name")
        for name in ("peak_flops", "hbm_bw", "nvlink_bw", "net_bw"):
            check_float(self, name, low=0.0, low_open=True)
        check_int(self, "hbm_bytes", minimum=1)
        check_float(self, "nvlink_latency_s", low=0.0)
        check_float(self, "net_latency_s", low=0.0)
        check_int(self, "gpus_per_node", minimum=1, maximum=INT32_MAX)


HARDWARE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(HardwareSpec))

_NVLINK_LATENCY_S = 5e-6
_NET_LATENCY_S = 10e-6

HARDWARE_PRESETS: dict[str, HardwareSpec] = {
    h.name: h
    for h in (
        HardwareSpec("A100-80G", peak_flops=312e12, hbm_bytes=80_000_000_000, hbm_bw=2.039e12,
                     nvlink_bw=300e9, nvlink_latency_s=_NVLINK_LATENCY_S, net_bw=25e9,
                     net_latency_s=_NET_LATENCY_S),
        # China-export A100: NVLink cut to 400 GB/s bidirectional.
        HardwareSpec("A800", peak_flops=312e12, hbm_bytes=80_000_000_000, hbm_bw=2.039e12,
                     nvlink_bw=200e9, nvlink_latency_s=_NVLINK_LATENCY_S, net_bw=25e9,
                     net_latency_s=_NET_LATENCY_S),
        HardwareSpec("H100-SXM", peak_flops=989e12, hbm_bytes=80_000_000_000, hbm_bw=3.35e12,
                     nvlink_bw=450e9, nvlink_latency_s=_NVLINK_LATENCY_S, net_bw=50e9,
                     net_latency_s=_NET_LATENCY_S),
        # China-export H100: NVLink cut to 400 GB/s bidirectional.
        HardwareSpec("H800", peak_flops=989e12, hbm_bytes=80_000_000_000, hbm_bw=3.35e12,
                     nvlink_bw=200e9, nvlink_latency_s=_NVLINK_LATENCY_S, net_bw=50e9,
                     net_latency_s=_NET_LATENCY_S),
        HardwareSpec("H200", peak_flops=989e12, hbm_bytes=141_000_000_000, hbm_bw=4.8e12,
                     nvlink_bw=450e9, nvlink_latency_s=_NVLINK_LATENCY_S, net_bw=50e9,
                     net_latency_s=_NET_LATENCY_S),
    )
}

# Lower-case names (with "_" and " " read as "-") accepted for each preset.
_ALIASES: dict[str, str] = {
    **{name.lower(): name for name in HARDWARE_PRESETS},
    "a100": "A100-80G",
    "a100-80gb": "A100-80G",
    "a100-sxm": "A100-80G",
    "a100-sxm4-80gb": "A100-80G",
    "a800-80g": "A800",
    "a800-80gb": "A800",
    "h100": "H100-SXM",
    "h100-80g": "H100-SXM",
    "h100-sxm5": "H100-SXM",
    "h100-sxm-80gb": "H100-SXM",
    "h800-sxm": "H800",
    "h200-sxm": "H200",
    "h200-141g": "H200",
}


def get_hardware(name: str, overrides: Mapping[str, Any] | None = None) -> HardwareSpec:
    """Returns the preset `name` (case-insensitive, aliases such as "h100" accepted) with the
    fields in `overrides` replaced; raises SpecError for an unknown name, an unknown field or
    an invalid value (fields: "preset" or the override's name, source "<dict>")."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-") if isinstance(name, str) else ""
    if key not in _ALIASES:
        presets = sorted(HARDWARE_PRESETS)
        raise SpecError("<dict>", "preset", name,
                        f"unknown hardware{did_you_mean(key, _ALIASES)}; {one_of(presets)}")
    base = HARDWARE_PRESETS[_ALIASES[key]]
    if not overrides:
        return base
    if not isinstance(overrides, Mapping):
        raise SpecError("<dict>", "overrides", overrides,
                        f"expected a table of HardwareSpec fields; {one_of(HARDWARE_FIELDS)}")
    check_keys(overrides, HARDWARE_FIELDS, "<dict>", "")
    try:
        return replace(base, **overrides)
    except SpecError as exc:
        raise exc.at("<dict>") from None
