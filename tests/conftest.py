"""Shared fixtures: tiny networks and a temporary runs root, so every test takes seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dcgan.config import Config, merge, validate

TINY = {
    "model": {"image_size": 16, "channels": 1, "ngf": 8, "ndf": 8, "nz": 16},
    "data": {"dataset": "fake"},
    "train": {"steps": 4, "batch_size": 8, "device": "cpu", "seed": 1},
    "output": {"log_every": 2, "sample_every": 2, "checkpoint_every": 2, "num_samples": 16},
}


@pytest.fixture
def tiny_config(tmp_path: Path) -> Config:
    """A valid config for a 4-step run of tiny nets on random 16x16 images under tmp_path."""
    cfg = merge(Config(), TINY, "test")
    cfg.output.out = str(tmp_path / "runs")
    return validate(cfg)


def with_settings(cfg: Config, **flat: object) -> Config:
    """`cfg` with flat settings (as CLI flags name them) overridden, validated."""
    return validate(merge(cfg, flat, "test"))


def tiny_flags(tmp_path: Path, **extra: object) -> list[str]:
    """The TINY config as `dcgan train` flags."""
    flags = {**{k: v for sec in TINY.values() for k, v in sec.items()}, **extra}
    flags["out"] = str(tmp_path / "runs")
    argv = []
    for key, value in flags.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked cuda skip, with the reason, where no CUDA device is found."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none found): run `make gpu-check` on one")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Decoded-dataset caches go to a per-test directory, never the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


MEMORY_LIMIT = 1 << 30  # what a fuzzed command may allocate beyond what the test process holds


@pytest.fixture
def memory_limit() -> Iterator[int]:
    """An address-space limit (RLIMIT_AS) of 1 GiB beyond the test process's present size
    while the test runs, so that an unchecked allocation fails the test (MemoryError, or a
    traceback in the command's output) instead of exhausting the machine; the bytes allowed."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("reads the process size from /proc")
    size = next(
        int(x.split()[1]) * 1024 for x in status.read_text().splitlines() if x.startswith("VmSize:")
    )
    limit = size + MEMORY_LIMIT
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class ThumbnailFeatures:
    """Stands in for Inception: `side` x `side` grey thumbnails, whose neighbours differ from
    the pixels'; with `squares`, their squares follow. `calls` counts the batches it was given."""

    sha256 = "1" * 64
    resize = "area-4"
    side = 4
    squares = False

    def __init__(self, device: object = None, batch_size: int = 0) -> None:
        self.calls = 0

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        self.calls += 1
        x = F.adaptive_avg_pool2d(images.float().mean(1, keepdim=True) / 255, self.side)
        x = x.flatten(1)
        return (torch.cat([x, x**2], 1) if self.squares else x).double().numpy()


class PixelFeatures(ThumbnailFeatures):
    """The thumbnails and their squares, 32 features, as another network (its own sha256)."""

    sha256 = "0" * 64
    squares = True
