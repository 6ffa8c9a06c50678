"""The linear probe on D's features, and class labels aligned with decoded images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datafiles import write_cifar, write_idx, write_svhn
from dcgan.config import DataConfig, ModelConfig
from dcgan.data.dataset import decode_dataset
from dcgan.data.errors import DataError
from dcgan.data.labels import load_labels
from dcgan.data.sources import mnist_sample_arrays
from dcgan.models import Discriminator
from dcgan.probe import (
    d_features,
    linear_probe,
    probe_discriminator,
    random_discriminator_like,
    split_pool_test,
)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_d_features_pool_every_block_to_4x4(size: int) -> None:
    d = Discriminator(ModelConfig(image_size=size, channels=1, ndf=8))
    images = torch.randint(0, 256, (5, 1, size, size), dtype=torch.uint8)
    feats = d_features(d, images)
    widths = [b[0].out_channels for b in d.blocks]
    assert feats.shape == (5, sum(w * 16 for w in widths)) and feats.dtype == np.float32
    assert np.array_equal(feats, d_features(d, images, batch_size=2))


def test_linear_probe_on_separable_and_random_labels() -> None:
    rng = np.random.default_rng(0)
    y = rng.permutation(np.repeat(np.arange(4), 50))
    x = rng.normal(size=(200, 20)) + np.eye(4, 20)[y] * 5
    result = linear_probe(x[:120], y[:120], x[120:], y[120:], labels_per_class=10, draws=3)
    assert result.mean > 0.95 and len(result.accuracies) == 3
    shuffled = rng.permutation(y)
    chance = linear_probe(x[:120], shuffled[:120], x[120:], shuffled[120:], 10, draws=3)
    assert chance.mean < 0.5
    again = linear_probe(x[:120], y[:120], x[120:], y[120:], 10, draws=3)
    assert again.accuracies == result.accuracies
    with pytest.raises(ValueError, match="the probe needs"):
        linear_probe(x[:120], y[:120], x[120:], y[120:], labels_per_class=20)


def test_random_d_features_already_beat_chance_on_digits() -> None:
    images, labels = mnist_sample_arrays()
    x = torch.nn.functional.interpolate(torch.from_numpy(images).unsqueeze(1).float(), 16)
    x = x.round().to(torch.uint8)
    pool, test = split_pool_test(labels, 500, seed=0)
    d = random_discriminator_like(Discriminator(ModelConfig(image_size=16, ndf=8)), seed=0)
    result = probe_discriminator(
        d, x[pool], labels[pool], x[test], labels[test], labels_per_class=10, draws=2
    )
    assert result.mean > 0.5 and result.n_test == 500


def test_split_pool_test_is_stratified_and_disjoint() -> None:
    labels = np.repeat(np.arange(10), 30)
    pool, test = split_pool_test(labels, 100, seed=1)
    assert len(set(pool) & set(test)) == 0 and len(pool) + len(test) == 300
    assert np.bincount(labels[test]).tolist() == [10] * 10


def cfg(tmp_path: Path, name: str, split: str = "train") -> DataConfig:
    return DataConfig(
        dataset=name, data_root=str(tmp_path), split=split, cache_dir=str(tmp_path / "cache")
    )


def test_labels_of_the_bundled_digits() -> None:
    assert np.bincount(load_labels(DataConfig())).tolist() == [500] * 10


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize(
    ("split", "expected"), [("train", [1, 2, 3]), ("test", [7, 8]), ("all", [1, 2, 3, 7, 8])]
)
def test_idx_labels_align_with_images(tmp_path: Path, gz: bool, split: str, expected) -> None:
    images = np.zeros((5, 28, 28), np.uint8)
    images[:, 0, 0] = [1, 2, 3, 7, 8]
    write_idx(tmp_path / "mnist", "train", images[:3], np.array([1, 2, 3], np.uint8), gz=gz)
    write_idx(tmp_path / "mnist", "t10k", images[3:], np.array([7, 8], np.uint8), gz=gz)
    c = cfg(tmp_path, "mnist", split)
    labels = load_labels(c)
    assert labels.tolist() == expected
    assert decode_dataset(c, 28, 1).tensor()[:, 0, 0, 0].tolist() == expected


@pytest.mark.parametrize("variant", ["cifar10", "cifar100"])
@pytest.mark.parametrize("as_tarball", [True, False])
def test_cifar_labels(tmp_path: Path, variant: str, as_tarball: bool) -> None:
    write_cifar(tmp_path, variant, n_per_batch=4, as_tarball=as_tarball)
    for split, n in (("train", 20 if variant == "cifar10" else 4), ("test", 4)):
        labels = load_labels(cfg(tmp_path, variant, split))
        assert labels.dtype == np.int64 and len(labels) == n
        assert len(decode_dataset(cfg(tmp_path, variant, split), 16, 3)) == n


def test_svhn_label_ten_is_zero(tmp_path: Path) -> None:
    write_svhn(tmp_path / "svhn", "train", n=6)
    labels = load_labels(cfg(tmp_path, "svhn"))
    assert len(labels) == 6 and labels.min() >= 0 and labels.max() <= 9


def test_unlabelled_datasets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has no class labels") as e:
        load_labels(cfg(tmp_path, "folder"))
    assert "\n" not in str(e.value)
