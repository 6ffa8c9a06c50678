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

METHODS = ("slerp", "lerp")
PARALLEL_EPS = 1e-6  # sin(angle) below which slerp falls back to lerp

# --- z-space maths: pure functions of tensors ---------------------------------------------------


def _prepare(
    a: torch.Tensor, b: torch.Tensor, t: float | Sequence[float] | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """a, b in float64, and t in float64 shaped to broadcast against them: (T, 1, ..., 1)."""
    tt = torch.as_tensor(t, dtype=torch.float64)
    if tt.dim() > 1:
        raise ValueError(f"t must be a number or a 1-D sequence, got shape {tuple(tt.shape)}")
    dims = max(a.dim(), b.dim())
    return a.double(), b.double(), tt.reshape(tuple(tt.shape) + (1,) * dims)


def _finish(out, a, b, t, dtype: torch.dtype) -> torch.Tensor:
    """t = 0 gives a and t = 1 gives b bitwise, whatever the rounding inside."""
    return torch.where(t == 1, b, torch.where(t == 0, a, out)).to(dtype)


def lerp(
    a: torch.Tensor, b: torch.Tensor, t: float | Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Linear interpolation (1 - t) a + t b.

    a, b: (..., nz), broadcastable. t: a number (the result has a's shape) or a 1-D sequence
    of T values (the result is (T, ..., nz)). Computed in float64 and returned in a's dtype;
    t = 0 and t = 1 give a and b bitwise.
    """
    a64, b64, tt = _prepare(a, b, t)
    return _finish((1 - tt) * a64 + tt * b64, a64, b64, tt, a.dtype)


def _cos_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos of the angle between a and b along the last dim (NaN where either is zero)."""
    return (
        (a * b).sum(-1, keepdim=True)
        / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True))
    ).clamp(-1, 1)


def angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The angle in radians between a and b (..., nz), shape (...); 0 where either is zero."""
    return torch.nan_to_num(torch.arccos(_cos_angle(a.double(), b.double())).squeeze(-1))


def slerp(
    a: torch.Tensor,
    b: torch.Tensor,
    t: float | Sequence[float] | torch.Tensor,
    eps: float = PARALLEL_EPS,
) -> torch.Tensor:
    """Spherical interpolation: along the great circle from a to b, at angle t * angle(a, b).

    sin((1 - t) w) / sin(w) * a + sin(t w) / sin(w) * b with w the angle between a and b, so
    endpoints of equal norm keep that norm for every t (lerp's midpoint is shorter: for two
    random normal z of dimension nz, about 1 / sqrt(2) of it, a z that G rarely saw). Where
    sin(w) < eps (a and b parallel or opposite, or one of them zero) the great circle is not
    defined and it falls back to lerp. Shapes, dtype and exact endpoints as `lerp`.
    """
    a64, b64, tt = _prepare(a, b, t)
    omega = torch.arccos(_cos_angle(a64, b64))
    sin_omega = torch.sin(omega)
    parallel = ~(sin_omega > eps)  # also catches the NaN of a zero vector
    safe = torch.where(parallel, torch.ones_like(sin_omega), sin_omega)
    out = (torch.sin((1 - tt) * omega) * a64 + torch.sin(tt * omega) * b64) / safe
    out = torch.where(parallel, (1 - tt) * a64 + tt * b64, out)
    return _finish(out, a64, b64, tt, a.dtype)


INTERPOLATORS: dict[str, Callable[..., torch.Tensor]] = {"slerp": slerp, "lerp": lerp}


def group_mean(z: torch.Tensor) -> torch.Tensor:
    """The mean (nz,) of a group of latent vectors (n, nz), summed in float64."""
    if z.dim() != 2 or z.shape[0] == 0:
        raise ValueError(f"group_mean expects a non-empty (n, nz) tensor, got {tuple(z.shape)}")
    return z.double().mean(0).to(z.dtype)


def vector_arithmetic(
    mean_a: torch.Tensor, mean_b: torch.Tensor, mean_c: torch.Tensor
) -> torch.Tensor:
    """mean_a - mean_b + mean_c, computed as mean_a + (mean_c - mean_b): B = C gives mean_a
    bitwise (smiling woman - neutral woman + neutral man = smiling man, the paper's figure 7)."""
    return mean_a + (mean_c - mean_b)


def segment_frames(lengths: Sequence[float], frames: int) -> list[int]:
    """Frames per segment of a path, in proportion to each segment's length, at least one each
    and `frames` in all (largest remainders first). Requires frames >= len(lengths)."""
    k = len(lengths)
    if k == 0 or frames < k:
        raise ValueError(f"need at least one frame per segment: {frames} frames, {k} segments")
    total = sum(lengths)
    ideal = [frames * x / total if total > 0 else frames / k for x in lengths]
    counts = [max(1, math.floor(x)) for x in ideal]
    while sum(counts) < frames:
        counts[max(range(k), key=lambda s: ideal[s] - counts[s])] += 1
    while sum(counts) > frames:
        counts[max((s for s in range(k) if counts[s] > 1), key=lambda s: counts[s] - ideal[s])] -= 1
    return counts


def walk_path(keys: torch.Tensor, frames: int, method: str = "slerp") -> torch.Tensor:
    """A closed path (frames, nz) through the key points (K, nz) in order and back to the first.

    Segment s runs from key s to key s + 1 (the last one to key 0) along the great circle
    (slerp) or the straight line (lerp). Each segment gets frames in proportion to its angle
    (slerp) or length (lerp), so consecutive frames are about equally far apart, and starts
    with its key exactly: key k is a frame, frame 0 is key 0, and the frame after the last
    would be frame 0 again, so the path loops without a jump. Requires frames >= K >= 2.
    """
    if keys.dim() != 2 or keys.shape[0] < 2:
        raise ValueError(f"walk_path needs at least 2 keys (K, nz), got {tuple(keys.shape)}")
    following = keys.roll(-1, dims=0)
    if method == "slerp":
        lengths = angle(keys, following).tolist()
    else:
        lengths = (following.double() - keys.double()).norm(dim=-1).tolist()
    counts = segment_frames(lengths, frames)
    interpolate = INTERPOLATORS[method]
    parts = [
        interpolate(keys[s], following[s], torch.arange(n, dtype=torch.float64) / n)
        for s, n in enumerate(counts)
    ]
    return torch.cat(parts)


def dimension_sweep(z: torch.Tensor, dims: Sequence[int], values: torch.Tensor) -> torch.Tensor:
    """(len(dims), T, nz): row r is z (nz,) with dimension dims[r] set to each of the T values."""
    out = z.repeat(len(dims), len(values), 1)
    for r, d in enumerate(dims):
        out[r, :, d] = values.to(z.dtype)
    return out


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
