"""Class labels for the probe: row for row with the decoded images, for every labelled set."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from datafiles import cifar_files, cifar_images, py2_pickle, write_cifar, write_idx, write_svhn
from dcgan.config import DataConfig
from dcgan.data.dataset import decode_dataset
from dcgan.data.labels import load_labels
from dcgan.data.official import read_cifar, read_cifar_labels
from dcgan.data.sources import mnist_sample_arrays
from dcgan.errors import ConfigError, DataError

CIFAR_BATCHES = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    "cifar100": {"train": ["train"], "test": ["test"]},
}


def data_cfg(tmp_path: Path, dataset: str, split: str = "train") -> DataConfig:
    return DataConfig(
        dataset=dataset, data_root=str(tmp_path), split=split, cache_dir=str(tmp_path / "cache")
    )


def split_rows(parts: dict[str, np.ndarray], split: str) -> np.ndarray:
    """What a split holds of per-part arrays {"train": ..., "test": ...}: train then test."""
    names = {"train": ["train"], "test": ["test"], "all": ["train", "test"]}[split]
    return np.concatenate([parts[n] for n in names])


# ---------------------------------------------------------------------------- mnist-sample


def test_mnist_sample_labels_are_the_bundled_ones():
    labels = load_labels(DataConfig(dataset="mnist-sample"))
    assert labels.dtype == np.int64 and labels.shape == (5000,)
    np.testing.assert_array_equal(labels, mnist_sample_arrays()[1])
    assert np.bincount(labels).tolist() == [500] * 10


def test_mnist_sample_has_no_test_split():
    with pytest.raises(ConfigError, match="no official test split"):
        load_labels(DataConfig(dataset="mnist-sample", split="test"))


# ---------------------------------------------------------------------------- IDX


def write_mnist(directory: Path, gz: bool) -> dict[str, np.ndarray]:
    """train (7) and t10k (5) digits whose pixels encode (label, row index); returns labels."""
    labels = {}
    for prefix, part, n, seed in (("train", "train", 7, 0), ("t10k", "test", 5, 1)):
        y = np.random.default_rng(seed).integers(0, 10, n).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, :, :14] = (y * 20)[:, None, None]  # left half: the label
        images[:, :, 14:] = (np.arange(n) + 100 * seed)[:, None, None]  # right: the row
        write_idx(directory, prefix, images, y, gz=gz)
        labels[part] = y.astype(np.int64)
    return labels


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_idx_labels_align_with_the_decoded_images(tmp_path, gz, split):
    written = write_mnist(tmp_path / "mnist", gz)
    cfg = data_cfg(tmp_path, "mnist", split)
    labels = load_labels(cfg)
    images = decode_dataset(cfg, 28, 1).tensor().numpy()
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, split_rows(written, split))
    np.testing.assert_array_equal(images[:, 0, 0, 0], labels * 20)


def test_idx_labels_with_the_dotted_names_and_fashion(tmp_path):
    written = write_mnist(tmp_path, gz=False)  # in ROOT itself, not ROOT/fashion-mnist
    for kind in ("images-idx3", "labels-idx1"):
        old = tmp_path / f"train-{kind}-ubyte"
        old.rename(tmp_path / f"train-{kind.replace('-', '.')}-ubyte")
    labels = load_labels(data_cfg(tmp_path, "fashion-mnist"))
    np.testing.assert_array_equal(labels, written["train"])


def test_idx_labels_missing_or_miscounted(tmp_path):
    write_mnist(tmp_path / "mnist", gz=True)
    labels_file = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels_file.unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: missing") as err:
        load_labels(data_cfg(tmp_path, "mnist", "test"))
    assert "\n" not in str(err.value)
    write_idx(tmp_path / "other", "t10k", np.zeros((3, 28, 28), np.uint8), np.zeros(3, np.uint8))
    shutil.copy(tmp_path / "other" / "t10k-labels-idx1-ubyte.gz", labels_file)
    with pytest.raises(DataError, match="3 labels for the 5 images"):
        load_labels(data_cfg(tmp_path, "mnist", "test"))


# ---------------------------------------------------------------------------- CIFAR


def stored_cifar_labels(variant: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The labels write_cifar put in each split's batches, read back with plain pickle."""
    files = cifar_files(variant, seed=seed)
    key = b"labels" if variant == "cifar10" else b"fine_labels"
    return {
        part: np.concatenate([pickle.loads(files[n], encoding="bytes")[key] for n in names])
        for part, names in CIFAR_BATCHES[variant].items()
    }


@pytest.mark.parametrize("as_tarball", [True, False])
@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_cifar10_labels_align_with_the_decoded_images(tmp_path, as_tarball, split):
    write_cifar(tmp_path / "cifar10", "cifar10", as_tarball=as_tarball)
    cfg = data_cfg(tmp_path, "cifar10", split)
    labels = load_labels(cfg)
    np.testing.assert_array_equal(labels, split_rows(stored_cifar_labels("cifar10"), split))
    # The images decode in the same batch order the labels were read in.
    pixels = cifar_images("cifar10")
    batches = {
        p: np.concatenate([pixels[n] for n in ns]) for p, ns in CIFAR_BATCHES["cifar10"].items()
    }
    decoded = decode_dataset(cfg, 32, 3).tensor().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(decoded, split_rows(batches, split))
    assert len(labels) == len(decoded)


@pytest.mark.parametrize("as_tarball", [True, False])
def test_cifar100_fine_labels(tmp_path, as_tarball):
    source = write_cifar(tmp_path, "cifar100", as_tarball=as_tarball, seed=3)
    stored = stored_cifar_labels("cifar100", seed=3)
    for split in ("train", "test", "all"):
        labels = load_labels(data_cfg(tmp_path, "cifar100", split))
        np.testing.assert_array_equal(labels, split_rows(stored, split))
        assert labels.dtype == np.int64 and labels.max() < 100
        assert len(read_cifar_labels(source, "cifar100", split)) == len(
            read_cifar(source, "cifar100", split)
        )


def test_read_cifar_labels_rejects_a_batch_with_wrong_labels(tmp_path):
    folder = write_cifar(tmp_path, "cifar10", as_tarball=False)
    batch = pickle.loads((folder / "test_batch").read_bytes(), encoding="bytes")
    batch[b"labels"] = batch[b"labels"][:-1]
    (folder / "test_batch").write_bytes(py2_pickle(batch))
    with pytest.raises(DataError, match=r"no 'labels' list of 4 classes in 0\.\.9") as err:
        read_cifar_labels(folder, "cifar10", "test")
    assert "\n" not in str(err.value)
    batch[b"labels"] = [0, 1, 2, 10]
    (folder / "test_batch").write_bytes(py2_pickle(batch))
    with pytest.raises(DataError, match="test_batch: CIFAR batch has no 'labels'"):
        read_cifar_labels(folder, "cifar10", "test")


def test_read_cifar_labels_refuses_foreign_globals(tmp_path):
    folder = write_cifar(tmp_path, "cifar10", as_tarball=False)
    (folder / "test_batch").write_bytes(pickle.dumps(shutil.rmtree, protocol=2))
    with pytest.raises(DataError, match=r"refusing to load global shutil\.rmtree"):
        read_cifar_labels(folder, "cifar10", "test")


# ---------------------------------------------------------------------------- SVHN


def test_svhn_labels_map_10_to_digit_0(tmp_path):
    parts = {"train": 0, "test": 1, "extra": 2}
    raw = {}
    for part, seed in parts.items():
        path = write_svhn(tmp_path / "svhn", part, n=20, seed=seed)
        raw[part] = scipy.io.loadmat(path)["y"].reshape(-1).astype(np.int64)
    assert any((y == 10).any() for y in raw.values())  # the mapping is really exercised
    expected = {part: np.where(y == 10, 0, y) for part, y in raw.items()}
    for split in ("train", "test"):
        np.testing.assert_array_equal(
            load_labels(data_cfg(tmp_path, "svhn", split)), expected[split]
        )
    # --split all reads extra_32x32.mat too, after train and test, as the images do.
    cfg = data_cfg(tmp_path, "svhn", "all")
    labels = load_labels(cfg)
    np.testing.assert_array_equal(labels, np.concatenate(list(expected.values())))
    assert len(decode_dataset(cfg, 32, 3)) == len(labels) == 60
    assert labels.min() >= 0 and labels.max() <= 9


# ---------------------------------------------------------------------------- unlabelled


@pytest.mark.parametrize("dataset", ["fake", "celeba", "folder"])
def test_unlabelled_dataset_is_a_one_line_data_error(tmp_path, dataset):
    with pytest.raises(DataError) as err:
        load_labels(data_cfg(tmp_path, dataset))
    assert str(err.value) == (
        f"{dataset} has no class labels; the probe needs a labelled dataset: mnist-sample, "
        "mnist, fashion-mnist, cifar10, cifar100 or svhn"
    )
