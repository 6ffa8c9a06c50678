"""Which device a command runs on, and how deterministic its kernels are."""

from __future__ import annotations

import os

import torch

from dcgan.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str) -> torch.device:
    """'auto' prefers CUDA, then Apple MPS, then the CPU; an unavailable choice is an error."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name not in DEVICES:
        raise ConfigError(f"device: '{name}' is not one of {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"device: '{name}' is not available on this machine; use --device cpu")
    return torch.device(name)


def set_determinism(enabled: bool) -> None:
    """Bitwise-reproducible kernels when asked (slower), fastest kernels otherwise."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.benchmark = not enabled
    # TF32 keeps fp32's range with a 10-bit mantissa; GAN training does not notice, and on
    # Ampere or newer fp32 matmuls and convolutions run several times faster with it.
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
