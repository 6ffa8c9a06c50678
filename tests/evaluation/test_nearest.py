"""The memorisation grid shows the true nearest training images, in feature and pixel space.

The neighbour search is checked against a brute-force sort of all pairwise distances, and the
written PNG is read back: a generator that outputs exact copies of known training images must
show those images first in its rows, followed by the brute-force next-nearest ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import ThumbnailFeatures
from dcgan.config import Config, DataConfig, merge
from dcgan.evaluation import features
from dcgan.evaluation.nearest import nearest_grid, nearest_indices
from dcgan.evaluation.reference import real_images
from dcgan.images import read_png
from dcgan.seeding import z_for_indices

SIZE, PAD = 16, 2
CPU = torch.device("cpu")


def brute_force(queries: torch.Tensor, pool: torch.Tensor, k: int) -> torch.Tensor:
    """(Q, k) indices of the nearest pool rows, by sorting every squared distance."""
    q, p = queries.double(), pool.double()
    dist = ((q[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    return dist.argsort(dim=1, stable=True)[:, :k]


@pytest.mark.parametrize(("dim", "k"), [(2, 1), (7, 4), (64, 10), (3072, 5)])
def test_nearest_indices_match_brute_force(dim: int, k: int) -> None:
    g = torch.Generator().manual_seed(dim)
    queries, pool = torch.randn(13, dim, generator=g), torch.randn(90, dim, generator=g)
    found = nearest_indices(queries, pool, k)
    expected = brute_force(queries, pool, k)
    assert found.shape == (13, k)
    # ties-free data: the order is unique, nearest first
    gaps = ((queries.double()[:, None] - pool.double()[None]) ** 2).sum(-1).sort(1).values.diff(1)
    assert gaps[:, :k].min() > 1e-9
    assert torch.equal(found, expected)


def test_nearest_indices_on_uint8_pixels_and_a_small_pool() -> None:
    g = torch.Generator().manual_seed(0)
    pool = torch.randint(0, 256, (20, 48), dtype=torch.uint8, generator=g)
    queries = pool[[3, 17, 0]].clone()
    queries[:, 0] ^= 1  # one grey level off: still nearest to its original
    found = nearest_indices(queries, pool, 3)
    assert found[:, 0].tolist() == [3, 17, 0]
    assert torch.equal(found, brute_force(queries, pool, 3))  # no uint8 wrap-around
    assert nearest_indices(queries, pool[:2], 5).shape == (3, 2)  # k capped at the pool


class CopyingGenerator(nn.Module):
    """Outputs chosen images: the one for z of image i is `images[i]` (uint8 (N, C, S, S))."""

    def __init__(self, cfg: Config, images: torch.Tensor, seed: int) -> None:
        super().__init__()
        self.cfg = cfg.model
        self.anchor = nn.Parameter(torch.zeros(1))  # where `render` looks for the device
        self.z = z_for_indices(seed, range(len(images)), cfg.model.nz, "normal")
        self.images = images.float() / 127.5 - 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        rows = [int((self.z == zi).all(1).nonzero()) for zi in z.cpu()]
        return self.images[rows]


def tile(grid: torch.Tensor, row: int, col: int) -> torch.Tensor:
    top, left = PAD + row * (SIZE + PAD), PAD + col * (SIZE + PAD)
    return grid[:, top : top + SIZE, left : left + SIZE]


@pytest.mark.parametrize("dataset", ["fake", "mnist-sample"])
@pytest.mark.slow
def test_grid_rows_show_the_true_nearest_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dataset: str
) -> None:
    monkeypatch.setattr(features, "InceptionFeatures", ThumbnailFeatures)
    cfg = merge(Config(), {"image_size": SIZE, "channels": 1, "nz": 8}, "t")
    data = DataConfig(dataset=dataset, cache_dir=str(tmp_path / "cache"))
    num, k, pool_size, seed = 4, 3, 60, 11
    pool, _ = real_images(data, SIZE, 1, "train", pool_size)
    assert len(pool) == pool_size
    copied = [41, 7, 0, 59]  # the pool images the generator reproduces
    fakes = pool[copied]
    generator = CopyingGenerator(cfg, fakes, seed)
    extractor = ThumbnailFeatures()

    for _ in range(2):  # the second call reads the pool's features from the cache
        out = nearest_grid(
            generator, "normal", data, num, k, pool_size, seed, tmp_path / "near.png", CPU
        )
        grid = read_png(out)
        assert len(list((tmp_path / "cache" / "ref-stats").glob("*.npz"))) == 1
        cols = 1 + 1 + k + 1 + k
        assert grid.shape == (1, num * (SIZE + PAD) + PAD, cols * (SIZE + PAD) + PAD)

        spaces = {  # column of the first neighbour -> how that space sees images
            2: lambda x: torch.from_numpy(extractor(x)),
            3 + k: lambda x: x.flatten(1).double(),
        }
        orders = []
        for first, embed in spaces.items():
            dist = ((embed(fakes)[:, None] - embed(pool)[None]) ** 2).sum(-1)
            orders.append(dist.argsort(dim=1, stable=True)[:, :k])
            for i, source in enumerate(copied):
                assert torch.equal(tile(grid, i, 0), fakes[i])  # the sample itself
                assert torch.equal(tile(grid, i, first), pool[source])  # a copy: its original
                shown = torch.stack([tile(grid, i, first + j) for j in range(k)])
                to_shown = ((embed(fakes[i : i + 1]) - embed(shown)) ** 2).sum(-1)
                # the j-th tile is as near as the j-th nearest pool image (ties allowed)
                torch.testing.assert_close(to_shown, dist[i].sort().values[:k], rtol=1e-9, atol=0)
                assert (tile(grid, i, first - 1) == 128).all()  # the blank before the column
        assert not torch.equal(*orders)  # the two spaces rank differently: columns told apart
