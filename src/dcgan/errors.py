"""The errors a user sees as one line: each names the file, flag or value and what would fix it.

The command line turns these into `dcgan <command>: error: <message>` and an exit code; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


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
