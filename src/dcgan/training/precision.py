"""Mixed precision: which number format the networks run in, chosen from what the hardware does
natively, and the autocast context and loss scaling that go with it.

bf16 halves the memory traffic and, on CPUs with native bf16 dot products (AVX-512 BF16, AMX)
and on Ampere or newer GPUs, about doubles convolution throughput. Without native support the
same kernels are emulated and run many times slower than fp32 (docs/speed.md has
the figures), so "auto" only picks bf16 where it is native. fp16 needs loss scaling; it is
offered by flag, never picked automatically.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from dcgan.config import PRECISIONS
from dcgan.errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags the kernel reports for this CPU (empty where unknown)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 arithmetic runs at full speed on `device` (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        return platform.machine() in ("x86_64", "AMD64") and bool(
            cpu_flags() & NATIVE_BF16_CPU_FLAGS
        )
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where it is native on `device`, else 'fp32'; other names pass through."""
    if name not in PRECISIONS:
        raise ConfigError(f"precision: '{name}' is not one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "fp16" and device.type == "mps":
        raise ConfigError("precision: fp16 training is not supported on mps; use fp32")
    return name


@dataclass(frozen=True)
class Precision:
    """A resolved precision on a device: the autocast region and the loss scaler it needs."""

    name: str  # fp32, bf16 or fp16
    device_type: str

    def autocast(self) -> contextlib.AbstractContextManager:
        """Convolutions inside run in the reduced format; outside, everything is fp32."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=DTYPES[self.name])

    def scaler(self) -> torch.amp.GradScaler | None:
        """A loss scaler for fp16 (whose gradients underflow without one); None otherwise."""
        return torch.amp.GradScaler(self.device_type) if self.name == "fp16" else None
