"""Which device a command runs on, and how deterministic its kernels are."""

from __future__ import annotations

import os
from pathlib import Path

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


def memory_room() -> int:
    """Bytes this process may still allocate on the host: the machine's physical memory, or
    less where an address-space limit (`ulimit -v`, `resource.setrlimit`) or a cgroup (a
    container's memory limit) says so. Counts that users type are checked against it before
    anything is allocated, so that a typo fails in one line instead of swapping the machine."""
    try:
        room = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # neither Linux nor macOS: assume 8 GiB
        room = 8 << 30
    limit = _address_space_limit()
    if limit is not None:
        room = min(room, limit - _status_kib("VmSize") * 1024)
    cgroup = _cgroup_room()
    if cgroup is not None:
        room = min(room, cgroup)
    return max(room, 0)


def _address_space_limit() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _status_kib(field: str) -> int:
    """A `kB` field of /proc/self/status (0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cgroup_room() -> int | None:
    """What a cgroup v2 memory limit leaves (None without one)."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None
