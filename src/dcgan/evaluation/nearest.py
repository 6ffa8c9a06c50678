"""The memorisation check: generated samples beside their nearest training images.

A generator that copies its training set shows near-duplicates in these rows. Neighbours are
searched in two spaces: Inception features (what the images show) and raw pixels (exact
copies), over a fixed subset of the training images whose features are cached like any
reference set.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dcgan.config import DataConfig
from dcgan.evaluation.evaluate import fake_images
from dcgan.evaluation.reference import real_images, reference_features
from dcgan.images import make_grid, save_png


def nearest_indices(queries: torch.Tensor, pool: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (Q, k) of the k nearest rows of `pool` (P, D) to each query (Q, D), by L2."""
    dist = torch.cdist(queries.double(), pool.double())
    return dist.topk(min(k, len(pool)), largest=False).indices


def neighbour_rows(
    fakes: torch.Tensor, pool: torch.Tensor, by_feature: torch.Tensor, by_pixel: torch.Tensor
) -> torch.Tensor:
    """uint8 tiles row by row: sample, blank, feature neighbours, blank, pixel neighbours."""
    blank = torch.full_like(fakes[0], 128)
    tiles = []
    for i, fake in enumerate(fakes):
        tiles += [fake, blank, *pool[by_feature[i]], blank, *pool[by_pixel[i]]]
    return torch.stack(tiles)


def nearest_grid(
    generator: nn.Module,
    z_dist: str,
    data: DataConfig,
    num: int,
    k: int,
    pool_size: int,
    seed: int,
    out: Path,
    device: torch.device,
) -> Path:
    """Write the grid PNG: one row per generated image 0..num-1 of `seed`."""
    from dcgan.evaluation.features import InceptionFeatures

    size, channels = generator.cfg.image_size, generator.cfg.channels
    extractor = InceptionFeatures(device=device)
    pool, _ = real_images(data, size, channels, "train", pool_size)
    ref = reference_features(extractor, data, size, channels, "train", pool_size)
    fakes = fake_images(generator, num, seed, z_dist)
    by_feature = nearest_indices(torch.from_numpy(extractor(fakes)), torch.from_numpy(ref.feats), k)
    by_pixel = nearest_indices(fakes.flatten(1), pool.flatten(1), k)
    tiles = neighbour_rows(fakes, pool, by_feature, by_pixel)
    return save_png(make_grid(tiles, nrow=3 + 2 * by_feature.shape[1]), out)
