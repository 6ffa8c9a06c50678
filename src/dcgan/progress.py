"""Progress bars for long loops, one rule everywhere: a tqdm bar on stderr when stderr is a
terminal, nothing at all when it is piped or redirected (logs stay free of bar updates)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm


def is_terminal(stream: TextIO | None) -> bool:
    """Whether `stream` is an open terminal (False for None, a pipe, a file, a closed stream)."""
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class Bar(tqdm):
    """A tqdm bar that is truthy whatever its total: a plain tqdm with no total refuses
    bool(), and callers such as pooch test `if progressbar:` before they set it."""

    def __bool__(self) -> bool:
        return True


def bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "it",
    unit_scale: bool = False,
    stream: TextIO | None = None,
    delay: float = 0.0,
    initial: int = 0,
    leave: bool = False,
) -> tqdm:
    """A tqdm bar over `iterable` (or for manual `update`s) on `stream` (default stderr),
    disabled unless that stream is a terminal; with a `delay` it appears only once the work
    has taken that many seconds (short work shows none). It clears itself when done unless
    `leave`; `initial`: the count it starts from (a resumed run's step); `unit_scale` shows
    k/M prefixes (bytes)."""
    stream = sys.stderr if stream is None else stream
    return Bar(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit_scale,
        file=stream,
        disable=not is_terminal(stream),
        leave=leave,
        delay=delay,
        initial=initial,
        dynamic_ncols=True,
    )
