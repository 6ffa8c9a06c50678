"""Class labels for the probe: row for row with the decoded images, for every labelled set."""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from datafiles import (
    CIFAR10_LABELS,
    CIFAR100_FINE,
    cifar_files,
    cifar_images,
    py2_pickle,
    write_cifar,
    write_class_folder,
    write_hdf5,
    write_idx,
    write_svhn,
)
from dcgan.config import DataConfig
from dcgan.data.dataset import ImageSet, decode_dataset, open_images
from dcgan.data.labels import DIGITS, FASHION_NAMES, load_labels
from dcgan.data.official import read_cifar, read_cifar_classes, read_cifar_labels
from dcgan.data.sources import mnist_sample_arrays
from dcgan.errors import ConfigError, DataError, Recovered

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

NEEDS = (
    "needs a labelled dataset (mnist-sample, mnist, fashion-mnist, cifar10, cifar100, svhn), a "
    "folder with one sub-folder per class, an npz with a `labels` array or an hdf5 with a "
    "`label` per entry"
)


@pytest.mark.parametrize("dataset", ["celeba", "lsun"])
def test_unlabelled_dataset_is_a_one_line_data_error(tmp_path, dataset):
    with pytest.raises(DataError) as err:
        load_labels(data_cfg(tmp_path, dataset))
    assert str(err.value) == f"{dataset} has no class labels; the probe {NEEDS}"
    with pytest.raises(DataError) as err:
        open_images(data_cfg(tmp_path, dataset), 8, 1, labels=True)
    assert str(err.value) == f"{dataset} has no class labels; --conditional {NEEDS}"


# ---------------------------------------------------------------------------- open_images


def labelled(cfg: DataConfig, size: int = 8, channels: int = 1, part: str = "all") -> ImageSet:
    images = open_images(cfg, size, channels, part=part, labels=True)
    assert images.labels is not None and images.labels.dtype == torch.int64
    return images


def test_image_set_carries_labels_through_rows_subset_and_to():
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1)
    labels = torch.tensor([5, 4, 3, 2, 1, 0])
    full = ImageSet(images, labels=labels, class_names=tuple("abcdef"))
    part = full.subset(torch.tensor([1, 3, 5])).subset(torch.tensor([2, 0]))
    assert part.take(torch.tensor([0, 1])).flatten().tolist() == [5, 1]
    assert part.take_labels(torch.tensor([0, 1])).tolist() == [0, 4]
    assert part.tensor_labels().tolist() == [0, 4] and part.num_classes == 6
    moved = part.to(torch.device("cpu"))
    assert moved.tensor_labels().tolist() == [0, 4] and moved.class_names == full.class_names
    plain = ImageSet(images).subset(torch.tensor([1]))
    assert plain.labels is None and plain.num_classes == 0
    with pytest.raises(DataError, match="opened without class labels"):
        plain.tensor_labels()


def test_unlabelled_open_is_unchanged_and_writes_no_label_cache(tmp_path):
    write_mnist(tmp_path / "mnist", gz=True)
    cfg = data_cfg(tmp_path, "mnist")
    plain = open_images(cfg, 28, 1)
    assert plain.labels is None and plain.class_names == ()
    assert not list((tmp_path / "cache").glob("*.labels.*"))


def test_built_in_labels_and_holdout_keeps_them_with_their_images():
    bundled_images, bundled_labels = mnist_sample_arrays()
    cfg = DataConfig(dataset="mnist-sample", holdout=700)
    for part in ("train", "holdout"):
        got = labelled(cfg, 28, 1, part)
        assert got.class_names == DIGITS
        # the bundled digits are (image, label) pairs: each kept image keeps its own label
        np.testing.assert_array_equal(got.tensor()[:, 0].numpy(), bundled_images[got.rows])
        np.testing.assert_array_equal(got.tensor_labels().numpy(), bundled_labels[got.rows])
    fake = labelled(DataConfig(dataset="fake"), 8, 3)
    again = labelled(DataConfig(dataset="fake", holdout=12), 16, 1, "holdout")
    assert len(fake.labels) == len(fake) == 512 and fake.num_classes == 10
    assert set(fake.labels.tolist()) == set(range(10))  # every class, for conditional tests
    assert torch.equal(again.tensor_labels(), fake.labels[again.rows])  # fixed seed


def test_idx_open_images_labels_and_names(tmp_path):
    written = write_mnist(tmp_path / "mnist", gz=True)
    mnist = labelled(data_cfg(tmp_path, "mnist", "all"), 28)
    assert torch.equal(mnist.labels, torch.from_numpy(split_rows(written, "all")))
    assert torch.equal(mnist.tensor()[:, 0, 0, 0].long(), mnist.labels * 20)
    assert mnist.class_names == DIGITS
    write_mnist(tmp_path / "fashion-mnist", gz=False)
    fashion = labelled(data_cfg(tmp_path, "fashion-mnist"), 28)
    assert fashion.class_names == FASHION_NAMES and FASHION_NAMES[0] == "T-shirt/top"


@pytest.mark.parametrize("as_tarball", [True, False])
def test_cifar_open_images_labels_and_names(tmp_path, as_tarball):
    write_cifar(tmp_path / "cifar10", "cifar10", as_tarball=as_tarball)
    source = write_cifar(tmp_path / "cifar100", "cifar100", as_tarball=as_tarball, seed=3)
    c10 = labelled(data_cfg(tmp_path, "cifar10", "all"), 32, 3)
    np.testing.assert_array_equal(c10.labels, split_rows(stored_cifar_labels("cifar10"), "all"))
    assert c10.class_names == tuple(CIFAR10_LABELS.split())
    c100 = labelled(data_cfg(tmp_path, "cifar100", "test"), 32, 3)
    np.testing.assert_array_equal(c100.labels, stored_cifar_labels("cifar100", seed=3)["test"])
    assert c100.class_names == tuple(CIFAR100_FINE.split()) and c100.num_classes == 100
    if not as_tarball:  # an extracted folder without its meta file: the classes keep numbers
        (source / "meta").unlink()
        _, names = read_cifar_classes(source, "cifar100", "train")
        assert names == tuple(str(i) for i in range(100))


def test_svhn_open_images_labels(tmp_path):
    path = write_svhn(tmp_path / "svhn", "train", n=30, seed=4)
    y = scipy.io.loadmat(path)["y"].reshape(-1).astype(np.int64)
    svhn = labelled(data_cfg(tmp_path, "svhn"), 32, 3)
    assert torch.equal(svhn.labels, torch.from_numpy(np.where(y == 10, 0, y)))
    assert svhn.class_names == DIGITS


# ---------------------------------------------------------------------------- folders


def folder_cfg(root: Path, cache: Path) -> DataConfig:
    return DataConfig(
        dataset="folder", data_root=str(root), cache_dir=str(cache), max_bad_fraction=0.5
    )


def test_folder_classes_are_sub_folders_and_skipped_files_drop_their_labels(tmp_path):
    counts = {"dog": 2, "cat": 3, "emu": 4}
    root = write_class_folder(tmp_path / "pets", counts, damaged=("dog/img_00a.png",))
    for how in ("decoded", "cached"):  # the same labels either way
        got = labelled(folder_cfg(root, tmp_path / "cache"))
        assert f": {how} in " in got.source
        assert got.class_names == ("cat", "dog", "emu")
        assert len(got) == 9 and [f.rsplit("/", 2)[-2:] for f, _ in got.skipped] == [
            ["dog", "img_00a.png"]
        ]
        assert got.tensor_labels().tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
        # each image's grey level encodes its class: 20 * class + 3 * number, number < 4
        assert torch.equal(got.tensor()[:, 0, 0, 0].long() // 20, got.tensor_labels())
    assert len(list((tmp_path / "cache").glob("*.labels.npy"))) == 1


def test_folder_with_images_outside_class_folders_has_no_labels(tmp_path):
    root = write_class_folder(tmp_path / "mixed", {"a": 2, "b": 1})
    Image.new("L", (8, 8)).save(root / "loose.png")
    with pytest.raises(DataError) as err:
        open_images(folder_cfg(root, tmp_path / "cache"), 8, 1, labels=True)
    assert str(err.value) == (
        f"folder {root} has no class labels (1 of 4 images lie outside class sub-folders, e.g. "
        f"loose.png); --conditional {NEEDS}"
    )
    assert not (tmp_path / "cache").exists()  # refused before decoding anything


# ---------------------------------------------------------------------------- npz / hdf5


def write_labelled_npz(path: Path, classes: np.ndarray, **extra: np.ndarray) -> Path:
    """Grey 6x6 images whose pixels are 20 * their class, with the arrays `extra` beside them."""
    grey = (np.asarray(classes) * 20).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=np.broadcast_to(grey[:, None, None], (len(grey), 6, 6)), **extra)
    return path


def npz_cfg(path: Path, holdout: int = 0) -> DataConfig:
    return DataConfig(
        dataset="npz", data_root=str(path), cache_dir=str(path.parent / "cache"), holdout=holdout
    )


def test_npz_labels_names_and_holdout_keep_images_with_labels(tmp_path):
    y = np.random.default_rng(5).integers(0, 4, 40)
    path = write_labelled_npz(tmp_path / "x.npz", y, labels=y, class_names=np.array(list("wxyz")))
    full = labelled(npz_cfg(path))
    assert full.class_names == ("w", "x", "y", "z") and torch.equal(full.labels, torch.tensor(y))
    np.testing.assert_array_equal(load_labels(npz_cfg(path)), y)  # the probe's entry, same owner
    for part in ("train", "holdout"):
        got = labelled(npz_cfg(path, holdout=15), part=part)
        assert len(got) == (15 if part == "holdout" else 25)
        assert torch.equal(got.tensor()[:, 0, 3, 3].long(), got.tensor_labels() * 20)
        index = torch.arange(len(got)).flip(0)
        assert torch.equal(got.take(index)[:, 0, 0, 0].long(), got.take_labels(index) * 20)
    path = write_labelled_npz(tmp_path / "n" / "y.npz", y, labels=y)
    assert labelled(npz_cfg(path)).class_names == ("0", "1", "2", "3")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.arange(3), "3 labels for 5 images"),
        (np.array([0, 1, -1, 0, 1]), "class label -1 is negative"),
        (None, "has no class labels (no `labels` array)"),
    ],
)
def test_npz_bad_or_missing_labels_are_one_line_errors(tmp_path, labels, message):
    extra = {} if labels is None else {"labels": labels}
    path = write_labelled_npz(tmp_path / "bad.npz", np.zeros(5, np.int64), **extra)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        open_images(npz_cfg(path), 6, 1, labels=True)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_hdf5_labels_one_hot_per_entry_and_plain(tmp_path):
    path = write_hdf5(tmp_path / "ids", n=13, layout="ids")  # one-hot `label` per entry
    cfg = DataConfig(dataset="hdf5", data_root=str(path), cache_dir=str(tmp_path / "cache"))
    got = labelled(cfg, 8, 3)
    assert got.tensor_labels().tolist() == [i % 10 for i in range(13)]
    assert got.class_names == DIGITS
    plain = write_hdf5(tmp_path / "plain", n=6, layout="plain")
    with h5py.File(plain, "a") as f:
        f["labels"] = np.array([1, 0, 1, 2, 2, 0])
        f["class_names"] = np.array([b"ant", b"bee", b"cow"])
    cfg = dataclasses.replace(cfg, data_root=str(plain))
    got = labelled(cfg, 8, 3)
    assert got.tensor_labels().tolist() == [1, 0, 1, 2, 2, 0]
    assert got.class_names == ("ant", "bee", "cow")
    bare = write_hdf5(tmp_path / "bare", n=3, layout="plain")
    with pytest.raises(DataError, match=f"hdf5 {re.escape(str(bare))} has no class labels"):
        open_images(dataclasses.replace(cfg, data_root=str(bare)), 8, 3, labels=True)


# ---------------------------------------------------------------------------- the cache


def test_labels_are_cached_with_the_images_and_a_damaged_cache_is_read_again(tmp_path):
    write_cifar(tmp_path / "cifar10", "cifar10", as_tarball=True)
    cfg = data_cfg(tmp_path, "cifar10", "all")
    open_images(cfg, 32, 3)  # images cached without labels first: labels join them later
    first = labelled(cfg, 32, 3)
    (cached,) = (tmp_path / "cache").glob("*.labels.npy")
    assert cached.name.removesuffix(".labels.npy") + ".npy" in first.source
    (tmp_path / "cifar10" / "cifar-10-python.tar.gz").touch()  # same bytes, so labels unchanged
    os.utime(tmp_path / "cifar10" / "cifar-10-python.tar.gz", ns=(1, 1))
    second = labelled(cfg, 32, 3)  # a new key: decoded and read again
    assert torch.equal(first.labels, second.labels) and first.class_names == second.class_names
    for path in (tmp_path / "cache").glob("*.labels.npy"):
        np.save(path, np.zeros(len(first), np.int64))  # wrong labels, CRC no longer matches
    with pytest.warns(Recovered, match="class-label cache .*CRC-32"):
        third = labelled(cfg, 32, 3)
    assert torch.equal(third.labels, first.labels)
    assert labelled(cfg, 32, 3).labels.tolist() == first.labels.tolist()  # rewritten, trusted
