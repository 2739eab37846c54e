"""Peak-rate table used by the roofline features of the operator predictors.

The numbers are public datasheet values (dense tensor-core peak, no sparsity) and are
only used as *features* (roofline time) and as the fallback predictor; the forests and
surrogates learn the real efficiency from measurements. Every predictor card records the
exact numbers it was trained with, so a simulator must use the same ones
(see :func:`device_spec` and ``card.json["devices"]``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DeviceSpec:
    """Peak rates of one accelerator.

    Attributes:
        name: canonical short name (``"a800"``, ``"h800"``...).
        peak_flops_bf16: dense BF16/FP16 tensor peak, FLOP/s.
        peak_flops_fp8: dense FP8 tensor peak, FLOP/s (BF16 peak where FP8 is absent).
        mem_bw: HBM bandwidth, bytes/s.
        num_sms: number of streaming multiprocessors (for thread-block wave features).
    """

    name: str
    peak_flops_bf16: float
    peak_flops_fp8: float
    mem_bw: float
    num_sms: int

    def peak_flops(self, dtype_bytes: float = 2.0) -> float:
        """Peak FLOP/s for operands of ``dtype_bytes`` bytes (1 = FP8, else BF16)."""
        return self.peak_flops_fp8 if dtype_bytes <= 1 else self.peak_flops_bf16

    def to_dict(self) -> dict:
        """Plain-dict form (for JSON cards)."""
        return asdict(self)


DEVICES: dict[str, DeviceSpec] = {
    "a100": DeviceSpec("a100", 312e12, 312e12, 2.039e12, 108),
    "a800": DeviceSpec("a800", 312e12, 312e12, 2.039e12, 108),
    "a40": DeviceSpec("a40", 149.7e12, 149.7e12, 0.696e12, 84),
    "h100": DeviceSpec("h100", 989e12, 1979e12, 3.35e12, 132),
    "h800": DeviceSpec("h800", 989e12, 1979e12, 3.35e12, 132),
    "h200": DeviceSpec("h200", 989e12, 1979e12, 4.8e12, 132),
    "l40s": DeviceSpec("l40s", 362e12, 733e12, 0.864e12, 142),
    "rtx_pro_6000": DeviceSpec("rtx_pro_6000", 503.8e12, 1007.6e12, 1.792e12, 188),
    "b200": DeviceSpec("b200", 2250e12, 4500e12, 8.0e12, 148),
    # This project's 2-core x86 CPU machine (Intel Xeon with AMX-BF16 / AVX512-BF16), measured
    # once with torch 2.13 on 2 threads: a 2048^3 bf16 GEMM ran at 0.87e12 FLOP/s (float32:
    # 0.12e12), a 256 MiB float32 copy at 12.4e9 bytes/s (read + write), a sum at 11.6e9
    # bytes/s. Nominal constants: 0.9e12 FLOP/s (bf16 "tensor" peak), 12e9 bytes/s, 2 cores.
    "cpu": DeviceSpec("cpu", 0.9e12, 0.9e12, 12e9, 2),
    # Used when a profile's device cannot be recognised: an H100-class default.
    "unknown": DeviceSpec("unknown", 989e12, 1979e12, 3.35e12, 132),
}

_PATTERNS = [
    (re.compile(r"rtx[ _-]?pro[ _-]?6000"), "rtx_pro_6000"),
    (re.compile(r"\bl40s\b|l40s"), "l40s"),
    (re.compile(r"\ba40\b|(?<![a-z0-9])a40(?![0-9])"), "a40"),
    (re.compile(r"a800"), "a800"),
    (re.compile(r"a100"), "a100"),
    (re.compile(r"h800"), "h800"),
    (re.compile(r"h200"), "h200"),
    (re.compile(r"h100"), "h100"),
    (re.compile(r"b200"), "b200"),
    # last, so that a GPU name or path that also mentions "cpu" keeps its GPU key
    (re.compile(r"cpu"), "cpu"),
]


def canonical_device(text: str | None) -> str:
    """Map a device string or path component to a key of :data:`DEVICES`.

    Returns ``"unknown"`` when nothing matches, e.g. ``"NVIDIA H100 80GB HBM3"`` -> ``"h100"``,
    ``"a800_pairwise_nvlink"`` -> ``"a800"``, ``"cpu"`` / ``"profiling/cpu"`` -> ``"cpu"``.
    """
    if not text:
        return "unknown"
    t = str(text).lower()
    for pat, name in _PATTERNS:
        if pat.search(t):
            return name
    return "unknown"


def device_spec(name: str) -> DeviceSpec:
    """Spec for a device name (any string :func:`canonical_device` understands)."""
    key = name if name in DEVICES else canonical_device(name)
    return DEVICES[key]
