"""The one error type for data problems: a missing, unreadable or malformed dataset file."""

from __future__ import annotations

from dcgan.config import ConfigError


class DataError(ConfigError):
    """A dataset file is missing or not what it claims to be; the message is one line that
    names the file and what would fix it."""
