"""Shared fixtures: tiny networks and a temporary runs root, so every test takes seconds."""

from __future__ import annotations

import subprocess
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


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Decoded-dataset caches go to a per-test directory, never the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


def torchrun_succeeded(done: subprocess.CompletedProcess) -> bool:
    """A torchrun command that exited 0, or whose worker aborted in torch's C++ teardown
    ("terminate called without an active exception", seen now and then on a 2-core machine)
    after rank 0 had finished the run and printed its summary: the run itself is complete, and
    each test still checks its files; any other failure still fails."""
    torn_down = "terminate called without an active exception" in done.stderr
    return done.returncode == 0 or ("final grid:" in done.stdout and torn_down)


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
