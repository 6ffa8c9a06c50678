"""What a run tells the user: stats.jsonl, log.txt, and a progress bar or plain lines."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from dcgan.fsio import append_jsonl, open_append
from dcgan.progress import bar, is_terminal
from dcgan.run.rundir import LOG_FILE, STATS_FILE

_SHOWN = (("loss_d", "D"), ("loss_g", "G"), ("d_real", "D(x)"), ("d_fake", "D(G(z))"))


class RunLogger:
    """Writes every stats record to `stats.jsonl` and a line to `log.txt`; shows a tqdm bar with
    live losses when `stream` is a terminal, and plain log lines otherwise."""

    def __init__(
        self, run_dir: Path, total_steps: int, start_step: int, stream: TextIO | None = None
    ):
        self.run_dir = Path(run_dir)
        self.stream = stream if stream is not None else sys.stderr
        self.bar = None  # plain lines where the stream is not a terminal (progress.bar's rule)
        if is_terminal(self.stream):
            self.bar = bar(
                total=total_steps, initial=start_step, unit="step", stream=self.stream, leave=True
            )
        # Names in any bytes (a non-UTF-8 run directory) are written escaped, never a crash.
        self._log = io.TextIOWrapper(
            open_append(self.run_dir / LOG_FILE), encoding="utf-8", errors="backslashreplace"
        )

    def info(self, message: str) -> None:
        """A line for log.txt and the user."""
        self.detail(message)
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def detail(self, message: str) -> None:
        """A line for log.txt only (lists too long for the terminal)."""
        self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        self._log.flush()

    def record(self, rec: dict[str, Any]) -> None:
        """Append one stats record (a dict of plain numbers)."""
        append_jsonl(self.run_dir / STATS_FILE, rec)
        shown = {label: f"{rec[k]:.3f}" for k, label in _SHOWN}
        shown["img/s"] = f"{rec['images_per_s']:.0f}"
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            self._log.write(json.dumps(rec) + "\n")
            self._log.flush()
        else:
            text = " ".join(f"{k} {v}" for k, v in shown.items())
            self.info(f"step {rec['step']} epoch {rec['epoch']:.2f} {text}")

    def metric(self, rec: dict[str, Any]) -> None:
        """Append an evaluation record (e.g. FID at a step) to stats.jsonl and show it."""
        append_jsonl(self.run_dir / STATS_FILE, rec)
        self.info(" ".join(f"{k} {v}" for k, v in rec.items()))

    def advance(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self._log.close()


class QuietLogger:
    """RunLogger's interface, saying nothing: the logger of every process but rank 0, which
    alone reports a multi-process run."""

    def info(self, message: str) -> None:
        """Dropped."""

    def detail(self, message: str) -> None:
        """Dropped."""

    def record(self, rec: dict[str, Any]) -> None:
        """Dropped."""

    def metric(self, rec: dict[str, Any]) -> None:
        """Dropped."""

    def advance(self, steps: int = 1) -> None:
        """Dropped."""

    def close(self) -> None:
        """Nothing to close."""
