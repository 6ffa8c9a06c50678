"""GAN objectives as pure functions of D's logits, picked by name from `LOSSES`.

Each `d` function returns (loss on real, loss on fake), both means over the batch; each `g`
function returns G's loss. Losses are computed in fp32 whatever precision produced the logits.
`real_target` is the one-sided label-smoothing target for real images (1.0 = no smoothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


class GANLoss(NamedTuple):
    d: Callable[[Tensor, Tensor, float], tuple[Tensor, Tensor]]
    g: Callable[[Tensor], Tensor]


def _bce_d(real: Tensor, fake: Tensor, real_target: float = 1.0) -> tuple[Tensor, Tensor]:
    """-log D(x) (against the smoothed target) and -log(1 - D(G(z)))."""
    real, fake = real.float(), fake.float()
    target = torch.full_like(real, real_target)
    return F.binary_cross_entropy_with_logits(real, target), F.softplus(fake).mean()


def non_saturating_g(fake: Tensor) -> Tensor:
    """-log D(G(z)): the heuristic of Goodfellow et al. that keeps G's gradients alive early."""
    return F.softplus(-fake.float()).mean()


def minimax_g(fake: Tensor) -> Tensor:
    """log(1 - D(G(z))): the original objective, which G minimises."""
    return -F.softplus(fake.float()).mean()


def hinge_d(real: Tensor, fake: Tensor, real_target: float = 1.0) -> tuple[Tensor, Tensor]:
    """max(0, t - D(x)) and max(0, 1 + D(G(z))); smoothing lowers the real margin t."""
    return F.relu(real_target - real.float()).mean(), F.relu(1.0 + fake.float()).mean()


def hinge_g(fake: Tensor) -> Tensor:
    return -fake.float().mean()


def least_squares_d(real: Tensor, fake: Tensor, real_target: float = 1.0) -> tuple[Tensor, Tensor]:
    """LSGAN (Mao et al. 2017) with targets a=0, b=real_target: 1/2 (D(x)-b)^2, 1/2 D(G(z))^2."""
    return 0.5 * (real.float() - real_target).pow(2).mean(), 0.5 * fake.float().pow(2).mean()


def least_squares_g(fake: Tensor) -> Tensor:
    return 0.5 * (fake.float() - 1.0).pow(2).mean()


LOSSES: dict[str, GANLoss] = {
    "non-saturating": GANLoss(_bce_d, non_saturating_g),
    "minimax": GANLoss(_bce_d, minimax_g),
    "hinge": GANLoss(hinge_d, hinge_g),
    "least-squares": GANLoss(least_squares_d, least_squares_g),
}


def feature_matching(feats: list[Tensor], fake_rows: Tensor) -> Tensor:
    """Salimans et al. 2016: for each of D's block outputs, the squared distance between its
    mean over the generated images and its mean over the real ones, averaged over channels and
    positions; summed over the blocks.

    feats: block outputs (N, C, H, W), each holding reals and fakes as rows in any order;
    fake_rows: bool (N,), True where a row is generated. The reals are constants: only the
    fake rows get a gradient.
    """
    total = feats[0].new_zeros((), dtype=torch.float32)
    for f in feats:
        total = total + _MeanGap.apply(f, fake_rows)
    return total


class _MeanGap(torch.autograd.Function):
    """One block's term of `feature_matching`, with its gradient written out. Left to autograd
    (a stride-0 broadcast, through the slicing that parts reals from fakes) the gradient sent
    every later backward op on channels-last features down a slow path, and the batch mean of
    such features was a slow reduction: the term took about 30% of the colour recipe's speed on
    the CPU; as here, under a tenth (docs/speed.md)."""

    @staticmethod
    def forward(ctx, f: Tensor, fake_rows: Tensor) -> Tensor:
        rows, channels_last = _as_rows(f)
        # (C*H*W,) in f's memory order, accumulated in fp32 without an fp32 copy of f
        fake_mean = rows[fake_rows].mean(0, dtype=torch.float32)
        gap = fake_mean - rows[~fake_rows].mean(0, dtype=torch.float32)
        ctx.save_for_backward(gap, fake_rows)
        ctx.shape, ctx.dtype, ctx.channels_last = f.shape, f.dtype, channels_last
        return gap.square().mean()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        gap, fake_rows = ctx.saved_tensors
        n, fakes = len(fake_rows), int(fake_rows.sum())
        per_fake = (gap * (grad * 2.0 / (gap.numel() * fakes))).to(ctx.dtype)
        out = per_fake.new_zeros((n, gap.numel()))
        out[fake_rows] = per_fake
        if ctx.channels_last:
            b, c, h, w = ctx.shape
            return out.view(b, h, w, c).permute(0, 3, 1, 2), None
        return out.view(ctx.shape), None


def _as_rows(f: Tensor) -> tuple[Tensor, bool]:
    """f (N, ...) -> (N, numel / N), a view in f's memory order (channels-last included, so
    that no copy reorders it), and whether that order was channels-last."""
    channels_last = (
        f.dim() == 4
        and not f.is_contiguous()
        and f.is_contiguous(memory_format=torch.channels_last)
    )
    ordered = f.permute(0, 2, 3, 1) if channels_last else f
    return ordered.reshape(len(f), -1), channels_last


def r1_penalty(real_logits: Tensor, real_inputs: Tensor) -> Tensor:
    """Mescheder et al. 2018: the mean over the batch of |d D(x) / d x|^2 at the real images
    D saw, `real_inputs` (B, C, S, S) made with requires_grad; `real_logits` (B,) or (B, 1).
    The graph is kept, so the penalty trains D."""
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real_inputs, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()
