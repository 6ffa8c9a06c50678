"""An exponential moving average of G's weights: the generator that previews, exports and
evaluation sample from.

Averaging the last few hundred steps' weights smooths out the oscillation of adversarial
training, which shows directly in sample quality and FID. The average starts fast and slows
to `decay` (as TensorFlow's ExponentialMovingAverage with num_updates), so short runs are not
dominated by their first, untrained weights. G uses BatchNorm, and running statistics
gathered under the raw weights do not match the averaged ones, so they are re-estimated for
the average from a fixed stream of noise before it is used.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from dcgan.seeding import STREAM_BN_RECALIBRATION, sample_z, seed_for

RECALIBRATION_BATCHES = 8
RECALIBRATION_BATCH_SIZE = 64


def make_ema(generator: nn.Module) -> nn.Module:
    """A detached copy of `generator` that will hold the average."""
    ema = copy.deepcopy(generator)
    ema.requires_grad_(False)
    return ema


def decay_at(max_decay: float, step: int) -> float:
    """The averaging decay after `step` updates: (1 + step) / (10 + step), capped at max_decay."""
    return min(max_decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, generator: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * generator, parameter by parameter."""
    averaged = list(ema.parameters())
    torch._foreach_lerp_(averaged, [p.detach() for p in generator.parameters()], 1.0 - decay)


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, nz: int, z_dist: str, seed: int, num_classes: int = 0
) -> None:
    """Re-estimate every BatchNorm's running mean and variance for `model`'s current weights as
    exact averages over a fixed set of noise batches (the same for every call); a conditional
    G (`num_classes` > 0) gets uniformly drawn classes with them."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration batches
    was_training = model.training
    model.train()
    device = next(model.parameters()).device
    rng = torch.Generator().manual_seed(seed_for(seed, 0, STREAM_BN_RECALIBRATION))
    try:
        for _ in range(RECALIBRATION_BATCHES):
            z = sample_z(RECALIBRATION_BATCH_SIZE, nz, z_dist, rng).to(device)
            if num_classes:
                labels = torch.randint(num_classes, (RECALIBRATION_BATCH_SIZE,), generator=rng)
                model(z, labels.to(device))
            else:
                model(z)
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.train(was_training)
