"""training/batches.py: the order of real batches, their slices over processes, their range."""

from __future__ import annotations

import pytest
import torch

from conftest import with_settings
from dcgan.config import Config
from dcgan.data import ImageSet
from dcgan.errors import ConfigError
from dcgan.training.batches import (
    BatchOrder,
    RealBatches,
    steps_per_epoch,
    to_model_range,
    total_steps,
)

CPU = torch.device("cpu")


def test_each_epoch_is_a_permutation_seeded_by_the_epoch_alone() -> None:
    order = BatchOrder(num_images=40, batch_size=8, seed=3, per_epoch=5)
    epochs = [torch.cat([order.indices(e * 5 + b) for b in range(5)]) for e in range(3)]
    for e in epochs:
        assert sorted(e.tolist()) == list(range(40))  # every image once an epoch
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled each epoch
    fresh = BatchOrder(40, 8, 3, 5)
    assert torch.equal(fresh.indices(12), epochs[2][16:24])  # batch 12 needs nothing before it
    assert not torch.equal(BatchOrder(40, 8, 4, 5).indices(0), epochs[0][:8])  # the seed counts


def test_a_short_last_batch_is_dropped_not_wrapped() -> None:
    order = BatchOrder(num_images=10, batch_size=4, seed=0, per_epoch=2)
    seen = torch.cat([order.indices(0), order.indices(1)])
    assert len(seen) == 8 and len(set(seen.tolist())) == 8  # 2 of the 10 wait for next epoch


def test_steps_per_epoch_and_total_steps(tiny_config: Config) -> None:
    cfg = with_settings(tiny_config, batch_size=8, d_steps=2, steps=None, epochs=3)
    assert steps_per_epoch(cfg, 100) == 100 // 16
    assert steps_per_epoch(cfg, 100, world=2) == 100 // 32
    assert total_steps(cfg, 100) == 3 * (100 // 16)
    assert total_steps(with_settings(cfg, steps=7), 100) == 7  # --steps beats --epochs
    with pytest.raises(ConfigError, match=r"needs at least 32 images but the dataset has 20"):
        steps_per_epoch(cfg, 20, world=2)


def test_processes_slice_the_batch_a_single_process_would_see(tiny_config: Config) -> None:
    """Over 2 processes of batch 4, batch b of ranks 0 and 1 together is batch b of one process
    with batch 8, images and labels row for row."""
    images = torch.arange(32, dtype=torch.uint8).view(32, 1, 1, 1).expand(32, 1, 4, 4)
    data = ImageSet(images.contiguous(), labels=torch.arange(32) % 5)
    one = RealBatches(data, with_settings(tiny_config, batch_size=8), CPU)
    cfg = with_settings(tiny_config, batch_size=4)
    ranks = [RealBatches(data, cfg, CPU, rank=r, world=2) for r in range(2)]
    for number in (0, 3, 9):  # across epochs (4 steps an epoch)
        assert torch.equal(torch.cat([r(number) for r in ranks]), one(number))
        assert torch.equal(torch.cat([r.labels(number) for r in ranks]), one.labels(number))
        pixel_ids = ((one(number)[:, 0, 0, 0] + 1) * 127.5).round().long()
        assert torch.equal(one.labels(number), pixel_ids % 5)  # each image keeps its label


def test_to_model_range_maps_bytes_to_minus_one_one_channels_last() -> None:
    x = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    y = to_model_range(x)
    assert y.dtype == torch.float32 and y.is_contiguous(memory_format=torch.channels_last)
    assert y[0, :, 0, 0].tolist() == pytest.approx([-1.0, 1.0, 51 / 127.5 - 1.0])
