"""The augmentation of every image D sees during training (`--augment`), and ADA's control of
its probability p (`--ada-target`).

The per-image parameters of each call come from their own seeded generator, keyed by the
training update (`seeding.update_number`) and the call within it (0 or 1), and
are drawn for the whole global batch, each process keeping its slice: a resumed run, on any
number of processes, augments exactly as one unbroken process does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dcgan.nn.augment import CUTOUT_RATIO, augment, draw_params
from dcgan.seeding import STREAM_AUGMENT, seed_for

CALLS_PER_UPDATE = 2  # an update augments its two batches (D: reals, fakes; G: fakes, reals)


@dataclass
class Augmenter:
    """Augments a process's share of a global batch with probability `p` per image and policy."""

    policies: tuple[str, ...]
    p: float
    seed: int
    size: int  # image side
    rank: int = 0
    world: int = 1
    cutout: float = CUTOUT_RATIO  # the cutout square's side as a fraction of the image side

    def __call__(self, x: torch.Tensor, update: int, call: int) -> torch.Tensor:
        """x (B, C, S, S) in [-1, 1] augmented as call `call` (0 or 1) of training update
        `update` (`seeding.update_number`); same shape."""
        if self.p == 0:
            return x
        n = len(x)
        g = torch.Generator().manual_seed(
            seed_for(self.seed, update * CALLS_PER_UPDATE + call, STREAM_AUGMENT)
        )
        params = draw_params(n * self.world, self.size, self.p, g)
        mine = params.part(slice(self.rank * n, (self.rank + 1) * n))
        return augment(x, self.policies, mine, self.cutout)


@dataclass
class AdaptiveP:
    """ADA's controller (Karras et al. 2020): every `interval` steps, p moves up when D is
    overconfident on real images (rt = E[sign(D(x_real))] above `target`) and down otherwise,
    by an amount that takes `kimg` thousand real images to cross from 0 to 1."""

    target: float
    interval: int
    kimg: float
    total: torch.Tensor | None = None  # sum of the steps' rt since the last adjustment (device)
    count: int = 0

    def add(self, rt: torch.Tensor) -> None:
        """One step's rt, a 0-dim tensor on the device (no host sync)."""
        self.total = rt if self.total is None else self.total + rt
        self.count += 1

    def adjust(
        self, p: float, images_per_step: int, mean: Callable[[torch.Tensor], torch.Tensor]
    ) -> float:
        """The new p, from the rt of the steps since the last adjustment (`mean` averages it
        over processes) and the real images they used (`images_per_step` over processes)."""
        if self.count == 0:  # nothing observed since the last move (e.g. a resume right after one)
            return p
        rt = float(mean(self.total) / self.count)
        move = math.copysign(1.0, rt - self.target) * images_per_step * self.count
        self.total, self.count = None, 0
        return min(max(p + move / (self.kimg * 1000), 0.0), 1.0)

    def state(self) -> list[float]:
        """[sum, count] of the signal since the last adjustment, for the checkpoint."""
        return [0.0 if self.total is None else float(self.total), float(self.count)]

    def load(self, saved: list[float], device: torch.device) -> None:
        total, count = saved
        self.count = int(count)
        self.total = torch.tensor(total, device=device) if self.count else None
