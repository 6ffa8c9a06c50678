"""What state each run under a directory is in, read from its files alone (`dcgan runs`).

A run's log.txt says how each attempt of it ended: an attempt begins with `run <dir>: ...
steps A->B` (B: the steps planned), and ends with `samples: ...` (finished), `stopped by
SIGTERM|SIGINT|max_minutes at step N` (stopped by a signal or the time budget, whose
`samples: ...` comes just before) or `diverged: ...` (stopped by a NaN or inf).
An attempt with no end is running while the run's files keep changing, and otherwise ended
without a word (killed, or crashed): `interrupted`. A file that cannot be read makes the run
`damaged`, never an error: one bad run does not hide the others.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dcgan.config import load_yaml
from dcgan.errors import ConfigError, Recovered
from dcgan.run import rundir

DIVERGED_MARK = "diverged"  # log.txt: `diverged: <why>` when divergence stopped the run
ACTIVE_SECONDS = 300  # files changed this recently (and no end logged): the run is running
STATES = ("running", "finished", "stopped", "diverged", "interrupted", "damaged")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
_START = re.compile(r"^run .*: .* steps (\d+)->(\d+),")
_STOPPED = re.compile(r"^stopped by (SIG\w+|max_minutes) at step (\d+)")
_ENDS = (("samples: ", "finished"), (f"{DIVERGED_MARK}: ", "diverged"))


@dataclass
class RunStatus:
    """One row of `dcgan runs`; None where the run's files do not tell."""

    run: str  # path relative to the root searched
    path: str
    state: str = "interrupted"
    dataset: str | None = None
    image_size: int | None = None
    step: int | None = None  # steps done
    planned: int | None = None
    loss_d: float | None = None
    loss_g: float | None = None
    best_fid: float | None = None
    modified: float | None = None  # newest change to its log, stats or checkpoint (epoch s)
    problem: str | None = None  # what is damaged

    def as_dict(self) -> dict[str, Any]:
        """A plain dict for JSON."""
        return asdict(self)


def is_run_dir(path: Path) -> bool:
    """A run directory: config.yaml or stats.jsonl, beside checkpoints/ or log.txt."""
    try:
        has = set(os.listdir(path))
    except OSError:  # not a directory, or not readable
        return False
    return bool(has & {rundir.CONFIG_FILE, rundir.STATS_FILE}) and bool(
        has & {rundir.CHECKPOINT_DIR, rundir.LOG_FILE}
    )


def find_runs(root: Path) -> list[Path]:
    """Every run directory under `root` (or `root` itself), sorted; not inside runs, not
    inside hidden directories; unreadable directories are passed over."""
    root = Path(root)
    if is_run_dir(root):
        return [root]
    found = []
    for here, dirs, _ in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for d in list(dirs):
            if is_run_dir(Path(here) / d):
                found.append(Path(here) / d)
                dirs.remove(d)
    return sorted(found)


def run_status(run_dir: Path, root: Path, now: float | None = None) -> RunStatus:
    """The state, progress and figures of one run; `damaged` (with the problem) when one of
    its files cannot be read."""
    name = Path(run_dir).relative_to(root).as_posix() if run_dir != root else "."
    status = RunStatus(run=name, path=str(run_dir))
    status.modified = _modified(run_dir)
    try:
        _read_config(run_dir, status)
        _read_stats(run_dir, status)
        end = _read_log(run_dir, status)
    except (ConfigError, OSError, ValueError) as e:
        status.state, status.problem = "damaged", " ".join(str(e).split())
        return status
    now = time.time() if now is None else now
    recent = status.modified is not None and now - status.modified < ACTIVE_SECONDS
    status.state = end or ("running" if recent else "interrupted")
    return status


def _modified(run_dir: Path) -> float | None:
    paths = [run_dir / rundir.LOG_FILE, run_dir / rundir.STATS_FILE]
    paths.append(rundir.latest_checkpoint(run_dir))
    times = []
    for path in paths:
        with contextlib.suppress(OSError):  # not there (yet)
            times.append(path.stat().st_mtime)
    return max(times, default=None)


def _read_config(run_dir: Path, status: RunStatus) -> None:
    """Dataset and image size from config.yaml (when there is one)."""
    path = run_dir / rundir.CONFIG_FILE
    if not path.is_file():
        return
    settings = load_yaml(path)
    data, model = settings.get("data"), settings.get("model")
    if not isinstance(data, dict) or not isinstance(model, dict):
        raise ConfigError(f"{path}: its data or model settings are missing")
    dataset, size = data.get("dataset"), model.get("image_size")
    if not isinstance(dataset, str) or type(size) is not int:
        raise ConfigError(f"{path}: data.dataset or model.image_size is not valid")
    status.dataset, status.image_size = dataset, size
    train = settings.get("train")
    steps = train.get("steps") if isinstance(train, dict) else None
    status.planned = steps if type(steps) is int else None


def _read_stats(run_dir: Path, status: RunStatus) -> None:
    """Steps done, last losses and best FID from stats.jsonl; a damaged line skipped there is
    the run's problem (listed under the table), not an end to its figures."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Recovered)
        records = rundir.read_stats(run_dir)
    skipped = [str(w.message) for w in caught if issubclass(w.category, Recovered)]
    if skipped:
        status.problem = " ".join(skipped[0].split()) + (
            f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        )
    if records:
        status.step = max(r["step"] for r in records)
    losses = [r for r in records if _number(r.get("loss_d")) and _number(r.get("loss_g"))]
    if losses:
        status.loss_d, status.loss_g = float(losses[-1]["loss_d"]), float(losses[-1]["loss_g"])
    fids = [float(r["fid"]) for r in records if _number(r.get("fid"))]
    status.best_fid = min(fids, default=None)


def _number(value: Any) -> bool:
    is_real = isinstance(value, (int, float)) and not isinstance(value, bool)
    return is_real and math.isfinite(value)


def _read_log(run_dir: Path, status: RunStatus) -> str | None:
    """How the last attempt of the run ended (None: no end logged); the steps it planned and
    where a signal stopped it."""
    path = run_dir / rundir.LOG_FILE
    if not path.is_file():
        return None
    end = None
    for line in path.read_text(errors="replace").splitlines():
        message = _TIMESTAMP.sub("", line, count=1)
        if match := _START.match(message):
            end, status.planned = None, int(match.group(2))
        elif match := _STOPPED.match(message):
            end, status.step = "stopped", max(status.step or 0, int(match.group(2)))
        else:
            end = next((state for mark, state in _ENDS if message.startswith(mark)), end)
    return end


def list_runs(root: Path, now: float | None = None) -> list[RunStatus]:
    """The status of every run under `root`, sorted by name."""
    root = Path(root)
    return [run_status(path, root, now) for path in find_runs(root)]
