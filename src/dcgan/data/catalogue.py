"""Where each dataset's files are found on disk, and how they decode (their names and what
they are: `specs`).

A dataset's files are searched in `ROOT/NAME/` (where `dcgan download` puts them), in `ROOT`
itself, and in torchvision's layout where one exists, so a tree users already have just works.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan.config import DataConfig
from dcgan.data import containers, decode, official, specs
from dcgan.data.decode import Group
from dcgan.errors import ConfigError, DataError

ArrayReader = Callable[[], tuple[int, Iterator[np.ndarray]]]
_CHUNK = 4096


@dataclass(frozen=True)
class Found:
    """A dataset's files located on disk, ready to decode.

    files: every file whose change must invalidate the decoded cache.
    arrays: for raw-pixel formats, returns (count, chunks of uint8 (n, H, W, C)).
    groups: for encoded images, returns the containers and their image keys.
    """

    description: str
    files: tuple[Path, ...]
    arrays: ArrayReader | None = None
    groups: Callable[[], tuple[Group, ...]] | None = None
    crop: int | None = None


# ---------------------------------------------------------------------------- helpers


def search_dirs(cfg: DataConfig, name: str, extra: tuple[str, ...] = ()) -> list[Path]:
    """Where a dataset's files may be: ROOT/NAME, ROOT, then known third-party layouts."""
    root = Path(cfg.data_root).expanduser()
    return [root / name, root, *(root / e for e in extra)]


def missing(cfg: DataConfig, name: str) -> DataError:
    """The one-line error for absent files: what is expected where, and how to get it."""
    ds = specs.SPECS[name]
    root = Path(cfg.data_root).expanduser()
    how = (
        f"run `dcgan download --dataset {name} --root {root}`"
        if ds.downloadable
        else f"`dcgan download --dataset {name}` prints where to get it"
    )
    return DataError(f"{name}: expected {ds.expects} in {root / name} or {root}; {how}")


def whole(arrays: list[np.ndarray]) -> tuple[int, Iterator[np.ndarray]]:
    """In-memory arrays as (count, chunks)."""
    total = sum(len(a) for a in arrays)
    return total, (a[i : i + _CHUNK] for a in arrays for i in range(0, len(a), _CHUNK))


def split_parts(cfg: DataConfig, train: list[str], test: list[str]) -> list[str]:
    """The file stems a split reads."""
    return {"train": train, "test": test, "all": train + test}[cfg.split]


def no_splits(cfg: DataConfig) -> None:
    if cfg.split == "test":
        raise ConfigError(
            f"split: '{cfg.split}' does not apply to {cfg.dataset}, which has no official test "
            "split; use --split train (or --holdout N to keep images out of training)"
        )


# ---------------------------------------------------------------------------- IDX (MNIST)


def idx_file(directory: Path, prefix: str) -> Path | None:
    """The images file of split `prefix` in `directory`, under any of its names."""
    hits = (directory / n for n in specs.idx_names(prefix, "images"))
    return next((p for p in hits if p.is_file()), None)


def find_idx(cfg: DataConfig) -> Found:
    prefixes = split_parts(cfg, [specs.IDX_PREFIX["train"]], [specs.IDX_PREFIX["test"]])
    for d in search_dirs(cfg, cfg.dataset, (specs.IDX_DIRS[cfg.dataset],)):
        files = [idx_file(d, p) for p in prefixes]
        if all(files):
            paths = tuple(f for f in files if f is not None)
            return Found(
                f"{cfg.dataset} {cfg.split} from {d}",
                paths,
                arrays=lambda paths=paths: whole([official.read_idx(p) for p in paths]),
            )
    raise missing(cfg, cfg.dataset)


# ---------------------------------------------------------------------------- CIFAR


def find_cifar(cfg: DataConfig) -> Found:
    spec = specs.CIFAR[cfg.dataset]
    tarball, folder = spec["archive"], spec["folder"]
    variant, split = cfg.dataset, cfg.split
    for d in search_dirs(cfg, cfg.dataset):
        source = d / folder if (d / folder).is_dir() else d / tarball
        if source.exists():
            files = tuple(sorted(source.iterdir())) if source.is_dir() else (source,)
            return Found(
                f"{variant} {split} from {source}",
                files,
                arrays=lambda s=source: whole([official.read_cifar(s, variant, split)]),
            )
    raise missing(cfg, cfg.dataset)


# ---------------------------------------------------------------------------- SVHN


def find_svhn(cfg: DataConfig) -> Found:
    stems = split_parts(cfg, ["train"], ["test"])
    for d in search_dirs(cfg, "svhn"):
        paths = [d / specs.svhn_name(s) for s in stems]
        if all(p.is_file() for p in paths):
            extra = d / specs.svhn_name(specs.SVHN_EXTRA)
            if cfg.split == "all" and extra.is_file():
                paths.append(extra)
            return Found(
                f"svhn {cfg.split} from {d}",
                tuple(paths),
                arrays=lambda paths=paths: whole([official.read_svhn(paths)]),
            )
    raise missing(cfg, "svhn")


# ---------------------------------------------------------------------------- encoded images


def image_group(path: Path) -> Group:
    """A folder or a zip of images as one group; an empty one is an error."""
    try:
        if path.is_dir():
            group = Group("files", str(path), decode.list_folder(path))
        else:
            group = Group("zip", str(path), decode.list_zip(path))
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable zip of images ({decode.describe(e)})") from None
    if not group.keys:
        kinds = ", ".join(decode.IMAGE_SUFFIXES)
        raise DataError(f"{path}: no images found (looked recursively for {kinds})")
    return group


def image_files(group: Group) -> tuple[Path, ...]:
    """What the cache key covers: each image file of a folder, or the zip itself."""
    if group.kind == "files":
        return tuple(Path(group.base) / k for k in group.keys)
    return (Path(group.base),)


def find_celeba(cfg: DataConfig) -> Found:
    no_splits(cfg)
    for d in search_dirs(cfg, "celeba"):
        for source in (d / name for name in specs.CELEBA_SOURCES):
            if source.exists():
                group = image_group(source)
                return Found(
                    f"celeba from {source}",
                    image_files(group),
                    groups=lambda g=group: (g,),
                    crop=decode.CELEBA_CROP,
                )
    raise missing(cfg, "celeba")


def find_folder(cfg: DataConfig) -> Found:
    no_splits(cfg)
    path = Path(cfg.data_root).expanduser()
    if not path.exists():
        raise DataError(
            f"folder: data_root {path} does not exist; point --data-root at a folder or a .zip "
            "of images"
        )
    group = image_group(path)
    return Found(f"folder {path}", image_files(group), groups=lambda: (group,))


def lsun_dirs(cfg: DataConfig) -> list[Path]:
    classes = [c.strip() for c in cfg.lsun_classes.split(",") if c.strip()]
    if not classes:
        raise ConfigError("lsun_classes: give at least one class, e.g. bedroom_train")
    found = []
    for c in classes:
        dirs = [d / specs.lsun_dir(c) for d in search_dirs(cfg, "lsun")]
        hit = next((d for d in dirs if (d / specs.LSUN_DB).is_file()), None)
        if hit is None:
            root = Path(cfg.data_root).expanduser()
            raise DataError(
                f"lsun: expected the LMDB directory {specs.lsun_dir(c)}/ (holding "
                f"{specs.LSUN_DB}) in "
                f"{root / 'lsun'} or {root}; `dcgan download --dataset lsun` prints where to get it"
            )
        found.append(hit)
    return found


def find_lsun(cfg: DataConfig) -> Found:
    no_splits(cfg)
    dirs = lsun_dirs(cfg)

    def groups() -> tuple[Group, ...]:
        return tuple(
            Group("lmdb", str(d), tuple(k.hex() for k in containers.lmdb_keys(d))) for d in dirs
        )

    files = tuple(d / specs.LSUN_DB for d in dirs)
    return Found(f"lsun {cfg.lsun_classes}", files, groups=groups)


# ---------------------------------------------------------------------------- array files


def single_file(cfg: DataConfig, names: tuple[str, ...], suffixes: tuple[str, ...]) -> Path:
    """data_root itself when it is a file, else the one matching file inside it."""
    root = Path(cfg.data_root).expanduser()
    if root.is_file():
        return root
    if not root.is_dir():
        raise DataError(f"{cfg.dataset}: data_root {root} does not exist; {_point(cfg)}")
    named = [root / n for n in names if (root / n).is_file()]
    matches = named or sorted(p for p in root.iterdir() if p.suffix.lower() in suffixes)
    if len(matches) != 1:
        found = "none" if not matches else ", ".join(p.name for p in matches)
        raise DataError(f"{cfg.dataset}: found {found} in {root}; {_point(cfg)}")
    return matches[0]


def _point(cfg: DataConfig) -> str:
    if cfg.dataset == "npz":
        return "point --data-root at one .npz or .npy file of images [N, H, W(, C)]"
    return (
        f"point --data-root at the HDF5 file ({specs.HDF5_NAMES[0]} with {specs.HDF5_IDS} beside "
        "it, or an `images` array)"
    )


def find_hdf5(cfg: DataConfig) -> Found:
    no_splits(cfg)
    path = single_file(cfg, specs.HDF5_NAMES, specs.HDF5_SUFFIXES)
    ids = path.parent / specs.HDF5_IDS
    ids_path = ids if ids.is_file() else None
    files = (path,) if ids_path is None else (path, ids_path)
    return Found(f"hdf5 {path}", files, arrays=lambda: containers.read_hdf5(path, ids_path))


def find_npz(cfg: DataConfig) -> Found:
    no_splits(cfg)
    path = single_file(cfg, (), specs.NPZ_SUFFIXES)
    return Found(f"npz {path}", (path,), arrays=lambda: whole([containers.read_npz(path)]))


# ---------------------------------------------------------------------------- the catalogue


FINDERS: dict[str, Callable[[DataConfig], Found]] = {
    "mnist": find_idx,
    "fashion-mnist": find_idx,
    "cifar10": find_cifar,
    "cifar100": find_cifar,
    "svhn": find_svhn,
    "celeba": find_celeba,
    "lsun": find_lsun,
    "folder": find_folder,
    "hdf5": find_hdf5,
    "npz": find_npz,
}


def find(cfg: DataConfig) -> Found:
    """The files of file dataset `cfg.dataset` on disk (a one-line error when missing)."""
    return FINDERS[cfg.dataset](cfg)


_USER_DATA = ("folder", "hdf5", "npz")


def presence(name: str, root: Path) -> str:
    """'present: where' or 'missing' for a dataset under `root` (user data is not probed)."""
    if name in _USER_DATA:
        return "your files: point --data-root at them"
    if name == "lsun":
        dirs = sorted(
            p.name for d in (root / "lsun", root) if d.is_dir() for p in d.glob(specs.lsun_dir("*"))
        )
        return f"present: {', '.join(dirs)}" if dirs else "missing"
    try:
        found = find(DataConfig(dataset=name, data_root=str(root)))
    except ConfigError:
        return "missing"
    return f"present: {found.description.split(' from ')[-1]}"


def dataset_table(root: Path) -> str:
    """Every dataset name, what it is, the files it expects and whether they are under `root`."""
    lines = [f"datasets under {root} (files go in {root}/NAME/ or {root}/):"]
    lines += [
        f"  {'mnist-sample':14} bundled: 5,000 real MNIST digits (always present)",
        f"  {'fake':14} built in: random images for smoke tests",
    ]
    for ds in specs.SPECS.values():
        lines.append(f"  {ds.name:14} {ds.summary}")
        lines.append(f"  {'':14}   expects {ds.expects}")
        lines.append(f"  {'':14}   {presence(ds.name, root)}")
    return "\n".join(lines)
