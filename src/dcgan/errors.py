"""The errors a user sees as one line: each names the file, flag or value and what would fix it.

The command line turns these into `dcgan <command>: error: <message>` and an exit code; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import reprlib


class ConfigError(ValueError):
    """A setting is unknown, mistyped or impossible; the message is one line for the user."""


class DataError(ConfigError):
    """A dataset file is missing or not what it claims to be; the message is one line that
    names the file and what would fix it."""


class CheckpointError(RuntimeError):
    """A checkpoint or export is missing, unreadable or of an unknown format."""


class Diverged(RuntimeError):
    """A loss or weight became NaN or inf; the message names the step and the network."""


class Recovered(UserWarning):
    """A damaged file was worked around (a cache rebuilt, an older checkpoint used); the
    message names the file, what was wrong and what was used instead."""


def brief(exc: BaseException, limit: int = 160) -> str:
    """An exception's text squeezed onto one short line, for the parenthesis of an error."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SHOWN = reprlib.Repr()  # attributes, not arguments: Python 3.10 and 3.11 take none
_SHOWN.maxlevel, _SHOWN.maxdict, _SHOWN.maxlist, _SHOWN.maxtuple = 2, 4, 4, 4
_SHOWN.maxstring, _SHOWN.maxother = 60, 60


def shown(value: object, limit: int = 80) -> str:
    """A value as an error message quotes it: its repr, cut to `limit` characters without ever
    building the whole of a huge value (nested YAML aliases, an integer of a million digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of {value.bit_length()} bits"
    text = " ".join(_SHOWN.repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require_positive(counts: dict[str, int | None]) -> None:
    """Each given count (None: not given) must be at least 1; the error names it as the caller
    does, a setting (`batch_size`) or a flag (`--batch-size`). The one check of its kind."""
    for name, value in counts.items():
        if value is not None and value < 1:
            raise ConfigError(f"{name}: {value} must be at least 1")
