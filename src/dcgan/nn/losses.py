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


def feature_matching(real_feats: list[Tensor], fake_feats: list[Tensor]) -> Tensor:
    """Salimans et al. 2016: squared distance between mean D features of real and fake batches.

    Each list holds (B, C, H, W) block outputs; real features are treated as constants.
    """
    total = fake_feats[0].new_zeros((), dtype=torch.float32)
    for r, f in zip(real_feats, fake_feats, strict=True):
        total = total + (r.detach().float().mean(0) - f.float().mean(0)).pow(2).mean()
    return total


def r1_penalty(real_logits: Tensor, real_inputs: Tensor) -> Tensor:
    """Mescheder et al. 2018: the mean over the batch of |d D(x) / d x|^2 at the real images
    D saw, `real_inputs` (B, C, S, S) made with requires_grad; `real_logits` (B,) or (B, 1).
    The graph is kept, so the penalty trains D."""
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real_inputs, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()
