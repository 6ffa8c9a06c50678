"""Class labels, row for row with the images `decode_dataset` returns (same files, same order).

Only the probe needs them, and only labelled datasets have them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from dcgan.config import DataConfig
from dcgan.data import formats
from dcgan.data.errors import DataError

LABELLED = ("mnist-sample", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn")


def load_labels(cfg: DataConfig) -> np.ndarray:
    """int64 labels (N,) of dataset `cfg.dataset`, split `cfg.split`."""
    if cfg.dataset not in LABELLED:
        raise DataError(
            f"{cfg.dataset} has no class labels; the probe needs a labelled dataset: "
            f"{', '.join(LABELLED)}"
        )
    if cfg.dataset == "mnist-sample":
        from dcgan.data.sources import mnist_sample_arrays

        return mnist_sample_arrays()[1].astype(np.int64)
    from dcgan.data.catalogue import CATALOGUE

    found = CATALOGUE[cfg.dataset].find(cfg)
    if cfg.dataset in ("mnist", "fashion-mnist"):
        return np.concatenate([formats.read_idx(idx_labels_path(p)) for p in found.files])
    if cfg.dataset == "svhn":
        return np.concatenate([svhn_labels(p) for p in found.files])
    return cifar_labels(found.files, cfg.dataset, cfg.split)


def idx_labels_path(images: Path) -> Path:
    """`train-images-idx3-ubyte.gz` -> `train-labels-idx1-ubyte.gz` (any of its spellings)."""
    name = images.name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
    path = images.with_name(name)
    if not path.is_file():
        raise DataError(f"{path}: missing; the labels file belongs beside {images.name}")
    return path


def svhn_labels(path: Path) -> np.ndarray:
    """SVHN's `y` (n, 1), where 10 stands for the digit 0."""
    from scipy.io import loadmat

    y = loadmat(path, variable_names=["y"]).get("y")
    if y is None:
        raise DataError(f"{path}: no 'y' labels in this SVHN file")
    y = y.reshape(-1).astype(np.int64)
    return np.where(y == 10, 0, y)


def cifar_labels(files: tuple[Path, ...], variant: str, split: str) -> np.ndarray:
    """The `labels` (CIFAR-10) or `fine_labels` (CIFAR-100) of the split's batches, in order."""
    source = files[0] if len(files) == 1 else files[0].parent
    _, names = formats._cifar_spec(source, variant, split)
    raw = _cifar_raw(source, names)
    key = b"labels" if variant == "cifar10" else b"fine_labels"
    out = []
    for name in names:
        batch = formats._RestrictedUnpickler(io.BytesIO(raw[name]), encoding="bytes").load()
        out.append(np.asarray(batch[key], dtype=np.int64))
    return np.concatenate(out)


def _cifar_raw(source: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    if source.is_dir():
        return {n: (source / n).read_bytes() for n in names}
    import tarfile

    with tarfile.open(source, "r:*") as tar:
        return {
            m.name.rsplit("/", 1)[-1]: tar.extractfile(m).read()
            for m in tar
            if m.isfile() and m.name.rsplit("/", 1)[-1] in names
        }
