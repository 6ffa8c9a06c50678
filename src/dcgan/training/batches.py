"""Real batches: the training images, where they live, and which of them batch b holds.

The order is a seeded permutation per epoch, so batch b is known from b alone: a resumed run, on
any number of processes, sees exactly the images an unbroken one would.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from dcgan.config import Config
from dcgan.data import ImageSet, open_images
from dcgan.data.transforms import convert_channels, resize
from dcgan.errors import ConfigError
from dcgan.images import to_uint8
from dcgan.seeding import STREAM_EPOCHS, STREAM_FLIPS, seed_for


def prepare_images(cfg: Config, images: Any | None, labels: Any | None = None) -> ImageSet:
    """uint8 (N, C, S, S) at the model's size: the configured dataset or images given in Python.

    Given images may be uint8 or float in [-1, 1], shaped (N, C, H, W) or (N, H, W), with
    optional `labels` (N,) non-negative ints, their classes.
    """
    m = cfg.model
    if images is None:
        if not m.conditional:  # the readers look for labels only when asked
            return open_images(cfg.data, m.image_size, m.channels, part="train")
        return open_images(cfg.data, m.image_size, m.channels, part="train", labels=True)
    x = torch.as_tensor(np.asarray(images)) if not torch.is_tensor(images) else images.cpu()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ConfigError(f"images: expected shape (N, C, H, W) or (N, H, W), got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        x = to_uint8(x.float())
    x = convert_channels(resize(x, m.image_size), m.channels)
    if labels is None:
        return ImageSet(x, source="given images")
    y = torch.as_tensor(np.asarray(labels))
    if y.shape != (len(x),) or y.dtype.is_floating_point or (len(y) and int(y.min()) < 0):
        raise ConfigError(
            f"labels: expected {len(x)} non-negative integer classes, one per image, got "
            f"{tuple(y.shape)} {y.dtype}"
        )
    return ImageSet(x, labels=y.long(), source="given images")


def with_classes(cfg: Config, data: ImageSet) -> Config:
    """`cfg` with a conditional model's class count taken from the data's labels (when not set)
    and checked against them: every label must name one of the model's classes."""
    m = cfg.model
    if not m.conditional:
        return cfg
    if data.labels is None:
        raise ConfigError(
            f"--conditional: the training images ({data.source or 'given in Python'}) carry no "
            "class labels; give a labelled dataset or labels"
        )
    lo, hi = (int(v) for v in torch.aminmax(data.tensor_labels()))
    found = data.num_classes or hi + 1
    if m.num_classes and (hi >= m.num_classes or lo < 0):
        raise ConfigError(
            f"num_classes: {m.num_classes}, but the data's labels run from {lo} to {hi}; leave "
            f"--num-classes at 0 to take the data's {found}"
        )
    if m.num_classes:
        return cfg
    return replace(cfg, model=replace(m, num_classes=found))


def class_names(cfg: Config, data: ImageSet) -> tuple[str, ...]:
    """A conditional run's class names: the data's, or the class numbers when it has none."""
    if not cfg.model.conditional:
        return ()
    names = tuple(data.class_names)
    if len(names) != cfg.model.num_classes:
        names = tuple(str(c) for c in range(cfg.model.num_classes))
    return names


def place_data(data: ImageSet, device: torch.device) -> ImageSet:
    """Put the images on the training device when they fit in a quarter of its free memory;
    otherwise they stay in host memory (or memory-mapped on disk) and move batch by batch."""
    if device.type != "cuda":
        return data
    free, _ = torch.cuda.mem_get_info(device)
    nbytes = data.images.numel() * data.images.element_size()
    return data.to(device) if nbytes < free // 4 else data


def steps_per_epoch(cfg: Config, num_images: int, world: int = 1) -> int:
    """Steps per pass over the data; each step takes `d_steps` global batches of
    `batch_size` images from each of `world` processes."""
    per_step = cfg.train.batch_size * cfg.train.d_steps * world
    if num_images < per_step:
        processes = f" x {world} processes" if world > 1 else ""
        raise ConfigError(
            f"batch_size: {cfg.train.batch_size} x d_steps {cfg.train.d_steps}{processes} needs "
            f"at least {per_step} images but the dataset has {num_images}; lower --batch-size"
        )
    return num_images // per_step


def total_steps(cfg: Config, num_images: int, world: int = 1) -> int:
    """The step count the run ends at: --steps, or --epochs passes over the data."""
    return cfg.train.steps or cfg.train.epochs * steps_per_epoch(cfg, num_images, world)


class BatchOrder:
    """Real batch number b -> image indices; epoch e is a permutation seeded by (seed, e), so the
    order is reproducible from the step count alone and needs no saved state."""

    def __init__(self, num_images: int, batch_size: int, seed: int, per_epoch: int):
        self.n, self.batch_size, self.seed, self.per_epoch = num_images, batch_size, seed, per_epoch
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, batch_number: int) -> torch.Tensor:
        """(batch_size,) int64 image indices of batch `batch_number`."""
        epoch, pos = divmod(batch_number, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(seed_for(self.seed, epoch, STREAM_EPOCHS))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]


class RealBatches:
    """Real batch number b -> images (B, C, S, S) in [-1, 1] on the device, channels-last.

    Over `world` processes, batch b is one global batch of world * B images, reshuffled each
    epoch; process `rank` takes its slice, so the processes see disjoint images and the global
    batch is the one a single process with batch world * B would see.
    """

    def __init__(
        self, data: ImageSet, cfg: Config, device: torch.device, rank: int = 0, world: int = 1
    ):
        self.data, self.flip, self.seed, self.device = data, cfg.data.flip, cfg.train.seed, device
        per_epoch = steps_per_epoch(cfg, len(data), world)
        size = cfg.train.batch_size
        self.order = BatchOrder(len(data), size * world, cfg.train.seed, per_epoch)
        self.part = slice(rank * size, (rank + 1) * size)

    def __call__(self, number: int) -> torch.Tensor:
        index = self.order.indices(number)
        return real_batch(self.data, index, self.flip, self.seed, number, self.device, self.part)

    def labels(self, number: int) -> torch.Tensor:
        """The classes int64 (B,) of this process's slice of batch `number`, on the device:
        the same rows as `self(number)`, so each image keeps its label under torchrun."""
        index = self.order.indices(number)[self.part]
        return self.data.take_labels(index).to(self.device, non_blocking=True)


def real_batch(
    data: ImageSet,
    index: torch.Tensor,
    flip: bool,
    seed: int,
    number: int,
    device: torch.device,
    part: slice = slice(None),
) -> torch.Tensor:
    """This process's `part` of real batch `number` (global image indices `index`), in [-1, 1]
    on `device`; with `flip`, a random half is mirrored, the choice seeded by (seed, number)
    so a resumed run, on any number of processes, flips exactly as an unbroken one."""
    x = data.take(index[part])
    if device.type == "cuda" and not x.is_cuda:
        x = x.pin_memory()  # so the copy below overlaps with the GPU's work
    x = x.to(device, non_blocking=True)
    if flip:
        g = torch.Generator().manual_seed(seed_for(seed, number, STREAM_FLIPS))
        mask = (torch.rand(len(index), generator=g)[part] < 0.5).to(device).view(-1, 1, 1, 1)
        x = torch.where(mask, x.flip(-1), x)
    return to_model_range(x)


def to_model_range(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, S, S) -> float (B, C, S, S) in [-1, 1]: data stays uint8 until it is used."""
    return batch.float().div_(127.5).sub_(1.0).contiguous(memory_format=torch.channels_last)
