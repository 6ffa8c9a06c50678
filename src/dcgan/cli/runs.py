"""`dcgan runs [ROOT]`: a table of the runs under a directory and the state of each."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dcgan.cli.common import Command
from dcgan.errors import ConfigError
from dcgan.run.status import ACTIVE_SECONDS, STATES, RunStatus, list_runs

SORT_KEYS = ("name", "step", "fid", "state", "time")
COLUMNS = ("run", "dataset", "size", "steps", "D loss", "G loss", "best FID", "state")


def runs_arguments(p: argparse.ArgumentParser) -> None:
    """ROOT, --sort and --json."""
    p.add_argument(
        "root", nargs="?", type=Path, default=Path("runs"), help="directory searched (default runs)"
    )
    p.add_argument(
        "--sort",
        choices=SORT_KEYS,
        default="name",
        help="order: name, step (most done first), fid (best first), state, time (newest first)",
    )
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list")


def run_runs(ns: argparse.Namespace) -> int:
    """Print the table (or JSON) of the runs under ROOT."""
    root: Path = ns.root
    if not root.is_dir():
        raise ConfigError(f"ROOT: {root} is not a directory; give the directory holding runs")
    rows = sort_rows(list_runs(root), ns.sort)
    if ns.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
    elif not rows:
        print(f"no runs under {root}")
    else:
        print(format_table(rows))
    return 0


def sort_rows(rows: list[RunStatus], key: str) -> list[RunStatus]:
    """Rows in the `--sort` order; rows without the value last, then by name."""
    if key == "step":
        return sorted(rows, key=lambda r: (r.step is None, -(r.step or 0), r.run))
    if key == "fid":
        return sorted(rows, key=lambda r: (r.best_fid is None, r.best_fid or 0.0, r.run))
    if key == "state":
        return sorted(rows, key=lambda r: (STATES.index(r.state), r.run))
    if key == "time":
        return sorted(rows, key=lambda r: (r.modified is None, -(r.modified or 0.0), r.run))
    return sorted(rows, key=lambda r: r.run)


def cells(row: RunStatus) -> tuple[str, ...]:
    """A row's table cells; `-` where its files do not tell."""

    def num(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    done = "-" if row.step is None else str(row.step)
    steps = done if row.planned is None else f"{done}/{row.planned}"
    size = "-" if row.image_size is None else str(row.image_size)
    losses = (num(row.loss_d, 3), num(row.loss_g, 3))
    return (row.run, row.dataset or "-", size, steps, *losses, num(row.best_fid, 2), row.state)


def format_table(rows: list[RunStatus]) -> str:
    """Aligned columns under a header, numbers right-aligned; then what is damaged in each
    damaged run, a line each."""
    table = [COLUMNS, *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS) - 1)]
    right = {2, 3, 4, 5, 6}
    lines = []
    for line in table:
        parts = [line[i].rjust(w) if i in right else line[i].ljust(w) for i, w in enumerate(widths)]
        lines.append("  ".join([*parts, line[-1]]))
    lines += [f"{r.run}: {r.problem}" for r in rows if r.problem is not None]
    return "\n".join(lines)


COMMANDS = (
    Command(
        "runs",
        f"list the runs under a directory: progress, losses, best FID, state (running: "
        f"changed in the last {ACTIVE_SECONDS // 60} minutes)",
        runs_arguments,
        run_runs,
    ),
)
