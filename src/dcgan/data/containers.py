"""Readers for images stored in generic containers: HDF5, NumPy .npz/.npy and LSUN's LMDB.

HDF5 files stream in chunks, so files larger than memory work, with one float scale for the
whole file; LMDB environments are cached per process and reopened after a fork. Malformed
input becomes a one-line `DataError` that names the file, never a traceback from h5py,
NumPy's zip reader or lmdb.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from dcgan.data.arrays import (
    ClassLabels,
    PathLike,
    check_declared,
    class_values,
    convert_pixels,
    existing,
    float_range,
    min_max,
    optional,
    string_names,
    to_uint8_array,
    why,
)
from dcgan.data.specs import HDF5_IDS, HDF5_NAMES, LSUN_DB, lsun_dir
from dcgan.errors import DataError

HDF5_CHUNK = 1024
NPZ_KEYS = ("images", "x_train", "x", "X", "arr_0")


# ---------------------------------------------------------------- HDF5


def _h5_open(path: Path):
    h5py = optional("h5py", "h5py", path)
    if not path.is_file() or not h5py.is_hdf5(path):
        raise DataError(
            f"{path}: not an HDF5 file; give an .h5 file with an 'images' dataset or a "
            f"'{HDF5_NAMES[0]}' with an {HDF5_IDS} beside it"
        )
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: cannot open HDF5 file ({why(exc)})") from None


def _float_scale_over(arrays: Iterable[np.ndarray], source: object) -> tuple[float, float]:
    """One scale for a whole file, so every chunk maps the same value to the same pixel."""
    lo, hi = np.inf, -np.inf
    for a in arrays:
        if a.size:
            if not np.isfinite(a).all():
                raise DataError(f"{source}: image data contains NaN or inf; clean it first")
            a_lo, a_hi = min_max(a)
            lo, hi = min(lo, a_lo), max(hi, a_hi)
    return float_range(lo, hi, source) if np.isfinite(lo) else (1.0, 0.0)


def _h5_read(dataset, index, path: Path) -> np.ndarray:
    try:
        return dataset[index]
    except (OSError, ValueError, TypeError) as exc:  # h5py's errors for damaged data
        raise DataError(f"{path}: cannot read {dataset.name} ({why(exc)})") from None


def _plain_chunks(path: Path, scale: tuple[float, float] | None) -> Iterator[np.ndarray]:
    with _h5_open(path) as f:
        images = f["images"]
        for start in range(0, images.shape[0], HDF5_CHUNK):
            chunk = _h5_read(images, slice(start, start + HDF5_CHUNK), path)
            yield convert_pixels(chunk, path, scale)


def _read_plain(f, path: Path) -> tuple[int, Iterator[np.ndarray]]:
    images = f["images"]
    if images.ndim not in (3, 4):
        raise DataError(
            f"{path}: dataset 'images' has shape {images.shape}; expected (N, H, W[, C])"
        )
    # HDF5 reads unwritten chunks as a fill value: a 1.4 KB file may declare 10^7 images
    stored, compressed = images.id.get_storage_size(), bool(images.compression or images.chunks)
    check_declared(images.size * images.dtype.itemsize, stored, f"{path} (images)", compressed)
    scale = None
    if images.dtype.kind == "f":
        starts = range(0, images.shape[0], HDF5_CHUNK)
        chunks = (_h5_read(images, slice(s, s + HDF5_CHUNK), path) for s in starts)
        scale = _float_scale_over(chunks, path)
    return images.shape[0], _plain_chunks(path, scale)


def _read_ids_file(ids_path: Path) -> list[str]:
    try:
        text = ids_path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{ids_path}: cannot read the id list ({why(exc)})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _id_image(f, ident: str, path: Path):
    """The `image` dataset of one id's group, checked to exist and hold one image."""
    h5py = optional("h5py", "h5py", path)
    group = f.get(ident)
    if group is None:
        raise DataError(f"{path}: id {ident!r} from {HDF5_IDS} is not in the file; fix {HDF5_IDS}")
    image = group.get("image") if isinstance(group, h5py.Group) else None
    if not isinstance(image, h5py.Dataset) or image.ndim not in (2, 3):
        raise DataError(f"{path}: id {ident!r} has no 'image' dataset of shape [h, w, c]")
    return image


def _id_chunks(path: Path, ids: list[str], scale) -> Iterator[np.ndarray]:
    with _h5_open(path) as f:
        for ident in ids:
            image = _h5_read(_id_image(f, ident, path), (), path)
            image = image[..., None] if image.ndim == 2 else image
            yield convert_pixels(image[None], path, scale)


def _read_ids(f, path: Path, ids_path: Path) -> tuple[int, Iterator[np.ndarray]]:
    ids = _read_ids_file(ids_path)
    # Check every id now, so a bad file fails before training starts rather than mid-epoch.
    datasets = [_id_image(f, ident, path) for ident in ids]
    scale = None
    if any(d.dtype.kind == "f" for d in datasets):
        floats = (_h5_read(d, (), path) for d in datasets if d.dtype.kind == "f")
        scale = _float_scale_over(floats, path)
    return len(ids), _id_chunks(path, ids, scale)


def read_hdf5(path: PathLike, ids_path: PathLike | None = None) -> tuple[int, Iterator[np.ndarray]]:
    """Images from an HDF5 file, streamed so that files larger than memory work.

    Two layouts: a top-level dataset `images` of shape (N, H, W[, C]), yielded in chunks of
    uint8 (<= 1024, H, W, C); or one group per id, each with a dataset `image` [h, w, c],
    listed in `ids_path` (default: `specs.HDF5_IDS` beside the file), yielded as uint8 (1, h, w, c).
    Returns (N, iterator of chunks); the file is only reopened when iteration starts.
    """
    path = existing(path, "HDF5 file")
    ids_path = Path(ids_path) if ids_path is not None else path.with_name(HDF5_IDS)
    h5py = optional("h5py", "h5py", path)
    with _h5_open(path) as f:
        if isinstance(f.get("images"), h5py.Dataset):
            return _read_plain(f, path)
        if ids_path.is_file():
            return _read_ids(f, path, ids_path)
    raise DataError(
        f"{path}: HDF5 file has no 'images' dataset and there is no {ids_path}; add one or "
        "the other"
    )


# ---------------------------------------------------------------- NumPy .npz / .npy


def _pick_npz_array(npz, path: Path) -> np.ndarray:
    for key in NPZ_KEYS:
        if key in npz.files:
            return _npz_array(npz, key, path)
    arrays = {key: _npz_array(npz, key, path) for key in npz.files}
    images = [key for key, a in arrays.items() if a.ndim in (3, 4)]
    if len(images) == 1:
        return arrays[images[0]]
    raise DataError(
        f"{path}: cannot tell which array holds the images (keys: {', '.join(npz.files) or 'none'}"
        "); save them under the key 'images'"
    )


def _npz_array(npz, key: str, path: Path) -> np.ndarray:
    """`npz[key]`, which NumPy hands back as raw bytes when the record is not a .npy array."""
    value = npz[key]
    if not isinstance(value, np.ndarray):
        raise DataError(f"{path}: its record {key!r} is not a NumPy array; save with numpy.savez")
    return value


def _head(path: Path, n: int) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({why(exc)})") from None


def _load_npz(path: Path) -> np.ndarray:
    magic = _head(path, 6)
    if magic[:4] != b"PK\x03\x04" and magic != b"\x93NUMPY":
        raise DataError(
            f"{path}: not a NumPy .npz/.npy file (no zip or .npy signature); save the images "
            "with numpy.savez"
        )
    try:
        _check_npy_sizes(path)
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # a bare .npy
            return loaded
        with loaded:
            return _pick_npz_array(loaded, path)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path}: unreadable NumPy file ({why(exc)}); save plain numeric arrays with "
            "numpy.savez"
        ) from None


def read_npz(path: PathLike) -> np.ndarray:
    """Images from a NumPy `.npz` (or `.npy`) file, uint8 or float, channels last or first.

    Of several arrays the first of `images`, `x_train`, `x`, `X`, `arr_0` is taken, else the
    only 3- or 4-dim one. Input [N, H, W], [N, H, W, C] or [N, C, H, W] with C in (1, 3, 4).
    Returns uint8 (N, H, W, C).
    """
    path = existing(path, ".npz file", file=True)
    x = _load_npz(path)
    if x.ndim not in (3, 4):
        raise DataError(f"{path}: array has shape {x.shape}; expected (N, H, W[, C])")
    if x.ndim == 4 and x.shape[1] in (1, 3, 4) and x.shape[3] not in (1, 3, 4):
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return to_uint8_array(x, path)


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the .npy array whose file `f` is at its start."""
    fmt = np.lib.format
    v1 = fmt.read_magic(f) == (1, 0)
    shape, _, dtype = (fmt.read_array_header_1_0 if v1 else fmt.read_array_header_2_0)(f)
    return shape, dtype


def _check_npy_sizes(path: Path) -> None:
    """Every array's declared size against the bytes that hold it, before NumPy allocates it:
    a 346-byte file must not make it ask for a (10^12, 28, 28) array."""
    if _head(path, 4) == b"PK\x03\x04":
        _npz_shapes(path)
        return
    with path.open("rb") as f:  # a bare .npy
        shape, dtype = _npy_header(f)
    check_declared(math.prod(shape) * dtype.itemsize, path.stat().st_size, path, False)


def _npz_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every array in an .npz, read from the .npy headers without the data, each
    declared size checked against the bytes of its record (`check_declared`)."""
    shapes, total = {}, path.stat().st_size
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with zf.open(info) as f:
                shape, dtype = _npy_header(f)
            stored = min(info.compress_size, total)
            compressed = info.compress_type != zipfile.ZIP_STORED
            where = f"{path} ({info.filename})"
            check_declared(math.prod(shape) * dtype.itemsize, stored, where, compressed)
            shapes[info.filename.removesuffix(".npy")] = shape
    return shapes


def _npz_image_count(shapes: dict[str, tuple[int, ...]], path: Path) -> int:
    """How many images `read_npz` finds: the same key choice, from the shapes alone."""
    keys = [k for k in NPZ_KEYS if k in shapes] or [
        k for k, s in shapes.items() if len(s) in (3, 4)
    ]
    if not keys or (keys[0] not in NPZ_KEYS and len(keys) > 1):
        raise DataError(f"{path}: cannot tell which array holds the images; save them as 'images'")
    return shapes[keys[0]][0]


def read_npz_labels(path: PathLike) -> ClassLabels | None:
    """The `labels` array (N,) of an .npz, with its `class_names` (K,) strings if present.

    None for a bare .npy or an .npz without `labels`. Returns int64 (N,), names."""
    path = existing(path, ".npz file", file=True)
    if _head(path, 4) != b"PK\x03\x04":
        return None
    try:
        shapes = _npz_shapes(path)
        if "labels" not in shapes:
            return None
        with np.load(path, allow_pickle=False) as npz:
            labels = _npz_array(npz, "labels", path)
            names = _npz_array(npz, "class_names", path) if "class_names" in shapes else None
    except DataError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path}: unreadable labels ({why(exc)}); save them with numpy.savez"
        ) from None
    values, one_hot = class_values(labels, _npz_image_count(shapes, path), path)
    return values, (string_names(names, path) if names is not None else one_hot)


def _h5_id_labels(f, path: Path, ids: list[str]) -> np.ndarray | None:
    """Each id's `label` (a class index or a one-hot row); None when no id has one."""
    h5py = optional("h5py", "h5py", path)
    # Read before the images, so a malformed entry must fail here as it would there: one line.
    groups = [f.get(ident) for ident in ids]
    found = [g.get("label") if isinstance(g, h5py.Group) else None for g in groups]
    found = [d if isinstance(d, h5py.Dataset) else None for d in found]
    if all(d is None for d in found):
        return None
    for ident, d in zip(ids, found, strict=True):
        if d is None:
            raise DataError(f"{path}: id {ident!r} has no 'label'; give every entry one or none")
    rows = [np.asarray(_h5_read(d, (), path)).reshape(-1) for d in found]
    if len({r.shape for r in rows}) > 1:
        raise DataError(f"{path}: the entries' labels differ in shape; give each one class index")
    return np.stack(rows)


def read_hdf5_labels(path: PathLike, ids_path: PathLike | None = None) -> ClassLabels | None:
    """The labels of `read_hdf5(path, ids_path)`'s images, row for row, and the class names.

    Per-id layout: each group's `label`, a class index or a one-hot row (K,); `images` layout:
    a top-level `labels` (N,) or (N, K). Names: a top-level `class_names` (K,) of strings if
    present. None when the file has no labels. Returns int64 (N,), names.
    """
    path = existing(path, "HDF5 file")
    ids_path = Path(ids_path) if ids_path is not None else path.with_name(HDF5_IDS)
    h5py = optional("h5py", "h5py", path)
    with _h5_open(path) as f:
        if isinstance(f.get("images"), h5py.Dataset):
            plain = f.get("labels")
            raw = _h5_read(plain, (), path) if isinstance(plain, h5py.Dataset) else None
            count = f["images"].shape[0]
        else:
            ids = _read_ids_file(ids_path) if ids_path.is_file() else []
            raw, count = _h5_id_labels(f, path, ids), len(ids)
        names = f.get("class_names")
        if isinstance(names, h5py.Dataset):
            names = string_names(_h5_read(names, (), path), path)
    if raw is None:
        return None
    values, one_hot = class_values(raw, count, path)
    return values, names if isinstance(names, tuple) else one_hot


# ---------------------------------------------------------------- LSUN LMDB

# Environments opened by this process, by path. A forked worker must not use its parent's
# (LMDB forbids using an environment after fork), so the cache remembers whose it is and a
# child drops the inherited ones unclosed (py-lmdb skips closing them in a child) and reopens.
_LMDB_ENVS: dict[str, object] = {}
_LMDB_PID: list[int] = [os.getpid()]


def _lmdb_env(path: PathLike):
    lmdb = optional("lmdb", "lmdb", path)
    if _LMDB_PID[0] != os.getpid():
        _LMDB_ENVS.clear()
        _LMDB_PID[0] = os.getpid()
    key = os.path.abspath(path)
    env = _LMDB_ENVS.get(key)
    if env is None:
        if not Path(key).is_dir():
            raise DataError(
                f"{path}: not an LMDB directory; give the folder (e.g. "
                f"{lsun_dir('bedroom_train')}/) that holds {LSUN_DB}"
            )
        try:
            env = lmdb.open(key, readonly=True, lock=False, readahead=False, meminit=False)
        except lmdb.Error as exc:
            reason = why(exc).replace(f"{key}: ", "")
            raise DataError(
                f"{path}: not an LMDB database ({reason}); give the folder that holds "
                f"{LSUN_DB}, as unzipped from the LSUN download"
            ) from None
        _LMDB_ENVS[key] = env
    return env


def lmdb_keys(path: PathLike) -> list[bytes]:
    """Every key of an LSUN-style LMDB directory, in the database's (sorted) order."""
    with _lmdb_env(path).begin(buffers=False) as txn:
        return list(txn.cursor().iternext(keys=True, values=False))


def lmdb_read(path: PathLike, keys: Sequence[bytes]) -> list[bytes]:
    """The values (encoded JPEG/WebP image bytes) stored under `keys`, in the same order."""
    out = []
    with _lmdb_env(path).begin(buffers=False) as txn:
        for key in keys:
            value = txn.get(key)
            if value is None:
                raise DataError(f"{path}: LMDB has no key {key!r}; rebuild the key list")
            out.append(value)
    return out
