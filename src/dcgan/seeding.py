"""Every random stream of the project, derived from one seed: which numbers exist and how a
(seed, index, stream) triple becomes a generator seed.

Each stream is independent of the others, and item i of a stream depends only on (seed, i), so
batch sizes, process counts and resumes never change what is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# Streams under a run's (or a command's) seed, for `seed_for`.
STREAM_IMAGES = 0  # z of generated image i: `dcgan generate`, previews, evaluation
STREAM_TRAIN_NOISE = 1  # the training noise, one generator saved in the checkpoint
STREAM_EPOCHS = 2  # the order of real images in epoch e
STREAM_FLIPS = 3  # which images of real batch b are mirrored (--flip)
STREAM_BN_RECALIBRATION = 4  # z that re-estimates the moving average's BatchNorm statistics
STREAM_PROCESSES = 5  # each torchrun process's own torch RNG (dropout)
STREAM_AUGMENT = 6  # the augmentation of D's inputs: per training update and call in it
STREAM_FAKE_LABELS = 7  # the classes of a conditional run's fakes: per training update
STREAM_PROBE_DRAWS = 100  # the linear probe's labelled draws
STREAM_PROBE_SPLIT = 101  # the probe's fixed test split on datasets without one
STREAM_VARIATIONS = 200  # `dcgan arithmetic`'s noise for variation k of its result

# Room for one training step's updates: its d_steps D updates, then its g_steps G updates
# (each count at most 100). Updates are numbered run-wide by `update_number`.
UPDATES_PER_STEP = 256

MAX_SEED = 2**63 - 1  # torch.manual_seed's limit: the run seed seeds torch's own generator

# Fixed seeds that must not follow the run seed.
HOLDOUT_SEED = 20151119  # which images --holdout keeps out: the same for every run
REFERENCE_SEED = 1234  # which real images an FID reference draws
FAKE_DATA_SEED = 0  # the built-in `fake` dataset's random images


def seed_for(seed: int, index: int, stream: int = STREAM_IMAGES) -> int:
    """A 63-bit seed for item `index` of `stream` under `seed`; nearby triples don't collide."""
    state = np.random.SeedSequence([stream, seed, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def update_number(step: int, update: int) -> int:
    """The run-wide number of update `update` of step `step` (D's updates first, then G's):
    the index of the per-update streams, so what a step draws depends on nothing before it."""
    return step * UPDATES_PER_STEP + update


def sample_z(n: int, nz: int, dist: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """n latent vectors (n, nz) from N(0, 1) or U(-1, 1), drawn on the CPU from `generator`."""
    if dist == "uniform":
        return torch.rand(n, nz, generator=generator) * 2 - 1
    return torch.randn(n, nz, generator=generator)


def z_for_indices(seed: int, indices: Sequence[int], nz: int, dist: str = "normal") -> torch.Tensor:
    """(len(indices), nz): row k depends only on (seed, indices[k]), never on batching."""
    rows = [
        sample_z(1, nz, dist, torch.Generator().manual_seed(seed_for(seed, i))) for i in indices
    ]
    return torch.cat(rows) if rows else torch.empty(0, nz)
