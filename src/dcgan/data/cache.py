"""Decode a dataset once into a uint8 `.npy` memmap; later epochs and later runs read that.

The cache file is named by a hash of what produced it: the dataset's source files (path, size,
modification time), the split and classes, the image size and channels, and the decoder
version. It is written under a temporary name and renamed, so a crash never leaves a
half-written cache that a later run would trust, and its description holds its shape and CRC-32,
checked at every use: a damaged cache is decoded again. Unreadable image files are skipped; their
names and reasons are kept beside the cache so every run can report them. Class labels, when
asked for, are cached beside the images under the same name (`.labels.npy`), checked the same way.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcgan.config import DataConfig
from dcgan.data import decode
from dcgan.data.catalogue import Found
from dcgan.data.transforms import convert_channels, fit_square
from dcgan.errors import DataError, Recovered, brief
from dcgan.fsio import atomic_path, atomic_write_text
from dcgan.progress import bar

# Bump when decoding changes the pixels it produces, so old caches are not reused.
DECODER_VERSION = 1
_TASK_SIZE = 256
_AUTO_WORKERS_FROM = 10_000  # below this, starting processes (about 1.5 s) costs more than it saves


@dataclass(frozen=True)
class Decoded:
    """A decoded dataset: uint8 (N, C, S, S) memory-mapped from the cache file."""

    images: np.ndarray
    skipped: tuple[tuple[str, str], ...]  # (file, reason) for each unreadable image
    total: int  # files seen, including the skipped ones
    path: Path
    from_cache: bool
    seconds: float
    damage: str | None = None  # why a damaged cache was decoded again


def cache_root(cfg: DataConfig) -> Path:
    """cfg.cache_dir, else $XDG_CACHE_HOME/dcgan, else ~/.cache/dcgan."""
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dcgan"


def cache_key(cfg: DataConfig, found: Found, size: int, channels: int) -> str:
    """A hash of everything that decides the decoded pixels."""
    h = hashlib.sha256()
    head = [DECODER_VERSION, cfg.dataset, cfg.split, cfg.lsun_classes, size, channels, found.crop]
    h.update(json.dumps(head).encode())
    for f in found.files:
        st = f.stat()
        # the name's own bytes (any, not only UTF-8), then its size and time
        h.update(b"\0" + os.fsencode(f.absolute()) + f"\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def cache_path(cfg: DataConfig, found: Found, size: int, channels: int) -> Path:
    """Where the decoded images of `found` at (size, channels) are cached: a `.npy` file."""
    key = cache_key(cfg, found, size, channels)
    return cache_root(cfg) / f"{cfg.dataset}-{size}px-{channels}ch-{key}.npy"


def load_or_decode(cfg: DataConfig, found: Found, size: int, channels: int) -> Decoded:
    """The cached decode of `found` at (size, channels), decoding and caching it on a miss. A
    cache whose file or description is damaged (checked against its CRC-32 every time) is
    decoded again, never trusted: a `Recovered` warning says so."""
    start = time.perf_counter()
    path = cache_path(cfg, found, size, channels)
    meta_path = path.with_suffix(".json")
    damage = None
    if path.is_file() and meta_path.is_file():
        try:
            meta, images = open_cached(path, meta_path)
            return Decoded(images, meta["skipped"], meta["total"], path, True, _since(start))
        except ValueError as e:
            damage = f"decoded-image cache {path}: {brief(e)}; decoding the dataset again"
            warnings.warn(damage, Recovered, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    skipped, total = decode_into(cfg, found, size, channels, path)
    images = np.load(path, mmap_mode="c")  # copy-on-write: torch may wrap it without warnings
    meta = {"source": found.description, "total": total, "skipped": skipped}
    meta.update(shape=list(images.shape), crc32=file_crc32(path))
    atomic_write_text(meta_path, json.dumps({**meta, "meta_crc32": _meta_crc32(meta)}, indent=1))
    skipped_pairs = tuple((str(a), str(b)) for a, b in skipped)
    return Decoded(images, skipped_pairs, total, path, False, _since(start), damage)


def _since(start: float) -> float:
    return time.perf_counter() - start


def open_cached(path: Path, meta_path: Path) -> tuple[dict[str, Any], np.ndarray]:
    """The cache's description and its images, memory-mapped; ValueError when either is
    damaged: the description unreadable, or the file not of its shape and CRC-32."""
    try:
        meta = json.loads(meta_path.read_bytes())
        shape, crc, total = meta["shape"], meta["crc32"], meta["total"]
        skipped = tuple((str(a), str(b)) for a, b in meta["skipped"])
        own = meta.pop("meta_crc32")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        why = f"is damaged or from an older dcgan ({brief(e)})"
        raise ValueError(f"{meta_path.name} {why}") from None
    if own != _meta_crc32(meta) or type(total) is not int:
        raise ValueError(f"{meta_path.name} does not match its CRC-32 (the file is damaged)")
    if file_crc32(path) != crc:
        raise ValueError("its images do not match their CRC-32 (the file is damaged)")
    try:
        images = np.load(path, mmap_mode="c")  # copy-on-write: torch may wrap it without warnings
    except (ValueError, OSError, EOFError, SyntaxError) as e:  # a header a CRC cannot vouch for
        raise ValueError(f"not a readable .npy file ({brief(e)})") from None
    if list(images.shape) != shape or images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"holds {images.dtype} {images.shape}, not uint8 {shape}")
    return {**meta, "skipped": skipped}, images


def _meta_crc32(meta: dict[str, Any]) -> int:
    """CRC-32 of the description's values, however its JSON is laid out."""
    return zlib.crc32(json.dumps(meta, sort_keys=True).encode())


def file_crc32(path: Path, chunk: int = 1 << 24) -> int:
    """CRC-32 of a file's bytes, read in chunks (about 4 GB/s)."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc


def decode_into(
    cfg: DataConfig, found: Found, size: int, channels: int, path: Path
) -> tuple[list[tuple[str, str]], int]:
    """Decode to `path` (atomically); returns the skipped (file, reason) pairs and the total."""
    remove_orphans(path)
    with atomic_path(path, _own_tmp(path)) as tmp:
        if found.arrays is not None:
            skipped, total = [], write_arrays(found, size, channels, tmp)
        else:
            skipped, total = write_encoded(cfg, found, size, channels, tmp)
    return skipped, total


def _own_tmp(path: Path) -> Path:
    """This process's temp name for `path`: STEM.PID.tmp.npy (see `remove_orphans`)."""
    return path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")


def remove_orphans(path: Path) -> None:
    """Remove the temporary files of `path` that processes no longer running left (a SIGKILL,
    a power cut): each is named after its writer's process id, and may be dataset-sized."""
    for tmp in path.parent.glob(f"{glob.escape(path.stem)}.*.tmp*.npy"):
        pid = tmp.name[len(path.stem) + 1 :].split(".", 1)[0]  # STEM.PID.tmp[.compact].npy
        if pid.isdigit() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


# ---------------------------------------------------------------------------- raw pixel arrays


def write_arrays(found: Found, size: int, channels: int, out: Path) -> int:
    """Stream (n, H, W, C) chunks through crop, resize and channel conversion into `out`."""
    assert found.arrays is not None
    count, chunks = found.arrays()
    if count == 0:
        raise DataError(f"{found.description}: the file holds no images")
    mm = np.lib.format.open_memmap(
        out, mode="w+", dtype=np.uint8, shape=(count, channels, size, size)
    )
    row = 0
    for chunk in chunks:
        x = torch.from_numpy(np.ascontiguousarray(chunk)).permute(0, 3, 1, 2)
        mm[row : row + len(x)] = convert_channels(fit_square(x, size), channels).numpy()
        row += len(x)
    if row != count:
        raise DataError(f"{found.description}: expected {count} images, read {row}")
    mm.flush()
    return count


# ---------------------------------------------------------------------------- encoded images


def write_encoded(
    cfg: DataConfig, found: Found, size: int, channels: int, out: Path
) -> tuple[list[tuple[str, str]], int]:
    """Decode every image of `found.groups` into `out`, skipping (and listing) unreadable ones."""
    assert found.groups is not None
    groups = found.groups()
    total = sum(len(g.keys) for g in groups)
    np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=(total, channels, size, size))
    tasks = decode.make_tasks(out, groups, size, channels, found.crop, _TASK_SIZE)
    parts = run_tasks(tasks, worker_count(cfg, total))
    parts = bar(parts, total=len(tasks), desc=f"decoding {total} images", unit="chunk")
    failed = sorted(f for part in parts for f in part)
    labels = [groups[g].label(k) for g, k in (it for t in tasks for it in t.items)]
    skipped = [(labels[row], reason) for row, reason in failed]
    check_bad_fraction(cfg, found, skipped, total)
    if failed:
        compact(out, {row for row, _ in failed})
    return skipped, total


def worker_count(cfg: DataConfig, total: int) -> int:
    """cfg.workers, or one process per core (up to 8) once there are enough files."""
    if cfg.workers is not None:
        return cfg.workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cores or 1, 8) if total >= _AUTO_WORKERS_FROM and (cores or 1) > 1 else 0


def run_tasks(tasks: list[decode.Task], workers: int) -> Iterator[list[tuple[int, str]]]:
    """Each task's failures; in worker processes when asked.

    Workers fork from a fresh forkserver that has imported only the decoder (NumPy and Pillow):
    they inherit none of this process's torch thread pools, and unlike spawned workers they do
    not re-import the user's main script.
    """
    if workers == 0:
        yield from map(decode.run_task, tasks)
        return
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["dcgan.data.decode"])
    pool = ProcessPoolExecutor(workers, mp_context=ctx)
    with pool:
        yield from pool.map(decode.run_task, tasks)  # as each finishes, for the progress bar


def check_bad_fraction(
    cfg: DataConfig, found: Found, skipped: list[tuple[str, str]], total: int
) -> None:
    """Fail when more than cfg.max_bad_fraction of the files are unreadable."""
    if not skipped:
        return
    if len(skipped) == total:
        raise DataError(f"{found.description}: none of the {total} image files could be read")
    if len(skipped) > cfg.max_bad_fraction * total:
        first, reason = skipped[0]
        raise DataError(
            f"{found.description}: {len(skipped)} of {total} image files "
            f"({len(skipped) / total:.1%}) are unreadable, more than max_bad_fraction "
            f"{cfg.max_bad_fraction}; first: {first} ({reason}); fix or remove them, or raise "
            "--max-bad-fraction"
        )


def compact(path: Path, drop: set[int]) -> None:
    """Rewrite `path` without rows `drop`, chunk by chunk so no full copy sits in memory."""
    src = np.load(path, mmap_mode="r")
    keep = np.setdiff1d(np.arange(len(src), dtype=np.int64), np.fromiter(drop, np.int64))
    with atomic_path(path, path.with_name(path.stem + ".compact.npy")) as tmp:
        dst = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.uint8, shape=(len(keep), *src.shape[1:])
        )
        for i in range(0, len(keep), _TASK_SIZE * 16):
            dst[i : i + _TASK_SIZE * 16] = src[keep[i : i + _TASK_SIZE * 16]]
        dst.flush()
        del src, dst


# ---------------------------------------------------------------------------- class labels

# Reads a dataset's labels from its source files: int64 (N,) and the class names.
LabelReader = Callable[[], tuple[np.ndarray, tuple[str, ...]]]


def load_or_read_labels(images: Path, read: LabelReader) -> tuple[np.ndarray, tuple[str, ...]]:
    """The class labels cached beside the decoded images `images` (so under the same key: the
    same source files), read with `read` and cached on a miss: int64 (N,) and class names.

    Like the images, the `.labels.npy` is written atomically and checked against the CRC-32 in
    its description at every use; a damaged one is read again (a `Recovered` warning says so).
    """
    path = images.with_name(f"{images.stem}.labels.npy")
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        try:
            return open_cached_labels(path, meta_path)
        except ValueError as e:
            damage = f"class-label cache {path}: {brief(e)}; reading the labels again"
            warnings.warn(damage, Recovered, 2)
    values, names = read()
    with atomic_path(path, _own_tmp(path)) as tmp:
        np.save(tmp, np.asarray(values, np.int64))
    meta = {"count": len(values), "class_names": list(names), "crc32": file_crc32(path)}
    atomic_write_text(meta_path, json.dumps({**meta, "meta_crc32": _meta_crc32(meta)}, indent=1))
    return values, tuple(names)


def open_cached_labels(path: Path, meta_path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Cached labels int64 (N,) and class names; ValueError when either file is damaged."""
    try:
        meta = json.loads(meta_path.read_bytes())
        count, crc, own = meta["count"], meta["crc32"], meta.pop("meta_crc32")
        names = tuple(str(n) for n in meta["class_names"])
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise ValueError(f"{meta_path.name} is damaged ({brief(e)})") from None
    if own != _meta_crc32(meta):
        raise ValueError(f"{meta_path.name} does not match its CRC-32 (the file is damaged)")
    if file_crc32(path) != crc:
        raise ValueError("its labels do not match their CRC-32 (the file is damaged)")
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise ValueError(f"not a readable .npy file ({brief(e)})") from None
    if values.dtype != np.int64 or values.shape != (count,):
        raise ValueError(f"holds {values.dtype} {values.shape}, not int64 ({count},)")
    return values, names
