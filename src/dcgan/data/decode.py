"""Decoding encoded images (JPEG, PNG, WebP, ...) from folders, zips and LMDBs to uint8 squares.

This module imports only NumPy and Pillow, so decoding worker processes start quickly and never
touch torch's thread pools. Each image is converted to the run's channels, centre-cropped (or
face-cropped) to a square, resized with Pillow's antialiased bilinear filter, and written into
a shared `.npy` memmap row; an unreadable file is reported, not fatal.
"""

from __future__ import annotations

import io
import math
import os
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dcgan.errors import Recovered, shown
from dcgan.fsio import read_small

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")

# CelebA's aligned faces are 178x218 with the face in the middle; the 108x108 centre crop
# is the one DCGAN implementations have trained on since carpedm20's DCGAN-tensorflow.
CELEBA_CROP = 108


@dataclass(frozen=True)
class Group:
    """Encoded images that live in one container.

    kind: "files" (keys are paths relative to `base`), "zip" (keys are member names of the zip
    file `base`) or "lmdb" (keys are hex ids in the LMDB directory `base`).
    """

    kind: str
    base: str
    keys: tuple[str, ...]

    def label(self, key: str) -> str:
        """How a user finds this image: a path, a zip member or an LMDB key."""
        if self.kind == "files":
            return str(Path(self.base) / key)
        return f"{self.base}:{key}" if self.kind == "zip" else f"{self.base}[{key}]"


@dataclass(frozen=True)
class Task:
    """A slice of the items to decode into rows [start, start + len(items)) of `out`.

    containers: (kind, base) of each group; only this task's keys travel with it, so a task
    stays small however many images the dataset holds.
    """

    out: str
    start: int
    items: tuple[tuple[int, str], ...]  # (group index, key)
    containers: tuple[tuple[str, str], ...]
    size: int
    channels: int
    crop: int | None  # side of a fixed centre crop (CelebA), None: largest centred square


def is_image_name(name: str) -> bool:
    """An image by its suffix, leaving out hidden files and macOS resource forks."""
    base = name.rsplit("/", 1)[-1]
    return (
        name.lower().endswith(IMAGE_SUFFIXES)
        and not base.startswith(".")
        and not name.startswith("__MACOSX/")
    )


def list_folder(root: Path) -> tuple[str, ...]:
    """Image files under `root`, recursively, as sorted relative POSIX paths (hidden ones
    skipped). Each real directory is read once, so a link loop cannot repeat or hang the walk;
    links that lead out of `root` are not followed (a warning names them); only regular files
    count, so a FIFO named like an image cannot block a read. Names may hold any bytes."""
    top = os.path.realpath(root)
    found: list[str] = []
    outside: list[str] = []
    seen: set[tuple[int, int]] = set()
    pending = [(os.fspath(root), "")]
    while pending:
        path, rel = pending.pop()
        try:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(path) as it:
                entries = list(it)
        except OSError:  # unreadable, or gone since it was listed
            continue
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name == "__MACOSX":
                continue
            key = f"{rel}/{name}" if rel else name
            try:
                if entry.is_symlink() and not _inside(os.path.realpath(entry.path), top):
                    outside.append(key)
                elif entry.is_dir():
                    pending.append((entry.path, key))
                elif entry.is_file() and is_image_name(name):
                    found.append(key)
            except OSError:
                continue
    if outside:
        warnings.warn(
            f"{root}: {len(outside)} link(s) lead out of the folder and were not followed "
            f"(first: {shown(outside[0])}); copy what they point to into it, or pass that "
            "folder as --data-root",
            Recovered,
            2,
        )
    return tuple(sorted(found))


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def list_zip(path: Path) -> tuple[str, ...]:
    """Image members of a zip file, sorted."""
    with zipfile.ZipFile(path) as zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
    return tuple(sorted(n for n in names if is_image_name(n)))


# ---------------------------------------------------------------------------- reading bytes

_open_zips: dict[str, zipfile.ZipFile] = {}


MAX_FILE_BYTES = 64 << 20  # no picture of a dataset is bigger; a bigger "image" is skipped


def read_bytes(kind: str, base: str, key: str) -> bytes:
    """The encoded bytes of one image of a group (see `Group`); zips stay open per process.
    A file or member over MAX_FILE_BYTES is refused (ValueError) before it is read: a 9 MB
    zip member may inflate to gigabytes."""
    if kind == "files":
        return read_small(Path(base) / key, MAX_FILE_BYTES)
    if kind == "zip":
        if base not in _open_zips:
            _open_zips[base] = zipfile.ZipFile(base)
        zf = _open_zips[base]
        size = zf.getinfo(key).file_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"{size >> 20} MiB, more than a picture's")
        with zf.open(key) as member:  # its declared size may lie: read no more than the cap
            data = member.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ValueError(f"more than {MAX_FILE_BYTES >> 20} MiB, more than a picture's")
        return data
    from dcgan.data.containers import lmdb_read

    return lmdb_read(Path(base), [bytes.fromhex(key)])[0]


# ---------------------------------------------------------------------------- pixels


def to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer or float grey images scaled to 8-bit "L" (Pillow would clip)."""
    if img.mode not in ("I", "F") and not img.mode.startswith("I;16"):
        return img
    a = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or a.max(initial=0) > 255:
        a = a / 257.0
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def flatten_alpha(img: Image.Image) -> Image.Image:
    """Transparent pixels over white, as a viewer shows them (RGBA, LA, P with transparency)."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode not in ("RGBA", "LA", "PA"):
        return img
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def crop_box(width: int, height: int, crop: int | None) -> tuple[int, int, int, int]:
    """The centred square to keep: side `crop` (clamped to the image) or the shorter side."""
    side = min(width, height, crop) if crop else min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def decode_one(data: bytes, size: int, channels: int, crop: int | None) -> np.ndarray:
    """Encoded image bytes -> uint8 (channels, size, size); raises on anything unreadable.

    Pillow's decompression-bomb limit is kept and its warning is made an error, so huge images
    are refused rather than decoded.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data))
        width, height = img.size
        box = crop_box(width, height, crop)
        # JPEG decoders can downscale by 1/2..1/8 while decoding: far less work for big photos,
        # as long as the kept square still has at least `size` pixels a side.
        shrink = (box[2] - box[0]) / size
        img.draft(img.mode, (math.ceil(width / shrink), math.ceil(height / shrink)))
        img.load()
    img = flatten_alpha(to_8bit(img)).convert("L" if channels == 1 else "RGB")
    # Crop before resizing (as the array path does), so the filter never reaches outside the box.
    f = img.size[0] / width
    img = img.crop(tuple(round(c * f) for c in box))
    img = img.resize((size, size), Image.Resampling.BILINEAR)
    a = np.asarray(img, dtype=np.uint8).reshape(size, size, -1).transpose(2, 0, 1)
    return a if channels in (1, 3) else _repeat_channels(a, channels)


def _repeat_channels(a: np.ndarray, channels: int) -> np.ndarray:
    reps = -(-channels // a.shape[0])
    return np.tile(a, (reps, 1, 1))[:channels]


def describe(error: BaseException) -> str:
    """A short reason for a skipped file."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_task(task: Task) -> list[tuple[int, str]]:
    """Decode `task.items` into their rows of the memmap; returns (row, reason) for failures."""
    out = np.load(task.out, mmap_mode="r+")
    failed = []
    for offset, (g, key) in enumerate(task.items):
        row = task.start + offset
        try:
            data = read_bytes(*task.containers[g], key)
            out[row] = decode_one(data, task.size, task.channels, task.crop)
        except Exception as e:
            failed.append((row, describe(e)))
    out.flush()
    return failed


def make_tasks(
    out: Path, groups: Sequence[Group], size: int, channels: int, crop: int | None, chunk: int
) -> list[Task]:
    """Every image of `groups`, in order, split into tasks of at most `chunk` images."""
    items = [(g, key) for g, group in enumerate(groups) for key in group.keys]
    containers = tuple((group.kind, group.base) for group in groups)
    return [
        Task(str(out), s, tuple(items[s : s + chunk]), containers, size, channels, crop)
        for s in range(0, len(items), chunk)
    ]
