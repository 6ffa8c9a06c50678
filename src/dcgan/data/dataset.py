"""Datasets as images: every dataset decodes once to uint8 images (N, C, S, S) at the run's size.

Built-in sets (the bundled MNIST sample, random `fake` images) are decoded in memory. Every
other name in the catalogue reads the official files under `data_root` and is cached as a
memory-mapped `.npy`, so later epochs and runs never decode again and sets larger than memory
stream from disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dcgan.config import DATASET_NAMES, DataConfig
from dcgan.data.sources import load_fake, load_mnist_sample
from dcgan.errors import ConfigError
from dcgan.seeding import HOLDOUT_SEED

BuiltIn = Callable[[DataConfig, int, int], torch.Tensor]

PARTS = ("train", "holdout", "all")

BUILT_IN: dict[str, BuiltIn] = {"mnist-sample": load_mnist_sample, "fake": load_fake}


@dataclass(frozen=True)
class ImageSet:
    """uint8 images (N, C, S, S), possibly memory-mapped, seen through an optional row subset.

    skipped: (file, reason) for source files that could not be decoded.
    """

    images: torch.Tensor
    rows: torch.Tensor | None = None
    source: str = ""
    skipped: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.images) if self.rows is None else len(self.rows)

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """uint8 (len(index), C, S, S) for positions `index` of this set, on the data's device."""
        index = index.to(self.images.device)
        return self.images[index if self.rows is None else self.rows[index]]

    def tensor(self) -> torch.Tensor:
        """All images of the set in memory: uint8 (N, C, S, S)."""
        return self.images if self.rows is None else self.images[self.rows]

    def subset(self, rows: torch.Tensor) -> ImageSet:
        rows = rows if self.rows is None else self.rows[rows]
        return ImageSet(self.images, rows.to(self.images.device), self.source, self.skipped)

    def to(self, device: torch.device) -> ImageSet:
        rows = None if self.rows is None else self.rows.to(device)
        return ImageSet(self.images.to(device), rows, self.source, self.skipped)


def dataset_names() -> tuple[str, ...]:
    """Every dataset name: the built-in sets, then those read from files."""
    return DATASET_NAMES


def decode_dataset(cfg: DataConfig, image_size: int, channels: int) -> ImageSet:
    """Every image of dataset `cfg.dataset` (its `cfg.split`) at (channels, image_size)."""
    if cfg.dataset in BUILT_IN:
        from dcgan.data.catalogue import no_splits

        no_splits(cfg)
        images = BUILT_IN[cfg.dataset](cfg, image_size, channels)
        return ImageSet(images, source=f"{cfg.dataset} (built in)")
    from dcgan.data.cache import load_or_decode
    from dcgan.data.catalogue import CATALOGUE

    found = CATALOGUE[cfg.dataset].find(cfg)
    decoded = load_or_decode(cfg, found, image_size, channels)
    how = "cached" if decoded.from_cache else "decoded"
    source = f"{found.description}: {how} in {decoded.seconds:.1f} s ({decoded.path})"
    if decoded.damage is not None:
        source += f"; {decoded.damage}"
    return ImageSet(torch.from_numpy(decoded.images), source=source, skipped=decoded.skipped)


def open_images(cfg: DataConfig, image_size: int, channels: int, part: str = "train") -> ImageSet:
    """The dataset as an ImageSet; part 'train' drops the last `cfg.holdout` images of a fixed
    shuffle, 'holdout' keeps only those, 'all' keeps everything."""
    if part not in PARTS:
        raise ValueError(f"part: {part!r} is not one of {', '.join(PARTS)}")
    full = decode_dataset(cfg, image_size, channels)
    if part == "all" or (cfg.holdout == 0 and part == "train"):
        return full
    if cfg.holdout >= len(full):
        raise ConfigError(
            f"holdout: {cfg.holdout} leaves no training images ({cfg.dataset} has {len(full)})"
        )
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(HOLDOUT_SEED))
    cut = len(full) - cfg.holdout
    rows = order[:cut] if part == "train" else order[cut:]
    return full.subset(rows.sort().values)  # sorted rows read a memmap front to back


def load_images(
    cfg: DataConfig, image_size: int, channels: int, part: str = "train"
) -> torch.Tensor:
    """Like `open_images`, in memory: uint8 (N, channels, image_size, image_size)."""
    return open_images(cfg, image_size, channels, part).tensor()
