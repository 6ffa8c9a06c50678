"""Run directories: `runs/NNNNN-<dataset>-<size>/`, numbered, created once, never overwritten."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from dcgan.config import Config, dump_yaml, from_saved, load_yaml, sections
from dcgan.errors import ConfigError, Recovered, shown
from dcgan.fsio import atomic_write

CONFIG_FILE = "config.yaml"
STATS_FILE = "stats.jsonl"
METRICS_FILE = "metrics.jsonl"  # one record per evaluate or probe of the run
LOG_FILE = "log.txt"
CHECKPOINT_DIR = "checkpoints"
SAMPLES_DIR = "samples"
_NUMBERED = re.compile(r"^(\d{5,})-")
_KEPT = re.compile(r"step-(\d+)\.pt")
_GRID = re.compile(r"step-(\d+)\.png")


def latest_checkpoint(run_dir: str | Path) -> Path:
    """Where a run keeps its most recent checkpoint, the one `--resume` continues from."""
    return Path(run_dir) / CHECKPOINT_DIR / "latest.pt"


def kept_checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """Where the kept checkpoint of `step` goes: checkpoints/step-NNNNNN.pt."""
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:06d}.pt"


def kept_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """The run's kept `step-NNNNNN.pt` checkpoints by step, oldest first."""
    return _by_step(Path(run_dir) / CHECKPOINT_DIR, _KEPT)


def preview_path(run_dir: str | Path, step: int) -> Path:
    """Where the preview grid of `step` goes: samples/step-NNNNNN.png."""
    return Path(run_dir) / SAMPLES_DIR / f"step-{step:06d}.png"


def preview_grids(run_dir: str | Path) -> dict[int, Path]:
    """The run's preview grids by step, oldest first (by number: step-1000000.png comes after
    step-999999.png, where sorting the names would put it first)."""
    return _by_step(Path(run_dir) / SAMPLES_DIR, _GRID)


def latest_preview(run_dir: str | Path) -> tuple[int, Path] | None:
    """(step, path) of the run's newest preview grid, or None before the first."""
    grids = preview_grids(run_dir)
    return next(reversed(grids.items())) if grids else None


def _by_step(folder: Path, name: re.Pattern[str]) -> dict[int, Path]:
    found = {}
    for path in folder.glob("step-*"):
        if match := name.fullmatch(path.name):
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def create_run_dir(cfg: Config) -> Path:
    """Make the next free `NNNNN-<dataset>-<size>` under `cfg.output.out` and return it.

    `mkdir` without exist_ok is the lock: two runs starting at once get different numbers.
    """
    root = Path(cfg.output.out)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"out: cannot create {root} ({e.strerror})") from None
    if not os.access(root, os.W_OK):
        raise ConfigError(f"out: {root} is not writable; choose another directory with --out")
    taken = [int(m.group(1)) for p in root.iterdir() if (m := _NUMBERED.match(p.name))]
    number = max(taken, default=-1) + 1
    while True:
        path = root / f"{number:05d}-{cfg.data.dataset}-{cfg.model.image_size}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            number += 1


def write_config(run_dir: Path, cfg: Config) -> None:
    atomic_write(run_dir / CONFIG_FILE, lambda f: f.write(dump_yaml(cfg).encode()))


def read_config(run_dir: Path) -> Config:
    """The resolved config a run was started with."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory: {CONFIG_FILE} is missing")
    settings = load_yaml(path)
    if missing := [s for s in sections(Config()) if not isinstance(settings.get(s), dict)]:
        raise ConfigError(f"{path}: the run's {', '.join(missing)} settings are missing")
    return from_saved(settings, str(path))


def read_stats(run_dir: Path) -> list[dict[str, Any]]:
    """All records of `stats.jsonl` (empty when there is none yet). A last line cut short by a
    kill mid-append is ignored; a damaged line elsewhere is skipped with a warning naming it
    (see `stats_problem`), so it never stops a command or a later step of the run."""
    path = Path(run_dir) / STATS_FILE
    return _parse_stats(path.read_bytes(), path) if path.is_file() else []


TEXT_STATS = frozenset({"ended_by"})  # the stats fields that are words; all others are numbers


def stats_problem(record: Any) -> str | None:
    """Why a parsed line is not a stats record, or None: an object whose `step` is a count and
    whose values are plain numbers (within a float's range), words only where TEXT_STATS says."""
    if not isinstance(record, dict):
        return "not a JSON object"
    step = record.get("step")
    if type(step) is not int or not 0 <= step < 2**63:
        return "no step count"
    for key, value in record.items():
        if key in TEXT_STATS:
            ok = isinstance(value, str) and len(value) <= 100
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and (isinstance(value, float) or abs(value) < 2**1000)  # float() can take it
        if not ok:
            return f"{shown(key, 40)} is {shown(value, 40)}"
    return None


def _parse_stats(data: bytes, path: Path) -> list[dict[str, Any]]:
    lines = [line for line in data.split(b"\n") if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line.decode())
        except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested beyond reason
            record = None
        problem = "not JSON" if record is None else stats_problem(record)
        if problem is None:
            records.append(record)
        elif number < len(lines) or record is not None:  # a kill may cut the last line short
            warnings.warn(
                f"{path}: line {number} skipped ({problem}); fix or remove that line (this file "
                "is the run's log; its checkpoints hold the state)",
                Recovered,
                2,
            )
    return records


def truncate_stats(run_dir: Path, last_step: int) -> None:
    """Keep the records up to `last_step` (a resumed run redoes later steps and logs them again)
    and drop a line a kill cut short, so appends start on a fresh line."""
    path = Path(run_dir) / STATS_FILE
    if not path.is_file():
        return
    old = path.read_bytes()
    kept = [r for r in _parse_stats(old, path) if r["step"] <= last_step]
    text = "".join(json.dumps(r) + "\n" for r in kept).encode()
    if text != old:
        atomic_write(path, lambda f: f.write(text))
