"""File writes that never leave a half-written file, and the JSON-lines files runs append to.

Every file the project writes goes through `atomic_write` (or `append_jsonl`, whose readers
ignore a last line cut short by a kill).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(path: Path | str, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file atomically: ``write(f)`` fills a temp file that then replaces ``path``.

    The temp file sits in the same directory (``os.replace`` is only atomic within one file
    system) and is fsynced before the rename, so ``path`` either keeps its old content or gets
    the complete new one. If ``write`` raises, the temp file is removed and ``path`` is left
    untouched. Creates the parent directory. Returns ``path`` as a ``Path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A random suffix keeps two writers of the same target from sharing a temp file; the
    # leading dot hides it from globs such as ``*.png`` while it exists.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


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


def append_jsonl(path: Path | str, record: dict[str, Any]) -> None:
    """Append one JSON record as a line (creating the file and its directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
