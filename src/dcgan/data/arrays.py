"""Shared helpers of the raw-array readers: one-line errors and pixel arrays as uint8.

`why` squeezes an exception onto one line for a `DataError`; `optional`, `existing` and
`read_bytes` import a format's dependency, check a path and read a file, each failing with a
`DataError` that names the file; `check_declared` holds a header's sizes against the file's.
`to_uint8_array` (and `convert_pixels`, with a scale fixed in advance) turns pixels of any
numeric dtype into uint8 (N, H, W, C); `class_values` and `string_names` check class labels.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np

from dcgan.config.schema import MAX_CLASSES
from dcgan.device import memory_room
from dcgan.errors import DataError

PathLike = str | os.PathLike


def why(exc: BaseException) -> str:
    """An exception's text squeezed onto one short line, for the parenthesis of a DataError."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def optional(module: str, package: str, path: object):
    """Import a dependency that only some formats need, naming it if it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(
            f"{path}: reading this format needs the '{package}' package; pip install {package}"
        ) from None


def existing(path: PathLike, what: str, file: bool = False) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory; point the data path at the {what}")
    if file and not path.is_file():
        raise DataError(f"{path}: is a directory, not a file; point the data path at the {what}")
    return path


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({why(exc)})") from None


# ---------------------------------------------------------------- declared sizes

# Compressed pixels never expand more than this in real data (MNIST's gzip: 4.7x); a file that
# claims more is damaged or a decompression bomb.
MAX_EXPANSION = 100
OVERHEAD = 1 << 16  # headers and metadata a container may hold beside its pixels


def memory_cap() -> int:
    """Half the memory this process may use: the most pixels a file may declare before it is
    read."""
    return memory_room() // 2


def check_declared(declared: int, stored: int, source: object, compressed: bool) -> None:
    """Refuse, before reading them, `declared` bytes of data a header promises when `stored`
    bytes could not hold them (after at most MAX_EXPANSION when `compressed`) or when they
    exceed `memory_cap`."""
    room = stored * (MAX_EXPANSION if compressed else 1) + OVERHEAD
    if declared > room:
        raise DataError(
            f"{source}: its header declares {_size(declared)} of data, but the file holds "
            f"{_size(stored)}{' compressed' if compressed else ''}: it is damaged or a "
            "decompression bomb; fetch or save it again"
        )
    if declared > memory_cap():
        raise DataError(
            f"{source}: declares {_size(declared)} of data, more than half the memory this "
            f"process may use ({_size(2 * memory_cap())}); split it into smaller files"
        )


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


# ---------------------------------------------------------------- pixel value conversion


def float_range(lo: float, hi: float, source: object) -> tuple[float, float]:
    """(scale, offset) mapping floats whose values span [lo, hi] onto 0..255."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise DataError(f"{source}: image data contains NaN or inf; clean the array first")
    if lo >= 0 and hi <= 1:
        return 255.0, 0.0
    if lo >= -1 and hi <= 1:
        return 127.5, 1.0
    if lo >= 0 and hi <= 255:
        return 1.0, 0.0
    raise DataError(
        f"{source}: float pixel values span [{lo:g}, {hi:g}]; expected [0, 1], [-1, 1] or "
        "[0, 255], so rescale the data to one of those ranges"
    )


def _scale_float(x: np.ndarray, scale: float, offset: float) -> np.ndarray:
    # float32 keeps huge arrays at half the memory; k/255 still rounds back to k exactly.
    y = (x.astype(np.float32, copy=False) + np.float32(offset)) * np.float32(scale)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def _int_to_uint8(x: np.ndarray, source: object) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.uint16:
        # Round-to-nearest division by 257 maps 0..65535 exactly onto 0..255.
        return ((x.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if x.size and (x.min() < 0 or x.max() > 255):
        raise DataError(
            f"{source}: {x.dtype} pixel values span [{x.min()}, {x.max()}]; expected 0..255, "
            "so rescale the data or store it as uint8"
        )
    return x.astype(np.uint8)


def convert_pixels(x: np.ndarray, source: object, scale: tuple[float, float] | None) -> np.ndarray:
    if x.dtype.kind == "f":
        if scale is None:  # float_range rejects NaN and inf, which poison min and max
            scale = float_range(*min_max(x), source) if x.size else (1.0, 0.0)
        out = _scale_float(x, *scale)
    elif x.dtype.kind in "ui":
        out = _int_to_uint8(x, source)
    else:
        raise DataError(f"{source}: pixel dtype {x.dtype} is not an integer or float type")
    return out[..., None] if out.ndim == 3 else out


def min_max(x: np.ndarray) -> tuple[float, float]:
    return float(np.min(x)), float(np.max(x))


def to_uint8_array(x: np.ndarray, source: object) -> np.ndarray:
    """Pixels of any numeric dtype as uint8, with a channel axis added to (N, H, W) input.

    x: (N, H, W) or (N, H, W, C). Floats within [0, 1] are scaled by 255, within [-1, 1]
    (GAN-style tanh output) mapped by (x + 1) * 127.5, within [0, 255] kept, then rounded and
    clipped; uint16 is divided by 257; other integers must already lie in 0..255. `source`
    names the data in the DataError raised for any other range, NaN or inf.
    Returns uint8 (N, H, W, C).
    """
    return convert_pixels(np.asarray(x), source, None)


# ---------------------------------------------------------------- class labels

# What a labels reader returns: int64 labels (N,), and the class names ((): "0".."max").
ClassLabels = tuple[np.ndarray, tuple[str, ...]]


def class_values(values: np.ndarray, count: int, where: object) -> ClassLabels:
    """Class indices (N,) or one-hot rows (N, K) as int64 (N,) checked against `count` images;
    one-hot rows also give K names "0".."K-1", so a class absent from the data still counts."""
    a = np.asarray(values)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.dtype.kind not in "uibf" or a.ndim not in (1, 2):
        raise DataError(f"{where}: labels of {a.dtype} {a.shape}; expected integers (N,)")
    if len(a) != count:
        raise DataError(f"{where}: {len(a)} labels for {count} images; give one label per image")
    names: tuple[str, ...] = ()
    if a.ndim == 2:  # one-hot, as DCGAN-tensorflow's HDF5 files store them
        if not (np.isin(a, (0, 1)).all() and (a.sum(axis=1) == 1).all()):
            raise DataError(f"{where}: labels {a.shape} are not one-hot rows; store class indices")
        a, names = a.argmax(axis=1), tuple(str(i) for i in range(a.shape[1]))
    if a.size and a.min() < 0:
        raise DataError(f"{where}: class label {a.min()} is negative; use 0..K-1")
    if (a.size and a.max() >= MAX_CLASSES) or (a.ndim == 2 and a.shape[1] > MAX_CLASSES):
        top = a.max() if a.ndim == 1 else a.shape[1] - 1
        raise DataError(f"{where}: class label {top} is beyond the {MAX_CLASSES} classes allowed")
    if a.dtype.kind == "f" and (a != np.round(a)).any():
        raise DataError(f"{where}: labels {a.dtype} hold fractions; store class indices 0..K-1")
    return a.astype(np.int64), names


def string_names(values: object, where: object) -> tuple[str, ...]:
    """A 1-D array of strings (str or bytes, as NumPy and h5py store them) as a tuple."""
    a = np.asarray(values)
    if a.ndim != 1 or a.dtype.kind not in "USO":
        raise DataError(f"{where}: class_names of {a.dtype} {a.shape}; expected strings (K,)")
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in a.tolist())
