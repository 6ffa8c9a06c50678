"""Datasets as images: every dataset decodes once to uint8 images (N, C, S, S) at the run's size.

Built-in sets (the bundled MNIST sample, random `fake` images) are decoded in memory. Every
other name in the catalogue reads the official files under `data_root` and is cached as a
memory-mapped `.npy`, so later epochs and runs never decode again and sets larger than memory
stream from disk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from dcgan.config import DATASET_NAMES, DataConfig
from dcgan.data.sources import load_fake, load_mnist_sample
from dcgan.errors import ConfigError, DataError
from dcgan.seeding import HOLDOUT_SEED

if TYPE_CHECKING:
    from dcgan.data.catalogue import Found

BuiltIn = Callable[[DataConfig, int, int], torch.Tensor]

PARTS = ("train", "holdout", "all")

BUILT_IN: dict[str, BuiltIn] = {"mnist-sample": load_mnist_sample, "fake": load_fake}


@dataclass(frozen=True)
class ImageSet:
    """uint8 images (N, C, S, S), possibly memory-mapped, seen through an optional row subset.

    labels: int64 (N,) class of each row of `images` (None: opened without labels), seen
    through `rows` exactly as the images are; class_names: the name of each class.
    skipped: (file, reason) for source files that could not be decoded.
    """

    images: torch.Tensor
    rows: torch.Tensor | None = None
    source: str = ""
    skipped: tuple[tuple[str, str], ...] = ()
    labels: torch.Tensor | None = None
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.images) if self.rows is None else len(self.rows)

    @property
    def num_classes(self) -> int:
        """How many classes the labels name (0 for a set opened without labels)."""
        return len(self.class_names)

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """uint8 (len(index), C, S, S) for positions `index` of this set, on the data's device."""
        index = index.to(self.images.device)
        return self.images[index if self.rows is None else self.rows[index]]

    def take_labels(self, index: torch.Tensor) -> torch.Tensor:
        """int64 (len(index),): the classes of `take(index)`'s images, on the data's device."""
        labels = self._labels()
        index = index.to(self.images.device)
        return labels[index if self.rows is None else self.rows[index]]

    def tensor(self) -> torch.Tensor:
        """All images of the set in memory: uint8 (N, C, S, S)."""
        return self.images if self.rows is None else self.images[self.rows]

    def tensor_labels(self) -> torch.Tensor:
        """The class of every image of `tensor()`: int64 (N,)."""
        labels = self._labels()
        return labels if self.rows is None else labels[self.rows]

    def _labels(self) -> torch.Tensor:
        if self.labels is None:
            what = self.source or "this image set"
            raise DataError(f"{what}: opened without class labels; open it with labels=True")
        return self.labels

    def subset(self, rows: torch.Tensor) -> ImageSet:
        """The images (and labels) at positions `rows` of this set."""
        rows = (rows if self.rows is None else self.rows[rows]).to(self.images.device)
        return dataclasses.replace(self, rows=rows)

    def to(self, device: torch.device) -> ImageSet:
        rows = None if self.rows is None else self.rows.to(device)
        labels = None if self.labels is None else self.labels.to(device)
        return dataclasses.replace(self, images=self.images.to(device), rows=rows, labels=labels)


def dataset_names() -> tuple[str, ...]:
    """Every dataset name: the built-in sets, then those read from files."""
    return DATASET_NAMES


def decode_dataset(
    cfg: DataConfig, image_size: int, channels: int, labels: bool = False
) -> ImageSet:
    """Every image of dataset `cfg.dataset` (its `cfg.split`) at (channels, image_size), with
    the class labels int64 (N,) and class names when `labels` (a DataError if it has none)."""
    if labels:
        from dcgan.data.labels import check_labelled

        check_labelled(cfg)  # before anything is decoded
    if cfg.dataset in BUILT_IN:
        from dcgan.data.catalogue import no_splits

        no_splits(cfg)
        images = BUILT_IN[cfg.dataset](cfg, image_size, channels)
        built_in = ImageSet(images, source=f"{cfg.dataset} (built in)")
        return with_builtin_labels(cfg, built_in) if labels else built_in
    from dcgan.data.cache import cache_path, load_or_decode, load_or_read_labels
    from dcgan.data.catalogue import find

    found = find(cfg)
    known = None
    if labels:  # read (or found cached) first: a set without labels fails before decoding
        from dcgan.data.labels import source_labels

        def read() -> tuple[np.ndarray, tuple[str, ...]]:
            got = source_labels(cfg, found)
            return got.values, got.class_names

        known = load_or_read_labels(cache_path(cfg, found, image_size, channels), read)
    decoded = load_or_decode(cfg, found, image_size, channels)
    how = "cached" if decoded.from_cache else "decoded"
    source = f"{found.description}: {how} in {decoded.seconds:.1f} s ({decoded.path})"
    if decoded.damage is not None:
        source += f"; {decoded.damage}"
    images = ImageSet(torch.from_numpy(decoded.images), source=source, skipped=decoded.skipped)
    return images if known is None else with_labels(images, found, *known)


def with_builtin_labels(cfg: DataConfig, images: ImageSet) -> ImageSet:
    """A built-in set's images with their labels: the bundled digits' or `fake`'s random ones."""
    from dcgan.data.labels import builtin_labels

    known = builtin_labels(cfg)
    values = torch.from_numpy(known.values)
    return dataclasses.replace(images, labels=values, class_names=known.class_names)


def with_labels(
    images: ImageSet, found: Found, values: np.ndarray, names: tuple[str, ...]
) -> ImageSet:
    """`images` with the labels of every source item, less those of the skipped files; checked
    to be one per decoded image."""
    from dcgan.data.labels import Labels, for_decoded

    kept = for_decoded(Labels(values, names), found, images.skipped).values
    if len(kept) != len(images.images):
        raise DataError(
            f"{found.description}: {len(kept)} class labels for {len(images.images)} decoded "
            "images; give one label per image"
        )
    labels = torch.from_numpy(np.ascontiguousarray(kept, np.int64))
    return dataclasses.replace(images, labels=labels, class_names=names)


def open_images(
    cfg: DataConfig, image_size: int, channels: int, part: str = "train", labels: bool = False
) -> ImageSet:
    """The dataset as an ImageSet; part 'train' drops the last `cfg.holdout` images of a fixed
    shuffle, 'holdout' keeps only those, 'all' keeps everything. With `labels` the set carries
    each image's class, int64 (N,), and the class names; both parts keep them row for row."""
    if part not in PARTS:
        raise ValueError(f"part: {part!r} is not one of {', '.join(PARTS)}")
    full = decode_dataset(cfg, image_size, channels, labels)
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
