"""Small image transforms on uint8 batches (no torchvision here)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize(images: torch.Tensor, size: int, chunk: int = 1024) -> torch.Tensor:
    """Antialiased bilinear resize of square uint8 images (N, C, H, W) -> (N, C, size, size).

    Works in chunks so a large dataset does not need a float copy of itself in memory.
    """
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = []
    for part in images.split(chunk):
        x = F.interpolate(
            part.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def fit_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop uint8 (N, C, H, W) to its largest square, then resize to (N, C, size, size)."""
    h, w = images.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize(images[..., top : top + side, left : left + side], size)


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, channels, H, W): grey is replicated, colour becomes luminance
    (ITU-R 601, as PIL's "L" mode), alpha (grey+alpha, RGBA) is dropped; any other count repeats
    or truncates channels."""
    if images.shape[1] in (2, 4) and channels != images.shape[1]:
        images = images[:, : images.shape[1] - 1]
    c = images.shape[1]
    if c == channels:
        return images
    if c == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)
    reps = -(-channels // c)
    return images.repeat(1, reps, 1, 1)[:, :channels]
