"""Training data: every source decodes to one uint8 array (N, C, S, S) at the run's size.

A source is a function `(DataConfig, image_size, channels) -> uint8 tensor (N, C, S, S)`
registered in `DATASETS` by name; the catalogue grows by adding entries here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dcgan.config import ConfigError, DataConfig
from dcgan.data.sources import load_fake, load_mnist_sample

Source = Callable[[DataConfig, int, int], torch.Tensor]

DATASETS: dict[str, Source] = {
    "mnist-sample": load_mnist_sample,
    "fake": load_fake,
}

# The held-out split must not move when the run seed changes, so it has its own fixed seed.
_HOLDOUT_SEED = 20151119


def load_images(
    cfg: DataConfig, image_size: int, channels: int, split: str = "train"
) -> torch.Tensor:
    """Decode dataset `cfg.dataset`; split 'train' drops the last `cfg.holdout` images of a
    fixed shuffle, 'holdout' returns only those, 'all' returns everything.

    Returns uint8 (N, channels, image_size, image_size).
    """
    images = DATASETS[cfg.dataset](cfg, image_size, channels)
    if split == "all" or (cfg.holdout == 0 and split == "train"):
        return images
    if cfg.holdout >= len(images):
        raise ConfigError(
            f"holdout: {cfg.holdout} leaves no training images ({cfg.dataset} has {len(images)})"
        )
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(_HOLDOUT_SEED))
    cut = len(images) - cfg.holdout
    return images[order[:cut] if split == "train" else order[cut:]]


__all__ = ["DATASETS", "Source", "load_images"]
