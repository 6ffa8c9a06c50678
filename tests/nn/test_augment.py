"""DiffAugment's policies as tensor functions: shapes, range, gradients, seeding, p."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcgan.config import ModelConfig
from dcgan.nn.augment import (
    POLICIES,
    adjust_color,
    augment,
    cutout,
    draw_params,
    max_shift,
    translate,
)
from dcgan.nn.models import Generator

SETS = [(p,) for p in POLICIES] + [POLICIES]


def images(n: int = 8, channels: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return (
        torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    )


@pytest.mark.parametrize("policies", SETS)
@pytest.mark.parametrize(("channels", "size"), [(1, 16), (3, 32)])
def test_each_policy_keeps_shape_and_range(policies, channels: int, size: int) -> None:
    x = images(8, channels, size)
    y = augment(x, policies, draw_params(8, size, 1.0, torch.Generator().manual_seed(1)))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= -1 and y.max() <= 1
    assert not torch.equal(y, x)  # p = 1 changed something


@pytest.mark.parametrize("policies", SETS)
def test_gradients_reach_the_generator(policies) -> None:
    g = Generator(ModelConfig(image_size=16, channels=3, nz=8, ngf=8))
    fake = g(torch.randn(4, 8))
    y = augment(fake, policies, draw_params(4, 16, 1.0, torch.Generator().manual_seed(2)))
    y.square().sum().backward()
    grads = [p.grad for p in g.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(gr.abs().sum() for gr in grads) > 0


def test_p_zero_is_the_identity() -> None:
    x = images()
    y = augment(x, POLICIES, draw_params(8, 16, 0.0, torch.Generator().manual_seed(3)))
    assert torch.equal(y, x)


@pytest.mark.parametrize("p", [0.5, 1.0])
def test_the_chosen_images_get_the_policy_and_the_others_stay(p: float) -> None:
    x = images(16)
    params = draw_params(16, 16, p, torch.Generator().manual_seed(9))
    chosen = params.apply[POLICIES.index("translation")]
    y = augment(x, ("translation",), params)
    assert torch.equal(y[chosen], translate(x, params.shift)[chosen])
    assert torch.equal(y[~chosen], x[~chosen]) and chosen.any()


def test_p_selects_about_that_fraction_of_images() -> None:
    params = draw_params(4000, 16, 0.3, torch.Generator().manual_seed(4))
    assert params.apply.float().mean().item() == pytest.approx(0.3, abs=0.02)


def test_the_same_seed_gives_the_same_batch_and_another_seed_another() -> None:
    x = images()

    def run(seed: int) -> torch.Tensor:
        return augment(x, POLICIES, draw_params(8, 16, 1.0, torch.Generator().manual_seed(seed)))

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_a_slice_of_the_parameters_augments_a_slice_as_the_whole_batch_does() -> None:
    x = images(8)
    params = draw_params(8, 16, 0.5, torch.Generator().manual_seed(7))
    whole = augment(x, POLICIES, params)
    halves = [augment(x[s], POLICIES, params.part(s)) for s in (slice(0, 4), slice(4, 8))]
    assert torch.equal(torch.cat(halves), whole)


def test_translation_moves_content_and_reflects_at_the_border() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    down = translate(x, torch.tensor([[1, 0]]))[0, 0]
    assert torch.equal(down[1:], x[0, 0, :3]) and torch.equal(down[0], x[0, 0, 1])  # reflection
    right = translate(x, torch.tensor([[0, -1]]))[0, 0]  # left by one
    assert torch.equal(right[:, :3], x[0, 0, :, 1:])
    assert max_shift(32) == 4 and max_shift(16) == 2  # 1/8 of the side


def test_translation_is_each_images_window_of_its_reflected_copy() -> None:
    x = images(8, 3, 16)
    shift = draw_params(8, 16, 1.0, torch.Generator().manual_seed(8)).shift
    r = max_shift(16)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
    expected = [
        p[:, r - dy : r - dy + 16, r - dx : r - dx + 16]
        for p, (dy, dx) in zip(padded, shift.tolist(), strict=True)
    ]
    assert torch.equal(translate(x, shift), torch.from_numpy(np.stack(expected)))
    assert len(set(map(tuple, shift.tolist()))) > 4  # the images moved by different amounts


def test_cutout_blanks_a_half_side_square_clipped_at_the_border() -> None:
    x = torch.ones(2, 1, 8, 8)
    out = cutout(x, torch.tensor([[4, 4], [0, 7]]))
    assert (out[0] == 0).sum() == 16 and torch.equal(out[0, 0, 2:6, 2:6], torch.zeros(4, 4))
    # around (0, 7) the square spans rows -2..1 and columns 5..8: two borders cut it to 2 x 3
    assert torch.equal((out[1, 0] == 0).nonzero()[:, 0].unique(), torch.tensor([0, 1]))
    assert torch.equal((out[1, 0] == 0).nonzero()[:, 1].unique(), torch.tensor([5, 6, 7]))
    quarter = cutout(x, torch.tensor([[4, 4], [0, 7]]), ratio=0.25)  # a 2 x 2 square
    assert torch.equal(
        (quarter[0, 0] == 0).nonzero(), torch.tensor([[3, 3], [3, 4], [4, 3], [4, 4]])
    )


def test_color_changes_brightness_saturation_contrast_and_clamps_straight_through() -> None:
    x = images(2, 3, 8).requires_grad_(True)
    same = adjust_color(x, torch.zeros(2), torch.ones(2), torch.ones(2))
    assert torch.allclose(same, x)
    grey = adjust_color(x, torch.zeros(2), torch.zeros(2), torch.ones(2))
    assert torch.allclose(grey, x.mean(1, keepdim=True).expand_as(x))  # saturation 0: grey
    bright = adjust_color(x, torch.full((2,), 0.5), torch.ones(2), torch.ones(2))
    assert bright.max() == 1 and torch.allclose(bright, (x + 0.5).clamp(-1, 1))
    bright.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # clamped pixels still pass the gradient
