"""Class labels, row for row with the images `decode_dataset` returns (same files, same order).

Only the linear probe needs them, and only the labelled datasets have them. Labels are read
from the very files the catalogue finds for the images, so a split ("train", "test", or "all"
= train then test) lines up by construction; counts are checked against the images anyway.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from dcgan.config import DataConfig
from dcgan.data import official
from dcgan.data.arrays import why
from dcgan.errors import DataError

LABELLED = ("mnist-sample", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn")


def load_labels(cfg: DataConfig) -> np.ndarray:
    """int64 class labels (N,) of dataset `cfg.dataset`, split `cfg.split`."""
    if cfg.dataset not in LABELLED:
        names = f"{', '.join(LABELLED[:-1])} or {LABELLED[-1]}"
        raise DataError(
            f"{cfg.dataset} has no class labels; the probe needs a labelled dataset: {names}"
        )
    if cfg.dataset == "mnist-sample":
        return sample_labels(cfg)
    from dcgan.data.catalogue import CATALOGUE

    found = CATALOGUE[cfg.dataset].find(cfg)
    if cfg.dataset == "svhn":
        return np.concatenate([svhn_labels(p) for p in found.files])
    if cfg.dataset in ("cifar10", "cifar100"):
        first = found.files[0]  # the tarball itself, or the first batch file in the folder
        source = first if first.name == official.CIFAR[cfg.dataset]["archive"] else first.parent
        return official.read_cifar_labels(source, cfg.dataset, cfg.split)
    return np.concatenate([idx_labels(p) for p in found.files])


def sample_labels(cfg: DataConfig) -> np.ndarray:
    """The bundled digits' labels (5000,), in the order `load_mnist_sample` keeps."""
    from dcgan.data.catalogue import no_splits
    from dcgan.data.sources import mnist_sample_arrays

    no_splits(cfg)  # as decode_dataset does: the sample has no test split
    return mnist_sample_arrays()[1].astype(np.int64)


# ---------------------------------------------------------------------------- IDX (MNIST)


def idx_labels(images: Path) -> np.ndarray:
    """The labels file beside an IDX images file, checked to hold one label per image."""
    path = idx_labels_path(images)
    labels = official.read_idx(path)
    if labels.ndim != 1:
        raise DataError(f"{path}: holds images, not labels; use the official labels file")
    n_images = idx_count(images)
    if len(labels) != n_images:
        raise DataError(
            f"{path}: {len(labels)} labels for the {n_images} images of {images.name}; use the "
            "labels file that comes with those images"
        )
    return labels.astype(np.int64)


def idx_labels_path(images: Path) -> Path:
    """`{prefix}-labels-idx1-ubyte[.gz]` (or the dotted spelling) beside `images`."""
    prefix = images.name.split("-images", 1)[0]
    for stem in (f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"):
        for suffix in (".gz", ""):
            if (images.parent / (stem + suffix)).is_file():
                return images.parent / (stem + suffix)
    raise DataError(
        f"{images.parent / (prefix + '-labels-idx1-ubyte.gz')}: missing; the probe needs the "
        f"labels file beside {images.name} (`dcgan download` fetches both)"
    )


def idx_count(path: Path) -> int:
    """The item count in an IDX file's header, without reading the payload."""
    with path.open("rb") as f:
        gzipped = f.read(2) == official.GZIP_MAGIC
    with gzip.open(path, "rb") if gzipped else path.open("rb") as f:
        head = f.read(8)
    # A short or foreign header gives a count that the caller's comparison rejects.
    return int.from_bytes(head[4:8], "big")


# ---------------------------------------------------------------------------- SVHN


def svhn_labels(path: Path) -> np.ndarray:
    """A `*_32x32.mat` file's `y` (n, 1) in 1..10, where 10 stands for the digit 0."""
    from scipy.io import loadmat, whosmat

    try:
        n_images = {name: shape for name, shape, _ in whosmat(path)}["X"][-1]
        y = loadmat(path, variable_names=["y"]).get("y")
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError, KeyError...
        raise DataError(f"{path}: cannot read SVHN's X and y ({why(exc)})") from None
    y = np.asarray(y if y is not None else []).reshape(-1)
    if len(y) != n_images or not ((y >= 1) & (y <= 10)).all():
        raise DataError(
            f"{path}: no 'y' of {n_images} labels in 1..10; use the official SVHN "
            "'*_32x32.mat' files"
        )
    return np.where(y == 10, 0, y).astype(np.int64)
