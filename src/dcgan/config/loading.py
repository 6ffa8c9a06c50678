"""Settings from their sources, merged defaults < YAML file < flags, each value type-checked.

Every leaf name is unique across sections, so each field is also a snake_case CLI flag
(`batch_size` -> `--batch-size`). Unknown keys and wrong types raise `ConfigError` with a one-line
message that names the offending key and what would fix it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from dcgan.config.checks import validate
from dcgan.config.schema import Config, leaf_fields, leaf_type, sections, to_dict
from dcgan.errors import ConfigError, shown

MAX_TEXT = 4096  # the longest path Linux takes; no setting's text needs more


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against annotation `tp`, converting only lossless cases (int -> float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} numbers, got {shown(value)}")
        return tuple(coerce(v, a, key) for v, a in zip(value, args, strict=True))
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str and isinstance(value, str) and len(value) > MAX_TEXT:
        raise ConfigError(f"{key}: {shown(value)} is longer than {MAX_TEXT} characters")
    if (tp is bool and isinstance(value, bool)) or (tp is str and isinstance(value, str)):
        return value
    if tp is int and is_number and isinstance(value, int):
        if not -(2**63) <= value < 2**63:  # beyond what any count or seed can be
            raise ConfigError(f"{key}: {shown(value)} is out of range (a 64-bit integer)")
        return value
    if tp is float and is_number:
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"{key}: {shown(value)} is too large for a number") from None
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {shown(value)}")


def _type_name(tp: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


def merge(cfg: Config, overrides: dict[str, Any], source: str) -> Config:
    """Return a copy of `cfg` with `overrides` applied.

    `overrides` is either nested ({"train": {"lr": 1e-3}}) as in YAML files, or flat by leaf
    name ({"lr": 1e-3}) as from CLI flags. `source` names where they came from for errors.
    """
    cfg = dataclasses.replace(cfg, **{k: dataclasses.replace(v) for k, v in sections(cfg).items()})
    secs = sections(cfg)
    leaves = leaf_fields()
    for key, value in overrides.items():
        if key in secs:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {shown(key)} must be a mapping of settings")
            for sub, subval in value.items():
                _set_leaf(cfg, key, sub, subval, source)
        elif key in leaves:
            _set_leaf(cfg, leaves[key][0], key, value, source)
        else:
            raise ConfigError(f"{source}: unknown setting {shown(key)}{_suggest(key)}")
    return cfg


def _set_leaf(cfg: Config, section: str, name: str, value: Any, source: str) -> None:
    sec = getattr(cfg, section)
    if name not in {f.name for f in fields(sec)}:
        raise ConfigError(f"{source}: unknown setting {shown(f'{section}.{name}')}{_suggest(name)}")
    setattr(sec, name, coerce(value, leaf_type(section, name), f"{source}: {section}.{name}"))


def _suggest(key: Any) -> str:
    if not isinstance(key, str):  # YAML keys may be null or numbers: nothing is close
        return ""
    names = list(leaf_fields()) + [s.name for s in fields(Config)]
    close = difflib.get_close_matches(key.replace("-", "_"), names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file with the safe loader; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file ({e.reason} at byte {e.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as e:  # e.g. a date 2001-13-01
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Build and validate a Config from a nested dict."""
    return validate(merge(Config(), data, source))


# Settings whose default changed, and what a saved config that lacks them meant when it was
# saved: D had BatchNorm before spectral_norm existed (its default is now "auto").
SAVED_DEFAULTS = {"model": {"spectral_norm": False}}


def from_saved(data: dict[str, Any], source: str = "saved config") -> Config:
    """`from_dict` for a config a run saved (its config.yaml, a checkpoint's copy): a setting
    it lacks gets the value it had when it was saved (SAVED_DEFAULTS), not today's default."""
    filled = {
        name: {**SAVED_DEFAULTS.get(name, {}), **section} if isinstance(section, dict) else section
        for name, section in data.items()
    }
    return from_dict(filled, source)


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def resolve(yaml_file: str | Path | None = None, flags: dict[str, Any] | None = None) -> Config:
    """defaults < YAML file < flags, validated."""
    cfg = Config()
    if yaml_file is not None:
        cfg = merge(cfg, load_yaml(yaml_file), str(yaml_file))
    if flags:
        cfg = merge(cfg, flags, "flag")
    return validate(cfg)
