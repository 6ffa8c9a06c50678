"""Latent-space experiments on a trained G: interpolation, vector arithmetic, a looping walk and
one-dimension sweeps (Radford et al. 2015, sections 6.1 and 6.3; slerp as in White 2016).

Every z comes from `dcgan.seeding`: image i of seed s has the z that `dcgan generate --seed s`
uses for its image i, so each experiment starts from images already seen. The z-space maths are
small pure functions; the experiments render through `dcgan.sampling.render` (G in eval mode)
and return uint8 images (..., C, S, S); the sheet and frame functions lay those out as one uint8
image (C, H, W) for `save_png` or as frames for `save_gif_images`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from dcgan.errors import ConfigError
from dcgan.images import add_row_labels, make_grid
from dcgan.sampling import class_blend, render
from dcgan.seeding import STREAM_VARIATIONS, sample_z, seed_for, z_for_indices
from dcgan.zspace import (
    INTERPOLATORS,
    METHODS,
    dimension_sweep,
    group_mean,
    vector_arithmetic,
    walk_path,
)

# --- checks shared by the API and the command line ----------------------------------------------


def resolve_method(method: str | None, dist: str) -> str:
    """The interpolation method by name; None picks slerp for normal z and lerp for uniform z
    (the great circle belongs to the Gaussian's shell, the straight line to the cube)."""
    if method is None:
        return "lerp" if dist == "uniform" else "slerp"
    if method not in METHODS:
        raise ConfigError(f"method: '{method}' is not one of {', '.join(METHODS)}")
    return method


def check_index(value: object, name: str = "index") -> int:
    """An image index: an int >= 0 (image i of a seed is `dcgan generate`'s image i)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name}: {value!r} is not an image index; use an integer >= 0")
    return value


def check_at_least(name: str, value: object, minimum: int) -> int:
    """A count that must be an int of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}: {value!r} must be an integer of at least {minimum}")
    return value


def check_dims(dims: Sequence[int], nz: int) -> list[int]:
    """z dimensions to sweep: at least one, each in [0, nz)."""
    dims = list(dims)
    if not dims:
        raise ConfigError("dims: give at least one z dimension")
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < nz:
            raise ConfigError(f"dims: {d!r} is not a z dimension; this G has 0..{nz - 1}")
    return dims


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ConfigError(f"{name}: {value} must be a finite number")
    return float(value)


# --- experiments: z -> images ---------------------------------------------------------------------


@dataclass(frozen=True)
class Latents:
    """Where an experiment's z come from and how they are rendered: image i of `seed` has the
    z of `dcgan generate --seed seed`'s image i (of distribution `dist`), and `generator` (in
    eval mode) renders `batch_size` of them at a time. A bare generator stands for
    `Latents(generator)`."""

    generator: nn.Module
    seed: int = 0
    dist: str = "normal"
    batch_size: int = 64

    @property
    def nz(self) -> int:
        return self.generator.cfg.nz

    def z(self, indices: Sequence[int]) -> torch.Tensor:
        """The z (len(indices), nz) of images `indices` of the seed."""
        return z_for_indices(self.seed, indices, self.nz, self.dist)

    def render(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return render_all(self.generator, z, self.batch_size, labels)


def _latents(source: Latents | nn.Module) -> Latents:
    return source if isinstance(source, Latents) else Latents(source)


def render_all(
    generator: nn.Module,
    z: torch.Tensor,
    batch_size: int = 64,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """z (N, nz) (with a conditional G's class weights (N, K)) -> uint8 images (N, C, S, S),
    `batch_size` at a time, G in eval mode."""
    check_at_least("batch_size", batch_size, 1)
    parts = (slice(s, s + batch_size) for s in range(0, len(z), batch_size))
    return torch.cat(
        [render(generator, z[p], None if labels is None else labels[p]) for p in parts]
    )


def interpolate(
    source: Latents | nn.Module,
    pairs: Sequence[tuple[int, int]],
    steps: int = 10,
    method: str | None = None,
    classes: tuple[int, int] | None = None,
) -> torch.Tensor:
    """uint8 images (P, steps, C, S, S): row p goes from image i to image j of the seed for
    the pair (i, j) = pairs[p], at t = 0, 1 / (steps - 1), ..., 1. The first and last images are
    `dcgan generate`'s images i and j exactly (the same z, the same eval-mode render).

    classes (a, b): a conditional G's class goes from a to b along each row too (its class
    embeddings blended linearly); with i = j that is the class interpolation at a fixed z."""
    src = _latents(source)
    method = resolve_method(method, src.dist)
    check_at_least("steps", steps, 2)
    if not pairs:
        raise ConfigError("pairs: give at least one pair of image indices I:J")
    z = src.z([check_index(i) for pair in pairs for i in pair]).view(len(pairs), 2, -1)
    t = torch.arange(steps, dtype=torch.float64) / (steps - 1)
    path = INTERPOLATORS[method](z[:, 0], z[:, 1], t).transpose(0, 1)  # (P, steps, nz)
    weights = None
    if classes is not None:
        num_classes = src.generator.cfg.num_classes
        weights = class_blend(num_classes, *classes, t).repeat(len(pairs), 1)
    images = src.render(path.reshape(len(pairs) * steps, -1), weights)
    return images.view(len(pairs), steps, *images.shape[1:])


@dataclass(frozen=True)
class Arithmetic:
    """The images of a vector-arithmetic experiment, as `arithmetic` returns them."""

    exemplars: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # A, B, C: each (n, C, S, S)
    means: torch.Tensor  # (3, C, S, S): the image of each group's mean z
    result: torch.Tensor  # (C, S, S): the image of mean(A) - mean(B) + mean(C)
    variations: torch.Tensor  # (V, C, S, S): the result's z plus a little seeded noise

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Arithmetic:
        """The same record with `fn` applied to every tensor (e.g. uint8 -> float)."""
        a, b, c = (fn(x) for x in self.exemplars)
        return Arithmetic((a, b, c), fn(self.means), fn(self.result), fn(self.variations))


def arithmetic(
    source: Latents | nn.Module,
    a: Sequence[int],
    b: Sequence[int],
    c: Sequence[int],
    variations: int = 8,
    noise: float = 0.25,
) -> Arithmetic:
    """Vector arithmetic on mean z (the paper's figure 7): the images of groups A, B and C of
    the seed, of each group's mean z, of mean(A) - mean(B) + mean(C), and of `variations`
    copies of that z with noise * (a draw of z's own distribution) added, seeded by
    (seed, k)."""
    src = _latents(source)
    groups = []
    for name, group in (("a", a), ("b", b), ("c", c)):
        if len(group) == 0:
            raise ConfigError(f"{name}: the group is empty; give image indices such as 3,17,22")
        groups.append([check_index(i, name) for i in group])
    check_at_least("variations", variations, 0)
    if _finite("noise", noise) < 0:
        raise ConfigError(f"noise: {noise} must be >= 0")
    exemplars = src.z([i for g in groups for i in g])
    # the mean of a set does not depend on the order it was given in: same indices, same bits
    means = torch.stack([group_mean(src.z(sorted(g))) for g in groups])
    result = vector_arithmetic(*means)
    draws = [
        sample_z(
            1,
            src.nz,
            src.dist,
            torch.Generator().manual_seed(seed_for(src.seed, k, STREAM_VARIATIONS)),
        )
        for k in range(variations)
    ]
    varied = result + noise * torch.cat(draws) if draws else result.new_empty(0, src.nz)
    images = src.render(torch.cat([exemplars, means, result[None], varied]))
    sizes = [len(g) for g in groups] + [3, 1, variations]
    ex_a, ex_b, ex_c, mean_images, result_image, variation_images = images.split(sizes)
    return Arithmetic((ex_a, ex_b, ex_c), mean_images, result_image[0], variation_images)


def walk(
    source: Latents | nn.Module, frames: int = 120, keys: int = 6, method: str | None = None
) -> torch.Tensor:
    """uint8 frames (frames, C, S, S) of a loop through images 0..keys-1 of the seed and back
    to image 0 (see `walk_path`): played in a loop, it never jumps."""
    src = _latents(source)
    method = resolve_method(method, src.dist)
    check_at_least("keys", keys, 2)
    check_at_least("frames", frames, 2)
    if frames < keys:
        raise ConfigError(
            f"frames: {frames} is fewer than the {keys} keys; give at least one per key"
        )
    return src.render(walk_path(src.z(range(keys)), frames, method))


def sweep(
    source: Latents | nn.Module,
    index: int,
    dims: Sequence[int],
    span: tuple[float, float] = (-3.0, 3.0),
    steps: int = 9,
) -> torch.Tensor:
    """uint8 images (len(dims), steps, C, S, S): row r is image `index` of the seed with z's
    dimension dims[r] alone set to each of `steps` values evenly spaced across `span`
    (low, high)."""
    src = _latents(source)
    check_index(index)
    dims = check_dims(dims, src.nz)
    check_at_least("steps", steps, 2)
    low, high = _finite("low", span[0]), _finite("high", span[1])
    z = src.z([index])[0]
    values = low + (high - low) * (torch.arange(steps, dtype=torch.float64) / (steps - 1))
    images = src.render(dimension_sweep(z, dims, values).flatten(0, 1))
    return images.view(len(dims), steps, *images.shape[1:])


# --- layouts: images -> one sheet, or GIF frames ------------------------------------------------


def interpolation_sheet(images: torch.Tensor, pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """A grid (C, H, W) of `interpolate`'s images (P, T, C, S, S): one row per pair, each
    labelled "i to j" on the left."""
    p, t, _, s, _ = images.shape
    grid = make_grid(images.reshape(p * t, *images.shape[2:]), nrow=t)
    return add_row_labels(grid, [f"{i} to {j}" for i, j in pairs], s)


def there_and_back(images: torch.Tensor) -> list[torch.Tensor]:
    """GIF frames from `interpolate`'s images (P, T, C, S, S): steps 0..T-1 and back down to 1
    (2T - 2 frames, so the loop neither stops nor repeats an end); each frame shows every pair
    side by side (a bare image when P = 1)."""
    p, t = images.shape[:2]
    order = list(range(t)) + list(range(t - 2, 0, -1))
    return [make_grid(images[:, k], nrow=p, padding=2 if p > 1 else 0) for k in order]


def arithmetic_sheet(record: Arithmetic, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """The figure (C, H, W): a row per group (its exemplars captioned with their indices, a gap,
    the image of its mean z captioned "mean"), then the variations, a gap and the result
    (captioned "="), under the means: the last column reads mean A, mean B, mean C, A - B + C.
    Rows are labelled A, B, C and A-B+C on the left; `groups` are the indices of A, B and C."""
    rows = [*record.exemplars, record.variations]
    ends = [*record.means, record.result]
    captions = [[str(i) for i in g] for g in groups] + [[""] * len(record.variations)]
    width = max(len(r) for r in rows) + 2
    blank = torch.zeros_like(record.result)
    tiles, labels = [], []
    for row, end, caption, last in zip(rows, ends, captions, ("mean",) * 3 + ("=",), strict=True):
        gap = width - 2 - len(row)  # right-aligned, next to the end column
        tiles += [blank] * gap + list(row) + [blank, end]
        labels += [""] * gap + caption + ["", last]
    grid = make_grid(torch.stack(tiles), nrow=width, labels=labels)
    size = record.result.shape[-1]
    return add_row_labels(grid, ["A", "B", "C", "A-B+C"], size, captioned=True)


def sweep_sheet(images: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """A grid (C, H, W) of `sweep`'s images (D, T, C, S, S): one row per dimension, labelled
    z[d] on the left, its values rising from left to right."""
    d, t, _, s, _ = images.shape
    grid = make_grid(images.reshape(d * t, *images.shape[2:]), nrow=t)
    return add_row_labels(grid, [f"z[{k}]" for k in dims], s)
