"""What keeps a run's work safe: stopping cleanly on SIGINT/SIGTERM and catching divergence
(a NaN or inf in a loss or a weight) before it reaches a checkpoint.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from types import FrameType

import torch
from torch import nn

from dcgan.errors import Diverged

OUT_OF_TIME = "max_minutes"  # what ended a run whose time budget ran out
EXIT_CODES = {OUT_OF_TIME: 0, "SIGTERM": 0, "SIGINT": 130}


class TimeBudget:
    """--max-minutes: wall-clock minutes of training this process may spend, counted from
    its creation (after set-up, so decoding the data and loading a checkpoint are free)."""

    clock = staticmethod(time.monotonic)  # seconds; tests put a clock of their own here

    def __init__(self, minutes: float) -> None:
        self.minutes = minutes
        self.start = self.clock()

    def spent(self) -> float:
        """Minutes since the budget started."""
        return (self.clock() - self.start) / 60

    def expired(self) -> str | None:
        """OUT_OF_TIME once the budget is spent (never without one), else None."""
        return OUT_OF_TIME if self.minutes > 0 and self.spent() >= self.minutes else None


class GracefulStop:
    """Within `with GracefulStop() as stop:`, SIGINT and SIGTERM only set `stop.signal`, so the
    loop can finish its step and checkpoint; a second SIGINT aborts at once (KeyboardInterrupt).

    Handlers are only installed from the main thread (Python allows no other); elsewhere the
    context does nothing and the signals keep their usual effect.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal == "SIGINT" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = self.signal or signal.Signals(signum).name

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class DivergenceWatch:
    """Remembers, on the device, the first step whose statistics were not finite, so the loop
    never waits for the host; `check` reads it (one sync) before anything is written."""

    def __init__(self, keys: tuple[str, ...]):
        self.keys = keys
        self.first_step: torch.Tensor | None = None  # () int64, -1 while all is finite
        self.first_values: torch.Tensor | None = None  # the statistics of that step

    def add(self, step: int, values: torch.Tensor) -> None:
        """Record the statistics (len(keys),) of `step`."""
        if self.first_step is None:
            self.first_step = torch.full((), -1, dtype=torch.long, device=values.device)
            self.first_values = torch.zeros_like(values)
        new = torch.isfinite(values).all().logical_not() & (self.first_step < 0)
        self.first_step = torch.where(new, step, self.first_step)
        self.first_values = torch.where(new, values, self.first_values)

    def reset(self) -> None:
        self.first_step = self.first_values = None

    def check(self, step: int, networks: dict[str, nn.Module]) -> None:
        """Raise Diverged if a recorded statistic or any weight of `networks` is not finite."""
        bad = [name for name, net in networks.items() if not weights_finite(net)]
        first = -1 if self.first_step is None else int(self.first_step)
        if first < 0 and not bad:
            return
        where = f"by step {step}"
        if first >= 0:
            values = zip(self.keys, self.first_values.tolist(), strict=True)
            shown = [f"{k} = {v} ({owner(k)})" for k, v in values if not math.isfinite(v)]
            where = f"at step {first}: {', '.join(shown)}"
        nets = f"; non-finite weights in the {' and the '.join(bad)}" if bad else ""
        raise Diverged(f"training diverged {where}{nets}")


def owner(stat: str) -> str:
    """The network a statistic measures: G's losses, else D's."""
    return "generator" if stat in ("loss_g", "loss_fm") else "discriminator"


def weights_finite(net: nn.Module) -> bool:
    """Whether every parameter and buffer of `net` is finite (one host sync)."""
    tensors = [t for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()]
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())
