"""Class labels, row for row with the images a dataset decodes to (same files, same order).

`source_labels` is the one reader per format: labels come from the very files the catalogue
finds for the images, one per source item (for a folder: one per image file, before unreadable
files are skipped), so a split ("train", "test", or "all" = train then test) lines up by
construction; counts are checked against the images anyway. `decode_dataset` caches them beside
the decoded images and drops a skipped file's label with its image (`for_decoded`);
`load_labels` reads the labels alone (`open_images(..., labels=True)` gives them with the
images, as training and the probe take them).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan.config import DataConfig
from dcgan.data import containers, official, specs
from dcgan.data.arrays import why
from dcgan.data.catalogue import Found, find
from dcgan.errors import DataError

# The specs say which sets carry labels; the bundled sample does, and `fake` too (random
# classes, for tests). The "maybe" ones are labelled when their files carry labels.
LABELLED = ("mnist-sample", *(n for n, d in specs.SPECS.items() if d.labels == "always"))
MAYBE_LABELLED = tuple(n for n, d in specs.SPECS.items() if d.labels == "maybe")
DIGITS = tuple(str(i) for i in range(10))
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


@dataclass(frozen=True)
class Labels:
    """int64 class labels (N,) in 0..len(class_names)-1, and the name of each class."""

    values: np.ndarray
    class_names: tuple[str, ...]


def no_labels(what: str, need: str, detail: str = "") -> DataError:
    """The one-line error for a dataset without labels: what it would need to have them."""
    return DataError(
        f"{what} has no class labels{detail}; {need} needs a labelled dataset "
        f"({', '.join(LABELLED)}), a folder with one sub-folder per class, an npz with a "
        "`labels` array or an hdf5 with a `label` per entry"
    )


def check_labelled(cfg: DataConfig, need: str = "--conditional") -> None:
    """Fail, before any file is read, for a dataset that never has labels (celeba, lsun)."""
    if cfg.dataset not in (*LABELLED, *MAYBE_LABELLED, "fake"):
        raise no_labels(cfg.dataset, need)


def named(values: np.ndarray, names: tuple[str, ...], where: object) -> Labels:
    """Labels with their names; without names, classes "0".."max" (checked to be >= 0)."""
    if values.size and values.min() < 0:
        raise DataError(f"{where}: class label {values.min()} is negative; use 0..K-1")
    top = int(values.max()) if values.size else -1
    names = names or tuple(str(i) for i in range(top + 1))
    if top >= len(names):
        raise DataError(f"{where}: class label {top} but only {len(names)} class names")
    return Labels(values.astype(np.int64), names)


def builtin_labels(cfg: DataConfig) -> Labels:
    """The bundled digits' labels (5000,) or the `fake` set's random classes (512,)."""
    from dcgan.data.catalogue import no_splits
    from dcgan.data.sources import fake_labels, mnist_sample_arrays

    no_splits(cfg)  # as decode_dataset does: neither has a test split
    if cfg.dataset == "fake":
        return named(fake_labels(), DIGITS, "fake")
    return named(mnist_sample_arrays()[1].astype(np.int64), DIGITS, "mnist-sample")


def source_labels(cfg: DataConfig, found: Found, need: str = "--conditional") -> Labels:
    """The labels of every item of `found` (dataset `cfg.dataset`), in decoding order."""
    if cfg.dataset == "svhn":
        return named(np.concatenate([svhn_labels(p) for p in found.files]), DIGITS, found.files[0])
    if cfg.dataset in ("cifar10", "cifar100"):
        first = found.files[0]  # the tarball itself, or the first batch file in the folder
        source = first if first.name == specs.CIFAR[cfg.dataset]["archive"] else first.parent
        values, names = official.read_cifar_classes(source, cfg.dataset, cfg.split)
        return named(values, names, source)
    if cfg.dataset in ("mnist", "fashion-mnist"):
        names = DIGITS if cfg.dataset == "mnist" else FASHION_NAMES
        return named(np.concatenate([idx_labels(p) for p in found.files]), names, found.files[0])
    if cfg.dataset == "folder":
        return folder_labels(found, need)
    path = found.files[0]
    if cfg.dataset == "npz":
        read = containers.read_npz_labels(path)
        detail = " (no `labels` array)"
    else:
        ids = found.files[1] if len(found.files) > 1 else None
        read = containers.read_hdf5_labels(path, ids)
        detail = " (no `label` per entry, nor a `labels` array)"
    if read is None:
        raise no_labels(f"{cfg.dataset} {path}", need, detail)
    return named(*read, path)


def load_labels(cfg: DataConfig) -> np.ndarray:
    """int64 class labels (N,) of dataset `cfg.dataset`, split `cfg.split`, row for row with
    `decode_dataset(cfg, ...)` (for a folder with unreadable images, which decoding skips,
    `open_images(..., labels=True)` drops their labels; this reads one per file)."""
    check_labelled(cfg, "the probe")
    if cfg.dataset in ("mnist-sample", "fake"):
        return builtin_labels(cfg).values
    return source_labels(cfg, find(cfg), "the probe").values


# ---------------------------------------------------------------------------- folders


def folder_labels(found: Found, need: str = "--conditional") -> Labels:
    """Each image's class: the first path component under the root (a sub-folder of a folder,
    the top folder of a zip's member); classes numbered in sorted order of their names."""
    assert found.groups is not None
    (group,) = found.groups()  # find_folder lists the files (or members) once, here for free
    outside = [k for k in group.keys if "/" not in k]
    if outside:
        detail = (
            f" ({len(outside)} of {len(group.keys)} images lie outside class sub-folders, e.g. "
            f"{outside[0]})"
        )
        raise no_labels(f"folder {group.base}", need, detail)
    classes = [k.split("/", 1)[0] for k in group.keys]
    names = tuple(sorted(set(classes)))
    index = {name: i for i, name in enumerate(names)}
    return Labels(np.array([index[c] for c in classes], np.int64), names)


def for_decoded(labels: Labels, found: Found, skipped: tuple[tuple[str, str], ...]) -> Labels:
    """`labels` of every source item without those of the files decoding skipped, so they
    stay row for row with the decoded images (only encoded images are ever skipped)."""
    if not skipped or found.groups is None:
        return labels
    gone = {file for file, _ in skipped}
    keep = [g.label(k) not in gone for g in found.groups() for k in g.keys]
    return Labels(labels.values[np.array(keep, bool)], labels.class_names)


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
    """The labels file of the same split beside `images`, under any of its names."""
    names = specs.idx_names(images.name.split("-images", 1)[0], "labels")
    for name in names:
        if (images.parent / name).is_file():
            return images.parent / name
    raise DataError(
        f"{images.parent / names[0]}: missing; class labels need the "
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
    """An official SVHN file's `y` (n, 1) in 1..10, where 10 stands for the digit 0."""
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
            f"'{specs.svhn_name('*')}' files"
        )
    return np.where(y == 10, 0, y).astype(np.int64)
