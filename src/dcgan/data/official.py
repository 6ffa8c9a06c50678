"""Readers for the official files of MNIST / Fashion-MNIST (IDX), CIFAR-10/100 and SVHN.

Every reader returns uint8 images in (N, H, W, C) layout (or int labels) and turns any malformed
input into a one-line `DataError` that names the file, never a traceback from struct, pickle,
tarfile or scipy. CIFAR's pickles are read with an unpickler that refuses every global a batch
dict does not need, so a crafted file cannot run code.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import tarfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from dcgan.data.arrays import (
    PathLike,
    check_declared,
    existing,
    optional,
    read_bytes,
    to_uint8_array,
    why,
)
from dcgan.data.specs import CIFAR, CIFAR_URL, idx_names, svhn_name
from dcgan.errors import DataError

try:  # NumPy >= 2 renamed numpy.core to numpy._core; old pickles still name numpy.core.
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct

IDX_IMAGES = 0x00000803
IDX_LABELS = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"

# Used when an extracted folder lacks its meta file; CIFAR-100 falls back to "0".."99".
CIFAR10_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


# ---------------------------------------------------------------- MNIST / Fashion-MNIST IDX


def _read_maybe_gzip(path: Path) -> bytes:
    """An IDX file's bytes, gunzipped when gzipped; the size its header declares is checked
    against the file's (`check_declared`) before the payload is inflated, and no more than
    that is ever inflated."""
    gzipped = False
    try:
        stored = path.stat().st_size
        with path.open("rb") as raw:
            gzipped = raw.read(2) == GZIP_MAGIC
        with gzip.open(path, "rb") if gzipped else path.open("rb") as f:
            head = f.read(4)
            ndim = head[3] if len(head) == 4 else 0
            head += f.read(4 * ndim)
            dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
            declared = len(head) + math.prod(dims) if len(head) == 4 + 4 * ndim else 0
            check_declared(declared, stored, path, compressed=gzipped)
            return head + f.read(max(declared - len(head), 0) + 1)  # one more: too long?
    except OSError as exc:
        if not gzipped:
            raise DataError(f"{path}: cannot read the file ({why(exc)})") from None
        raise DataError(
            f"{path}: corrupt or truncated gzip data ({why(exc)}); download the file again"
        ) from None
    except (EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: corrupt or truncated gzip data ({why(exc)}); download the file again"
        ) from None


def read_idx(path: PathLike) -> np.ndarray:
    """An MNIST-style IDX file, gzipped or raw (told apart by the gzip magic bytes).

    Returns uint8 images (N, H, W, 1) for an idx3 image file, or labels (N,) for an idx1 file.
    """
    path = existing(path, f"MNIST-style '{idx_names('*', 'images')[0]}' file", file=True)
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


def _unpickle(raw: bytes, where: str) -> object:
    try:
        return _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # any malformed pickle: truncation, bad opcodes, refused globals
        raise DataError(
            f"{where}: not a CIFAR batch pickle ({why(exc)}); use the official python "
            f"version from {CIFAR_URL}"
        ) from None


def _load_batch(raw: bytes, where: str) -> tuple[dict, np.ndarray]:
    """One CIFAR batch file as (its dict, its 'data' rows (n, 3072)), both checked."""
    batch = _unpickle(raw, where)
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
    path: Path,
    spec: dict,
    names: Sequence[str],
    parse: BatchParser = _unpickle_batch,
    optional: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """The parsed members `names` (all required) and `optional` (read when present)."""
    found: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    stored, stored_compressed = path.stat().st_size, not path.name.endswith(".tar")
    with _open_tar(path, spec) as tar:
        try:
            # One pass in archive order: seeking back in a .tar.gz stream would re-inflate it.
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                seen.add(base)
                wanted = base in names or base in optional
                if member.isfile() and wanted and base not in found:
                    where = f"{path}:{member.name}"
                    check_declared(member.size, stored, where, compressed=stored_compressed)
                    raw = tar.extractfile(member).read()
                    found[base] = parse(raw, f"{path}:{member.name}")
            # Read on to the end of the stream: only there does gzip (bz2, xz) check its CRC,
            # and a damaged byte may otherwise inflate into different pixels unnoticed.
            while tar.fileobj.read(1 << 20):
                pass
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"{path}: truncated or corrupt CIFAR tarball ({why(exc)}); download "
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
    path: Path,
    spec: dict,
    names: Sequence[str],
    parse: BatchParser = _unpickle_batch,
    optional: Sequence[str] = (),
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
    present = [*names, *(n for n in optional if (path / n).is_file())]
    return {n: parse(read_bytes(path / n), str(path / n)) for n in present}


def read_cifar(source: PathLike, variant: str, split: str) -> np.ndarray:
    """CIFAR-10 or CIFAR-100 from the official python tarball or its extracted folder.

    variant: "cifar10" or "cifar100"; split: "train", "test" or "all" (train then test).
    The tarball is read in memory, never extracted. Returns uint8 (N, 32, 32, 3).
    """
    source = existing(source, f"CIFAR tarball or folder (from {CIFAR_URL})")
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


def _names_parser(key: bytes, classes: int) -> BatchParser:
    def parse(raw: bytes, where: str) -> np.ndarray:
        meta = _unpickle(raw, where)
        names = meta.get(key, meta.get(key.decode())) if isinstance(meta, dict) else None
        if not (isinstance(names, list) and len(names) == classes):
            raise DataError(
                f"{where}: CIFAR meta file has no '{key.decode()}' list of {classes} names; use "
                f"the official python version from {CIFAR_URL}"
            )
        # Python 2 wrote the names as byte strings; they are plain ASCII words.
        return np.array([n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names])

    return parse


def read_cifar_classes(
    source: PathLike, variant: str, split: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The class labels of `read_cifar(source, variant, split)`, row for row, and the names.

    Labels: CIFAR-10's `labels` (0..9) or CIFAR-100's fine `fine_labels` (0..99), int64 (N,),
    read with the same restricted unpickler. Names: from the archive's meta file
    (`CIFAR[variant]['meta']`, read in the same pass), else CIFAR-10's ten names or "0".."99".
    """
    source = existing(source, f"CIFAR tarball or folder (from {CIFAR_URL})")
    spec, names = _cifar_spec(source, variant, split)
    meta_name, meta_key = spec["meta"]
    parse_labels = _labels_parser(*spec["labels"])
    parse_names = _names_parser(meta_key, spec["labels"][1])

    def parse(raw: bytes, where: str) -> np.ndarray:
        meta = where.endswith((f"/{meta_name}", f":{meta_name}"))  # a folder's file or a member
        return parse_names(raw, where) if meta else parse_labels(raw, where)

    read = _cifar_from_dir if source.is_dir() else _cifar_from_tar
    batches = read(source, spec, names, parse, (meta_name,))
    default = CIFAR10_NAMES if variant == "cifar10" else range(spec["labels"][1])
    class_names = batches.get(meta_name, default)
    return np.concatenate([batches[n] for n in names]), tuple(str(c) for c in class_names)


def read_cifar_labels(source: PathLike, variant: str, split: str) -> np.ndarray:
    """The class labels of `read_cifar(source, variant, split)`, row for row: int64 (N,)."""
    return read_cifar_classes(source, variant, split)[0]


# ---------------------------------------------------------------- SVHN

_SVHN_FILES = svhn_name("*")


def _read_svhn_file(path: PathLike) -> np.ndarray:
    path = existing(path, f"SVHN '{_SVHN_FILES}' file", file=True)
    sio = optional("scipy.io", "scipy", path)
    try:
        mat = sio.loadmat(path, variable_names=["X"])
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError, ...
        raise DataError(
            f"{path}: not a MATLAB .mat file ({why(exc)}); use the official SVHN "
            f"'{_SVHN_FILES}' files"
        ) from None
    x = mat.get("X")
    if not (isinstance(x, np.ndarray) and x.ndim == 4 and x.shape[2] in (1, 3)):
        raise DataError(
            f"{path}: no variable X of shape (32, 32, 3, N); use the official SVHN "
            f"'{_SVHN_FILES}' files (format 2, cropped digits)"
        )
    return to_uint8_array(np.ascontiguousarray(x.transpose(3, 0, 1, 2)), path)


def read_svhn(paths: PathLike | Iterable[PathLike]) -> np.ndarray:
    """SVHN cropped digits from the official files (`specs.svhn_name`: train, test, extra).

    The files' X arrays, (32, 32, 3, n) each, are concatenated in the order given.
    Returns uint8 (N, 32, 32, 3).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise DataError(f"SVHN: no .mat files given; name at least one '{_SVHN_FILES}' file")
    arrays = [_read_svhn_file(p) for p in paths]
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
