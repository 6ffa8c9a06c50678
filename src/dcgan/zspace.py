"""z-space maths for the latent-space experiments: pure functions of tensors (z (..., nz)),
no generator involved. Interpolation (lerp, and slerp as in White 2016), mean z of a group,
vector arithmetic, a looping walk's path and one-dimension sweeps; `dcgan.latent` renders
them."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

METHODS = ("slerp", "lerp")
PARALLEL_EPS = 1e-6  # sin(angle) below which slerp falls back to lerp


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
