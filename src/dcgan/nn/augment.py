"""Differentiable augmentation of the images D sees (DiffAugment, Zhao et al. 2020), per image
with probability p (as adaptive discriminator augmentation, Karras et al. 2020, steers it).

Three policies, each a small tensor function of the images and per-image parameters, so the
gradient flows through them to G:

- translation: shift by up to 1/8 of the side, borders filled by reflection;
- cutout: a square of half the side (or the fraction given), centred anywhere (clipped at the
  border), set to 0 (grey);
- color: brightness +-0.5, saturation x[0, 2) (colour images), contrast x[0.5, 1.5).

Images stay in [-1, 1]: color clamps its result, with the gradient passed straight through as if
unclamped (a saturated pixel still tells G which way to move). The parameters are drawn for a
whole global batch from a seeded generator (`draw_params`), so every process, and a resumed run,
augments exactly as one unbroken process would.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from dcgan.config import AUGMENT_POLICIES, CUTOUT_RATIO

POLICIES = AUGMENT_POLICIES
TRANSLATION_RATIO = 0.125  # DiffAugment's: shifts up to 1/8 of the side


@dataclass
class AugmentParams:
    """Per-image parameters of every policy, for n images (CPU tensors)."""

    apply: torch.Tensor  # (len(POLICIES), n) bool: which images get each policy
    shift: torch.Tensor  # (n, 2) int64 rows, columns in [-max_shift, max_shift]
    centre: torch.Tensor  # (n, 2) int64 the cutout square's centre, in [0, size)
    brightness: torch.Tensor  # (n,) added, in [-0.5, 0.5)
    saturation: torch.Tensor  # (n,) factor in [0, 2)
    contrast: torch.Tensor  # (n,) factor in [0.5, 1.5)

    def part(self, part: slice) -> AugmentParams:
        """The parameters of images `part` (this process's slice of a global batch)."""
        per_image = {f.name: getattr(self, f.name)[part] for f in fields(self) if f.name != "apply"}
        return AugmentParams(apply=self.apply[:, part], **per_image)


def max_shift(size: int) -> int:
    return int(size * TRANSLATION_RATIO + 0.5)


def draw_params(n: int, size: int, p: float, generator: torch.Generator) -> AugmentParams:
    """Parameters for n images of side `size`; each policy applies to an image with
    probability p. The draws are the same whatever the policies, so turning one on or off does
    not change the others' parameters."""
    r = max_shift(size)
    return AugmentParams(
        apply=torch.rand(len(POLICIES), n, generator=generator) < p,
        shift=torch.randint(-r, r + 1, (n, 2), generator=generator),
        centre=torch.randint(0, size, (n, 2), generator=generator),
        brightness=torch.rand(n, generator=generator) - 0.5,
        saturation=torch.rand(n, generator=generator) * 2,
        contrast=torch.rand(n, generator=generator) + 0.5,
    )


def augment(
    x: torch.Tensor,
    policies: tuple[str, ...],
    params: AugmentParams,
    cutout_ratio: float = CUTOUT_RATIO,
) -> torch.Tensor:
    """Images x (B, C, S, S) in [-1, 1] with each of `policies` applied to the images its
    `params.apply` row selects (cutout's square `cutout_ratio` of the side); differentiable in
    x. Returns (B, C, S, S) in [-1, 1]."""
    ops = {
        "translation": lambda x: translate(x, params.shift),
        "cutout": lambda x: cutout(x, params.centre, cutout_ratio),
        "color": lambda x: adjust_color(x, params.brightness, params.saturation, params.contrast),
    }
    for row, name in enumerate(POLICIES):
        chosen = params.apply[row]  # on the CPU: testing it does not wait for the device
        if name not in policies or not chosen.any():
            continue
        changed = ops[name](x)
        # At p = 1 every image is chosen, and selecting would only copy the batch again.
        x = (
            changed
            if chosen.all()
            else torch.where(chosen.to(x.device)[:, None, None, None], changed, x)
        )
    return x


def translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) moved down/right by shift (B, 2) pixels, borders filled by reflection.

    One row gather from the padded batch laid out as (pixels, C), and one scatter back in the
    gradient, whatever the batch: on the CPU two thirds of the time of indexing the (B, C, H, W)
    tensor at every pixel (not timed on a GPU).
    """
    b, c, h, w = x.shape
    r = max(max_shift(h), max_shift(w), 1)
    padded = F.pad(x, (r, r, r, r), mode="reflect").permute(0, 2, 3, 1)  # (B, H+2r, W+2r, C)
    side_h, side_w = h + 2 * r, w + 2 * r
    dy, dx = shift.to(x.device).unbind(1)  # (B,) each, one copy to the device
    rows = torch.arange(h, device=x.device) + r - dy[:, None]  # (B, H)
    cols = torch.arange(w, device=x.device) + r - dx[:, None]  # (B, W)
    first = torch.arange(b, device=x.device)[:, None, None] * (side_h * side_w)
    pixels = (first + rows[:, :, None] * side_w + cols[:, None, :]).reshape(-1)  # (B*H*W,)
    out = padded.reshape(-1, c).index_select(0, pixels).view(b, h, w, c)
    return out.permute(0, 3, 1, 2)  # (B, C, H, W), channels-last in memory


def cutout(x: torch.Tensor, centre: torch.Tensor, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """x (B, C, H, W) with a square of `ratio` of the side around centre (B, 2) set to 0."""
    _, _, h, w = x.shape
    rows, cols = (
        _span(torch.arange(n, device=x.device), centre.to(x.device)[:, k, None], n, ratio)
        for k, n in ((0, h), (1, w))
    )  # (B, H), (B, W)
    inside = rows[:, None, :, None] & cols[:, None, None, :]  # (B, 1, H, W)
    return x.masked_fill(inside, 0.0)


def _span(positions: torch.Tensor, centre: torch.Tensor, side: int, ratio: float) -> torch.Tensor:
    """Which `positions` a cutout of `ratio` * side around `centre` (B, 1) covers."""
    length = max(int(side * ratio + 0.5), 1)
    first = centre - length // 2
    return (positions >= first) & (positions < first + length)


def adjust_color(
    x: torch.Tensor, brightness: torch.Tensor, saturation: torch.Tensor, contrast: torch.Tensor
) -> torch.Tensor:
    """Brightness (added), saturation and contrast (factors) per image (B,), on x (B, C, H, W);
    clamped to [-1, 1] with a straight-through gradient."""
    view = (-1, 1, 1, 1)
    x = x + brightness.to(x).view(view)
    grey = x.mean(1, keepdim=True)
    x = (x - grey) * saturation.to(x).view(view) + grey
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * contrast.to(x).view(view) + mean
    return x + (x.clamp(-1.0, 1.0) - x).detach()
