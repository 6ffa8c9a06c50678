"""File writes that never leave a half-written file, and the JSON-lines files runs append to.

Every file the project writes goes through `atomic_write` (or `append_jsonl`, whose readers
ignore a last line cut short by a kill).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from dcgan.errors import ConfigError


def atomic_write(path: Path | str, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file atomically: ``write(f)`` fills a temp file that then replaces ``path``.

    The temp file sits in the same directory (``os.replace`` is only atomic within one file
    system) and is fsynced before the rename, so ``path`` either keeps its old content or gets
    the complete new one. If ``write`` raises, the temp file is removed and ``path`` is left
    untouched. Creates the parent directory. Returns ``path`` as a ``Path``.
    """
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: Path | str, tmp: Path | None = None) -> Iterator[Path]:
    """A temp path beside ``path`` for a writer that needs a file name (a memory-mapped array,
    ``np.save``); on leaving the block it replaces ``path``, or on an error it is removed and
    ``path`` is left untouched. ``tmp``: the temp name when the caller needs to recognise its
    own (the decoded-image cache removes those of dead processes); by default a hidden,
    random one. Creates the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A random suffix keeps two writers of the same target from sharing a temp file; the
    # leading dot hides it from globs such as ``*.png`` while it exists.
    tmp = tmp if tmp is not None else path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Best-effort fsync of a directory so the rename itself survives a power loss."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; the data is already synced
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path | str, text: str) -> Path:
    """`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def open_append(path: Path | str) -> BinaryIO:
    """Open a regular file to read and append (created when missing), never through a link:
    a symbolic link planted where a run's log is cannot send its lines to another file, and a
    FIFO cannot make the writer wait for a reader. Raises ConfigError naming the file."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    refused = f"{path}: a link or special file where the run keeps a file of its own; remove it"
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        if os.path.islink(path) or e.errno in (errno.ELOOP, errno.ENXIO):
            raise ConfigError(refused) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(refused)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "ab+")


def read_small(path: Path | str, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; ValueError naming the file for a
    bigger one (its size read before any byte) or for one that is not a regular file (a FIFO
    would make the read wait for a writer)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{path} is {st.st_size / 2**20:.0f} MiB, more than {limit >> 20} MiB")
        data = f.read(limit + 1)  # a file that grew since: still at most limit + 1 bytes
    if len(data) > limit:
        raise ValueError(f"{path} is more than {limit >> 20} MiB")
    return data


def append_jsonl(path: Path | str, record: dict[str, Any]) -> None:
    """Append one JSON record as a line (creating the file and its directory). A last line cut
    short (by a kill, or damage) is ended first, so the new record is never glued onto it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_append(path) as f:
        fresh = f.tell() == 0
        if not fresh:
            f.seek(-1, os.SEEK_END)
            fresh = f.read(1) == b"\n"
        f.write((b"" if fresh else b"\n") + json.dumps(record).encode() + b"\n")


def unwritable(path: Path | str, directory: bool = False) -> str | None:
    """Why `path` cannot be written (as a file, or as a directory to create and fill), or None.

    For checks before work that ends in writing `path`: a file is created and removed in the
    nearest existing directory, which no permission bit can fool (root, read-only mounts,
    /proc). The write itself may still fail (a full disk); callers make that one line too.
    """
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        return f"{path} exists and is not a directory"
    if not directory and path.is_dir():
        return f"{path} is a directory; give a file name"
    parent = path if directory else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    probe = parent / f".dcgan-write-test-{uuid.uuid4().hex[:8]}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as e:
        return f"cannot create files in {parent} ({e.strerror or e})"
    probe.unlink(missing_ok=True)
    return None


def check_stored_zip(path: Path | str) -> list[zipfile.ZipInfo]:
    """The records of a zip of stored (uncompressed) records, as `torch.save` and `np.savez`
    write them; ValueError unless every record is stored, all of them together claim no more
    bytes than the file holds (no zip bomb) and each matches its CRC-32, which neither
    `torch.load` nor a memory map checks: a flipped bit anywhere in a record is found here."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        records = archive.infolist()
        if not records:
            raise ValueError("the zip file holds no records")
        packed = [r.filename for r in records if r.compress_type != zipfile.ZIP_STORED]
        if packed or any(r.compress_size != r.file_size for r in records):
            raise ValueError(f"compressed records ({', '.join(packed[:2])}); not written by us")
        claimed, size = sum(r.file_size for r in records), path.stat().st_size
        if claimed > size:
            raise ValueError(f"its records claim {claimed} bytes but the file has {size}")
        if (bad := archive.testzip()) is not None:
            raise ValueError(f"record {bad} fails its CRC-32 check: the file is damaged")
    return records
