"""Readers for datasets that ship raw pixel arrays, in the layouts their official sources use.

Every reader returns uint8 images in (N, H, W, C) layout with C = 1 or 3 (RGBA only where the
file itself holds 4 channels) and turns any malformed input into a one-line `DataError` that
names the file, never a traceback from struct, pickle, tarfile, h5py or scipy.
"""

from __future__ import annotations

import gzip
import importlib
import io
import os
import pickle
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from dcgan.data.errors import DataError

try:  # NumPy >= 2 renamed numpy.core to numpy._core; old pickles still name numpy.core.
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct

PathLike = str | os.PathLike

HDF5_CHUNK = 1024
IDX_IMAGES = 0x00000803
IDX_LABELS = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"
NPZ_KEYS = ("images", "x_train", "x", "X", "arr_0")

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR = {
    "cifar10": {
        "archive": "cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
        "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test": ("test_batch",),
        "labels": (b"labels", 10),  # the batch key of the class labels, and the class count
    },
    "cifar100": {
        "archive": "cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
        "train": ("train",),
        "test": ("test",),
        "labels": (b"fine_labels", 100),
    },
}


def _why(exc: BaseException) -> str:
    """An exception's text squeezed onto one short line, for the parenthesis of a DataError."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _optional(module: str, package: str, path: object):
    """Import a dependency that only some formats need, naming it if it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(
            f"{path}: reading this format needs the '{package}' package; pip install {package}"
        ) from None


def _existing(path: PathLike, what: str, file: bool = False) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory; point the data path at the {what}")
    if file and not path.is_file():
        raise DataError(f"{path}: is a directory, not a file; point the data path at the {what}")
    return path


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({_why(exc)})") from None


# ---------------------------------------------------------------- pixel value conversion


def _float_range(lo: float, hi: float, source: object) -> tuple[float, float]:
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


def _convert(x: np.ndarray, source: object, scale: tuple[float, float] | None) -> np.ndarray:
    if x.dtype.kind == "f":
        if scale is None:  # _float_range rejects NaN and inf, which poison min and max
            scale = _float_range(*_min_max(x), source) if x.size else (1.0, 0.0)
        out = _scale_float(x, *scale)
    elif x.dtype.kind in "ui":
        out = _int_to_uint8(x, source)
    else:
        raise DataError(f"{source}: pixel dtype {x.dtype} is not an integer or float type")
    return out[..., None] if out.ndim == 3 else out


def _min_max(x: np.ndarray) -> tuple[float, float]:
    return float(np.min(x)), float(np.max(x))


def to_uint8_array(x: np.ndarray, source: object) -> np.ndarray:
    """Pixels of any numeric dtype as uint8, with a channel axis added to (N, H, W) input.

    x: (N, H, W) or (N, H, W, C). Floats within [0, 1] are scaled by 255, within [-1, 1]
    (GAN-style tanh output) mapped by (x + 1) * 127.5, within [0, 255] kept, then rounded and
    clipped; uint16 is divided by 257; other integers must already lie in 0..255. `source`
    names the data in the DataError raised for any other range, NaN or inf.
    Returns uint8 (N, H, W, C).
    """
    return _convert(np.asarray(x), source, None)


# ---------------------------------------------------------------- MNIST / Fashion-MNIST IDX


def _read_maybe_gzip(path: Path) -> bytes:
    raw = _read_bytes(path)
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: corrupt or truncated gzip data ({_why(exc)}); download the file again"
        ) from None


def read_idx(path: PathLike) -> np.ndarray:
    """An MNIST-style IDX file, gzipped or raw (told apart by the gzip magic bytes).

    Returns uint8 images (N, H, W, 1) for an idx3 image file, or labels (N,) for an idx1 file.
    """
    path = _existing(path, "MNIST-style '*-idx3-ubyte.gz' file", file=True)
    data = _read_maybe_gzip(path)
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic not in (IDX_IMAGES, IDX_LABELS):
        shown = "file shorter than 4 bytes" if magic is None else f"0x{magic:08x}"
        raise DataError(
            f"{path}: not an IDX file (bad magic {shown}, expected 0x{IDX_IMAGES:08x} for "
            f"images or 0x{IDX_LABELS:08x} for labels); use the official '*-ubyte[.gz]' files"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path}: truncated IDX header, expected {header} bytes but the file has "
            f"{len(data)}; download the file again"
        )
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        state = "truncated" if len(data) - header < expected else "longer than its header says"
        raise DataError(
            f"{path}: IDX payload {state}: expected {expected} bytes for shape {tuple(dims)}, "
            f"found {len(data) - header}; download the file again"
        )
    array = np.frombuffer(data, dtype=np.uint8, count=expected, offset=header)
    array = array.reshape(dims).copy()  # copy: frombuffer over bytes is read-only
    return array[..., None] if magic == IDX_IMAGES else array


# ---------------------------------------------------------------- CIFAR-10 / CIFAR-100


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """The only use of `_codecs.encode` a Python 3 protocol-2 pickle makes: bytes as latin1."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1", errors)


# Everything a pickled dict of lists, strings and NumPy arrays needs, resolved here rather than
# imported by name so that no module is imported on a pickle's say-so.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batch dicts and refuses every other global, so a crafted file
    cannot run code."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _load_batch(raw: bytes, where: str) -> tuple[dict, np.ndarray]:
    """One CIFAR batch file as (its dict, its 'data' rows (n, 3072)), both checked."""
    try:
        batch = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # any malformed pickle: truncation, bad opcodes, refused globals
        raise DataError(
            f"{where}: not a CIFAR batch pickle ({_why(exc)}); use the official python "
            f"version from {CIFAR_URL}"
        ) from None
    data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
    if not (isinstance(data, np.ndarray) and data.ndim == 2 and data.shape[1] == 3072):
        raise DataError(
            f"{where}: CIFAR batch has no uint8 'data' array of shape (n, 3072); use the "
            f"official python version from {CIFAR_URL}"
        )
    return batch, data


def _unpickle_batch(raw: bytes, where: str) -> np.ndarray:
    """One CIFAR batch file's pixels: uint8 (n, 32, 32, 3), converted from its CHW rows."""
    _, data = _load_batch(raw, where)
    if data.dtype != np.uint8:
        raise DataError(f"{where}: CIFAR 'data' has dtype {data.dtype}, expected uint8")
    # Each row is the red plane, then green, then blue, each 32x32 row-major.
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


# Turns one batch file's bytes, named by `where` in errors, into its array of rows.
BatchParser = Callable[[bytes, str], np.ndarray]


def _cifar_spec(source: Path, variant: str, split: str) -> tuple[dict, tuple[str, ...]]:
    if variant not in CIFAR:
        raise DataError(f"{source}: unknown CIFAR variant {variant!r}; use cifar10 or cifar100")
    spec = CIFAR[variant]
    if split not in ("train", "test", "all"):
        raise DataError(f"{source}: unknown CIFAR split {split!r}; use train, test or all")
    names = spec["train"] + spec["test"] if split == "all" else spec[split]
    return spec, names


def _variant_hint(spec: dict, present: set[str]) -> str:
    """' (it holds cifar100; ...)' when the files present are the other variant's."""
    for variant, other in CIFAR.items():
        if other is not spec and present.issuperset(other["train"] + other["test"]):
            return f" (it holds {variant}; set the variant to {variant})"
    return ""


def _open_tar(path: Path, spec: dict) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        raise DataError(
            f"{path}: not a CIFAR tarball (not a tar, tar.gz, tar.bz2 or tar.xz archive); "
            f"download {spec['archive']} from {CIFAR_URL}"
        ) from None


def _cifar_from_tar(
    path: Path, spec: dict, names: Sequence[str], parse: BatchParser = _unpickle_batch
) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    with _open_tar(path, spec) as tar:
        try:
            # One pass in archive order: seeking back in a .tar.gz stream would re-inflate it.
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                seen.add(base)
                if member.isfile() and base in names and base not in found:
                    raw = tar.extractfile(member).read()
                    found[base] = parse(raw, f"{path}:{member.name}")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"{path}: truncated or corrupt CIFAR tarball ({_why(exc)}); download "
                f"{spec['archive']} again from {CIFAR_URL}"
            ) from None
    missing = [f"{spec['folder']}/{n}" for n in names if n not in found]
    if missing:
        raise DataError(
            f"{path}: tarball lacks {', '.join(missing)}{_variant_hint(spec, seen)}; use the "
            f"official {spec['archive']}"
        )
    return found


def _cifar_from_dir(
    path: Path, spec: dict, names: Sequence[str], parse: BatchParser = _unpickle_batch
) -> dict[str, np.ndarray]:
    # Accept the extracted folder itself or the folder it was extracted into.
    if not (path / names[0]).exists() and (path / spec["folder"]).is_dir():
        path = path / spec["folder"]
    missing = [n for n in names if not (path / n).is_file()]
    if missing:
        present = {p.name for p in path.iterdir()}
        raise DataError(
            f"{path}: missing CIFAR batch file(s) {', '.join(missing)}"
            f"{_variant_hint(spec, present)}; extract the official {spec['archive']} here"
        )
    return {n: parse(_read_bytes(path / n), str(path / n)) for n in names}


def read_cifar(source: PathLike, variant: str, split: str) -> np.ndarray:
    """CIFAR-10 or CIFAR-100 from the official python tarball or its extracted folder.

    variant: "cifar10" or "cifar100"; split: "train", "test" or "all" (train then test).
    The tarball is read in memory, never extracted. Returns uint8 (N, 32, 32, 3).
    """
    source = _existing(source, f"CIFAR tarball or folder (from {CIFAR_URL})")
    spec, names = _cifar_spec(source, variant, split)
    read = _cifar_from_dir if source.is_dir() else _cifar_from_tar
    batches = read(source, spec, names)
    return np.concatenate([batches[n] for n in names])


def _labels_parser(key: bytes, classes: int) -> BatchParser:
    def parse(raw: bytes, where: str) -> np.ndarray:
        batch, data = _load_batch(raw, where)
        labels = batch.get(key, batch.get(key.decode()))
        labels = np.asarray(labels if isinstance(labels, (list, np.ndarray)) else [])
        # One label per image row, or the probe would pair images with the wrong classes.
        ok = labels.shape == (len(data),) and labels.dtype.kind in "ui"
        if not (ok and ((labels >= 0) & (labels < classes)).all()):
            raise DataError(
                f"{where}: CIFAR batch has no '{key.decode()}' list of {len(data)} classes in "
                f"0..{classes - 1}; use the official python version from {CIFAR_URL}"
            )
        return labels.astype(np.int64)

    return parse


def read_cifar_labels(source: PathLike, variant: str, split: str) -> np.ndarray:
    """The class labels of `read_cifar(source, variant, split)`, row for row.

    CIFAR-10's `labels` (0..9) or CIFAR-100's `fine_labels` (0..99), read with the same
    restricted unpickler. Returns int64 (N,).
    """
    source = _existing(source, f"CIFAR tarball or folder (from {CIFAR_URL})")
    spec, names = _cifar_spec(source, variant, split)
    read = _cifar_from_dir if source.is_dir() else _cifar_from_tar
    batches = read(source, spec, names, _labels_parser(*spec["labels"]))
    return np.concatenate([batches[n] for n in names])


# ---------------------------------------------------------------- SVHN


def _read_svhn_file(path: PathLike) -> np.ndarray:
    path = _existing(path, "SVHN '*_32x32.mat' file", file=True)
    sio = _optional("scipy.io", "scipy", path)
    try:
        mat = sio.loadmat(path, variable_names=["X"])
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError, ...
        raise DataError(
            f"{path}: not a MATLAB .mat file ({_why(exc)}); use the official SVHN "
            "'*_32x32.mat' files"
        ) from None
    x = mat.get("X")
    if not (isinstance(x, np.ndarray) and x.ndim == 4 and x.shape[2] in (1, 3)):
        raise DataError(
            f"{path}: no variable X of shape (32, 32, 3, N); use the official SVHN "
            "'*_32x32.mat' files (format 2, cropped digits)"
        )
    return to_uint8_array(np.ascontiguousarray(x.transpose(3, 0, 1, 2)), path)


def read_svhn(paths: PathLike | Iterable[PathLike]) -> np.ndarray:
    """SVHN cropped digits from the official `{train,test,extra}_32x32.mat` files.

    The files' X arrays, (32, 32, 3, n) each, are concatenated in the order given.
    Returns uint8 (N, 32, 32, 3).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise DataError("SVHN: no .mat files given; name at least one '*_32x32.mat' file")
    arrays = [_read_svhn_file(p) for p in paths]
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


# ---------------------------------------------------------------- HDF5


def _h5_open(path: Path):
    h5py = _optional("h5py", "h5py", path)
    if not path.is_file() or not h5py.is_hdf5(path):
        raise DataError(
            f"{path}: not an HDF5 file; give an .h5 file with an 'images' dataset or a "
            "'data.hy' with an id.txt beside it"
        )
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: cannot open HDF5 file ({_why(exc)})") from None


def _float_scale_over(arrays: Iterable[np.ndarray], source: object) -> tuple[float, float]:
    """One scale for a whole file, so every chunk maps the same value to the same pixel."""
    lo, hi = np.inf, -np.inf
    for a in arrays:
        if a.size:
            if not np.isfinite(a).all():
                raise DataError(f"{source}: image data contains NaN or inf; clean it first")
            a_lo, a_hi = _min_max(a)
            lo, hi = min(lo, a_lo), max(hi, a_hi)
    return _float_range(lo, hi, source) if np.isfinite(lo) else (1.0, 0.0)


def _h5_read(dataset, index, path: Path) -> np.ndarray:
    try:
        return dataset[index]
    except (OSError, ValueError, TypeError) as exc:  # h5py's errors for damaged data
        raise DataError(f"{path}: cannot read {dataset.name} ({_why(exc)})") from None


def _plain_chunks(path: Path, scale: tuple[float, float] | None) -> Iterator[np.ndarray]:
    with _h5_open(path) as f:
        images = f["images"]
        for start in range(0, images.shape[0], HDF5_CHUNK):
            chunk = _h5_read(images, slice(start, start + HDF5_CHUNK), path)
            yield _convert(chunk, path, scale)


def _read_plain(f, path: Path) -> tuple[int, Iterator[np.ndarray]]:
    images = f["images"]
    if images.ndim not in (3, 4):
        raise DataError(
            f"{path}: dataset 'images' has shape {images.shape}; expected (N, H, W[, C])"
        )
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
        raise DataError(f"{ids_path}: cannot read the id list ({_why(exc)})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _id_image(f, ident: str, path: Path):
    """The `image` dataset of one id's group, checked to exist and hold one image."""
    h5py = _optional("h5py", "h5py", path)
    group = f.get(ident)
    if group is None:
        raise DataError(f"{path}: id {ident!r} from id.txt is not in the file; fix id.txt")
    image = group.get("image") if isinstance(group, h5py.Group) else None
    if not isinstance(image, h5py.Dataset) or image.ndim not in (2, 3):
        raise DataError(f"{path}: id {ident!r} has no 'image' dataset of shape [h, w, c]")
    return image


def _id_chunks(path: Path, ids: list[str], scale) -> Iterator[np.ndarray]:
    with _h5_open(path) as f:
        for ident in ids:
            image = _h5_read(_id_image(f, ident, path), (), path)
            image = image[..., None] if image.ndim == 2 else image
            yield _convert(image[None], path, scale)


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
    listed in `ids_path` (default: `id.txt` beside the file), yielded as uint8 (1, h, w, c).
    Returns (N, iterator of chunks); the file is only reopened when iteration starts.
    """
    path = _existing(path, "HDF5 file")
    ids_path = Path(ids_path) if ids_path is not None else path.with_name("id.txt")
    h5py = _optional("h5py", "h5py", path)
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
            return npz[key]
    arrays = {key: npz[key] for key in npz.files}
    images = [key for key, a in arrays.items() if a.ndim in (3, 4)]
    if len(images) == 1:
        return arrays[images[0]]
    raise DataError(
        f"{path}: cannot tell which array holds the images (keys: {', '.join(npz.files) or 'none'}"
        "); save them under the key 'images'"
    )


def _head(path: Path, n: int) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({_why(exc)})") from None


def _load_npz(path: Path) -> np.ndarray:
    magic = _head(path, 6)
    if magic[:4] != b"PK\x03\x04" and magic != b"\x93NUMPY":
        raise DataError(
            f"{path}: not a NumPy .npz/.npy file (no zip or .npy signature); save the images "
            "with numpy.savez"
        )
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # a bare .npy
            return loaded
        with loaded:
            return _pick_npz_array(loaded, path)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path}: unreadable NumPy file ({_why(exc)}); save plain numeric arrays with "
            "numpy.savez"
        ) from None


def read_npz(path: PathLike) -> np.ndarray:
    """Images from a NumPy `.npz` (or `.npy`) file, uint8 or float, channels last or first.

    Of several arrays the first of `images`, `x_train`, `x`, `X`, `arr_0` is taken, else the
    only 3- or 4-dim one. Input [N, H, W], [N, H, W, C] or [N, C, H, W] with C in (1, 3, 4).
    Returns uint8 (N, H, W, C).
    """
    path = _existing(path, ".npz file", file=True)
    x = _load_npz(path)
    if x.ndim not in (3, 4):
        raise DataError(f"{path}: array has shape {x.shape}; expected (N, H, W[, C])")
    if x.ndim == 4 and x.shape[1] in (1, 3, 4) and x.shape[3] not in (1, 3, 4):
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return to_uint8_array(x, path)


# ---------------------------------------------------------------- LSUN LMDB

# Environments opened by this process, by path. A forked worker must not use its parent's
# (LMDB forbids using an environment after fork), so the cache remembers whose it is and a
# child drops the inherited ones unclosed (py-lmdb skips closing them in a child) and reopens.
_LMDB_ENVS: dict[str, object] = {}
_LMDB_PID: list[int] = [os.getpid()]


def _lmdb_env(path: PathLike):
    lmdb = _optional("lmdb", "lmdb", path)
    if _LMDB_PID[0] != os.getpid():
        _LMDB_ENVS.clear()
        _LMDB_PID[0] = os.getpid()
    key = os.path.abspath(path)
    env = _LMDB_ENVS.get(key)
    if env is None:
        if not Path(key).is_dir():
            raise DataError(
                f"{path}: not an LMDB directory; give the folder (e.g. bedroom_train_lmdb/) "
                "that holds data.mdb"
            )
        try:
            env = lmdb.open(key, readonly=True, lock=False, readahead=False, meminit=False)
        except lmdb.Error as exc:
            why = _why(exc).replace(f"{key}: ", "")
            raise DataError(
                f"{path}: not an LMDB database ({why}); give the folder that holds "
                "data.mdb, as unzipped from the LSUN download"
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
