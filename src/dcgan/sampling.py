"""Seed-addressable generation: image i always comes from the z derived from (seed, i)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from dcgan.images import make_grid, save_png, to_uint8
from dcgan.seeding import z_for_indices


@torch.no_grad()
def render(generator: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """z (B, nz) -> uint8 images (B, C, S, S) on the CPU, G in eval mode without gradients.

    Eval mode makes each image independent of the others in its batch (BatchNorm uses its
    running statistics) and leaves those statistics untouched; G's mode is restored after.
    """
    was_training = generator.training
    generator.eval()
    try:
        return to_uint8(generator(z.to(next(generator.parameters()).device)))
    finally:
        generator.train(was_training)


def generate(
    generator: nn.Module,
    indices: Sequence[int],
    seed: int = 0,
    batch_size: int = 64,
    dist: str = "normal",
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield (indices, uint8 images (B, C, S, S)) in batches; the images do not depend on
    `batch_size` because each z comes from (seed, index) and G runs in eval mode."""
    nz = generator.cfg.nz
    for start in range(0, len(indices), batch_size):
        chunk = list(indices[start : start + batch_size])
        yield chunk, render(generator, z_for_indices(seed, chunk, nz, dist))


def write_images(
    generator: nn.Module,
    num: int,
    out_dir: str | Path,
    seed: int = 0,
    batch_size: int = 64,
    dist: str = "normal",
    grid: str | Path | None = None,
    index_labels: bool = False,
) -> list[Path]:
    """Write images 0..num-1 as `out_dir/NNNNNN.png` (and optionally one grid, each cell
    captioned with its index when `index_labels`); return paths."""
    out_dir = Path(out_dir)
    paths, kept = [], []
    for chunk, images in generate(generator, range(num), seed, batch_size, dist):
        for i, img in zip(chunk, images, strict=True):
            paths.append(save_png(img, out_dir / f"{i:06d}.png"))
        if grid is not None:
            kept.append(images)
    if grid is not None:
        labels = [str(i) for i in range(num)] if index_labels else None
        save_png(make_grid(torch.cat(kept), labels=labels), grid)
    return paths
