"""What every subcommand shares: the registration record, the parser that errors in one line,
config fields as flags (their help written once, beside the field), and run-directory helpers."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcgan.config import DATASET_NAMES, Config, DataConfig, leaf_fields, leaf_type
from dcgan.errors import ConfigError, require_positive
from dcgan.fsio import append_jsonl, atomic_write_text, unwritable
from dcgan.run.rundir import CONFIG_FILE, METRICS_FILE


@dataclass(frozen=True)
class Command:
    """A subcommand: its name and help, what adds its arguments, and what runs it."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """Bad arguments give one line naming the flag, not a usage dump or a traceback."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Every config field as a flag named after it (`batch_size` -> `--batch-size`), with the
    field's help; only flags the user gives override the defaults or the `--config` file."""
    for name, (section, f) in leaf_fields().items():
        tp = leaf_type(section, name)
        base = ([a for a in typing.get_args(tp) if a is not type(None)] or [tp])[0]
        flag = "--" + name.replace("_", "-")
        kw: dict[str, Any] = {
            "dest": name,
            "default": argparse.SUPPRESS,
            "help": f.metadata["help"],
        }
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(base) is tuple:
            parser.add_argument(flag, nargs=2, type=float, metavar=("B1", "B2"), **kw)
        elif type(None) in typing.get_args(tp) and base in (int, float):
            parser.add_argument(flag, type=_or_none(base), **kw)
        else:
            parser.add_argument(flag, type=base, **kw)


def _or_none(base: type) -> typing.Callable[[str], Any]:
    """The flag's type for an optional number: `none` clears a value the --config file set
    (`--ada-target none` turns the recipe's adaptive augmentation off)."""

    def parse(text: str) -> Any:
        return None if text.strip().lower() == "none" else base(text)

    parse.__name__ = base.__name__  # argparse names it in "invalid float value: 'x'"
    return parse


def config_flags(ns: argparse.Namespace) -> dict[str, Any]:
    """The config fields the user gave as flags, by leaf name."""
    return {k: v for k, v in vars(ns).items() if k in leaf_fields()}


def positive(**values: int | None) -> None:
    """Each given count must be at least 1; the error names the flag."""
    require_positive({f"--{name.replace('_', '-')}": value for name, value in values.items()})


def data_flags(
    parser: argparse.ArgumentParser, required: bool = False, reference: bool = True
) -> None:
    """--dataset, --data-root, --split (and --reference): real images to measure against."""
    parser.add_argument("--dataset", required=required, help="default: the run's dataset")
    parser.add_argument("--data-root", help="default: the run's data root")
    parser.add_argument("--split", help="official split of the dataset (train, test, all)")
    if reference:
        parser.add_argument(
            "--reference",
            default="auto",
            help="real images: auto (held-out if any, else train), holdout, train, test or all",
        )


def seed_device_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="generated image i uses (seed, i)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def run_config(source: Path) -> Config | None:
    """The run's config when `source` is (or sits in) a run directory."""
    from dcgan.run.sources import read_run_config

    for d in (source, source.parent, source.parent.parent):
        if d.is_dir() and (d / CONFIG_FILE).is_file():
            return read_run_config(d)
    return None


def data_config(ns: argparse.Namespace, cfg: Config | None) -> DataConfig:
    """The run's data settings with the flags' changes; held-out images only apply to the
    dataset the run trained on."""
    if cfg is None and not ns.dataset:
        raise ConfigError("--dataset: required when the source is not a run directory")
    base = cfg.data if cfg is not None else DataConfig()
    changes: dict[str, Any] = {}
    if ns.dataset and ns.dataset != base.dataset:
        changes.update(dataset=ns.dataset, holdout=0)
    if ns.dataset and ns.dataset not in DATASET_NAMES:
        raise ConfigError(f"--dataset: '{ns.dataset}' is not one of {', '.join(DATASET_NAMES)}")
    if ns.data_root:
        changes["data_root"] = ns.data_root
    if ns.split:
        changes["split"] = ns.split
    return dataclasses.replace(base, **changes)


def check_output(flag: str, path: Path | None, directory: bool = False) -> None:
    """Refuse an output path that cannot be written, before any work: one line naming it."""
    if path is not None and (problem := unwritable(path, directory)):
        raise ConfigError(f"{flag}: cannot write {path}: {problem}; choose another path")


_OS_HINTS = {
    errno.ENOSPC: "free some space and run again",
    errno.EDQUOT: "free some space and run again",
    errno.EACCES: "fix its permissions or choose another path",
    errno.EPERM: "fix its permissions or choose another path",
    errno.EROFS: "it is on a read-only file system; choose another path",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a directory; check the path",
    errno.EISDIR: "it is a directory; give a file name",
    errno.ENAMETOOLONG: "use a shorter name",
}


def os_error_line(e: OSError) -> str:
    """An OS error (permission, missing directory, full disk) as `<path>: <what>; <fix>`."""
    what = e.strerror or type(e).__name__
    hint = _OS_HINTS.get(e.errno, "check the path and the disk") if e.errno else "check the path"
    names = [str(n) for n in (e.filename, e.filename2) if n is not None]
    where = f"{' -> '.join(names)}: " if names else ""
    return " ".join(f"{where}{what}; {hint}".split())


def report(command: str, source: Path, record: dict[str, Any], fmt, json_path) -> int:
    """Print a result, write its JSON (when asked) and append it to the run's metrics.jsonl
    (and refresh the run's model card)."""
    record = {"command": command, "source": str(source), **record}
    print(fmt(record))
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(record, indent=1) + "\n")
    if source.is_dir() and (source / CONFIG_FILE).is_file():
        append_jsonl(source / METRICS_FILE, record)
        from dcgan.run.card import refresh_card

        refresh_card(source)  # the model card beside its export shows the new figures
    return 0
