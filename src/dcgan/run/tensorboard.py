"""`--tensorboard`: a run's stats, FID, preview grids and settings as TensorBoard events in
`RUN/tensorboard/` (`tensorboard --logdir runs` shows every run side by side).

Every field of each stats.jsonl record becomes a scalar at its step (grouped by the prefix of
its tag: loss/, D/, fid/, run/), each preview grid an image, and at the end of the run its
settings become hyper-parameters beside its final figures (last losses, best FID). A resumed
(or rolled back) run opens a new event file that purges the events after the step it goes on
from, as stats.jsonl drops its records, so no step is shown twice. Only rank 0 writes: the
other processes keep a `Board` without a writer, whose calls do nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from dcgan.config import Config, to_dict
from dcgan.errors import ConfigError
from dcgan.run import rundir

TENSORBOARD_DIR = "tensorboard"
MISSING_PACKAGE = (
    "--tensorboard: the tensorboard package is not installed; "
    "pip install 'dcgan[tensorboard]' (or run without --tensorboard)"
)
FLUSH_SECS = 20  # a live run shows up in TensorBoard within this
_GROUPS = {
    "fid": "fid",
    "best_fid": "fid",
    "d_real": "D",
    "d_fake": "D",
    "rt": "D",
    "augment_p": "D",
}
FINAL_METRICS = ("final/loss_d", "final/loss_g", "final/best_fid")


def summary_writer_class() -> type:
    """torch's SummaryWriter; a one-line ConfigError naming the extra when tensorboard is
    missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(MISSING_PACKAGE) from None
    return SummaryWriter


def require(enabled: bool) -> None:
    """Before any work: refuse --tensorboard when its package is not installed."""
    if enabled:
        summary_writer_class()


def tag(key: str) -> str:
    """The TensorBoard tag of a stats field: losses under loss/, D's outputs and augmentation
    under D/, FID under fid/, the rest (epoch, rates, throughput) under run/."""
    if key.startswith("loss"):
        return f"loss/{key}"
    return f"{_GROUPS.get(key, 'run')}/{key}"


def hparams_of(cfg: Config) -> dict[str, bool | int | float | str]:
    """The run's settings as `section.name` hyper-parameters (None and pairs as text)."""
    flat = {}
    for section, values in to_dict(cfg).items():
        for name, value in values.items():
            plain = isinstance(value, (bool, int, float, str))
            flat[f"{section}.{name}"] = value if plain else str(value)
    return flat


class Board:
    """The run's TensorBoard writer; without one (tensorboard off, or not rank 0) every call
    does nothing."""

    def __init__(self, run_dir: Path | None = None, writer: Any = None) -> None:
        self.run_dir = run_dir
        self.writer = writer

    @classmethod
    def open(cls, run_dir: Path, step: int) -> Board:
        """The writer of `run_dir/tensorboard/` for a run at `step`: when events are there
        already (a resume), the new ones replace those after `step` (all of them from step 0)."""
        log_dir = Path(run_dir) / TENSORBOARD_DIR
        resumed = log_dir.is_dir() and any(log_dir.glob("events.out.tfevents.*"))
        purge = (step + 1 if step else 0) if resumed else None
        writer = summary_writer_class()(str(log_dir), purge_step=purge, flush_secs=FLUSH_SECS)
        return cls(Path(run_dir), writer)

    def record(self, rec: dict[str, Any]) -> None:
        """Every numeric field of a stats.jsonl record (but its step) as a scalar at its step."""
        if self.writer is None:
            return
        step = rec["step"]
        for key, value in rec.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(tag(key), value, step)

    def image(self, step: int, grid: torch.Tensor) -> None:
        """A preview grid, uint8 (C, H, W), as the `samples` image at `step`."""
        if self.writer is not None:
            self.writer.add_image("samples", grid, step, dataformats="CHW")

    def reopen(self, step: int) -> None:
        """After a rollback to `step`: a new event file that drops the events after it."""
        if self.writer is not None:
            self.writer.close()
            self.writer = Board.open(self.run_dir, step).writer

    def finish(self, cfg: Config, step: int, best_fid: float | None) -> None:
        """The settings as hyper-parameters and the final figures (last D and G losses, best
        FID when measured) as `final/*` scalars at `step`."""
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        figures = final_figures(self.run_dir, best_fid)
        metrics = {name: figures[name] for name in FINAL_METRICS if name in figures}
        file_writer = self.writer._get_file_writer()
        for summary in hparams(hparams_of(cfg), metrics):  # experiment, session start, end
            file_writer.add_summary(summary)
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def close(self) -> None:
        """Write what is pending and close the event file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def final_figures(run_dir: Path, best_fid: float | None) -> dict[str, float]:
    """`final/loss_d` and `final/loss_g` from the last stats record that has them, and
    `final/best_fid` when FID was measured; finite values only."""
    try:
        records = rundir.read_stats(run_dir)
    except (ConfigError, OSError):  # a damaged log: the figures it would give are unknown
        records = []
    losses = [r for r in records if "loss_d" in r and "loss_g" in r]
    figures = {}
    if losses:
        figures["final/loss_d"] = losses[-1]["loss_d"]
        figures["final/loss_g"] = losses[-1]["loss_g"]
    if best_fid is not None:
        figures["final/best_fid"] = best_fid
    return {k: float(v) for k, v in figures.items() if _finite(v)}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
