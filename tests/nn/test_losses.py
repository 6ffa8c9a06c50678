import math

import pytest
import torch

from dcgan.nn.losses import LOSSES, feature_matching

LOG2 = math.log(2.0)


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values)


def test_names() -> None:
    assert set(LOSSES) == {"non-saturating", "minimax", "hinge", "least-squares"}


@pytest.mark.parametrize("name", ["non-saturating", "minimax"])
def test_bce_discriminator_on_known_logits(name: str) -> None:
    real, fake = LOSSES[name].d(_t(0.0, 0.0), _t(0.0, 0.0), 1.0)
    assert real.item() == pytest.approx(LOG2) and fake.item() == pytest.approx(LOG2)
    # confident and right: D(x) = sigmoid(10), D(G(z)) = sigmoid(-10)
    real, fake = LOSSES[name].d(_t(10.0), _t(-10.0), 1.0)
    assert real.item() == pytest.approx(math.log1p(math.exp(-10)))
    assert fake.item() == pytest.approx(math.log1p(math.exp(-10)))


def test_label_smoothing_changes_the_real_target_only() -> None:
    logit = 2.0
    real, fake = LOSSES["non-saturating"].d(_t(logit), _t(-1.0), 0.9)
    p = 1 / (1 + math.exp(-logit))
    assert real.item() == pytest.approx(-(0.9 * math.log(p) + 0.1 * math.log(1 - p)), rel=1e-5)
    assert fake.item() == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-5)


def test_generator_losses_on_known_logits() -> None:
    x = _t(0.0, 2.0)
    assert LOSSES["non-saturating"].g(x).item() == pytest.approx(
        (LOG2 + math.log1p(math.exp(-2))) / 2
    )
    # minimax: G minimises log(1 - D(G(z))) = -softplus(logit)
    assert LOSSES["minimax"].g(x).item() == pytest.approx(-(LOG2 + math.log1p(math.exp(2))) / 2)
    assert LOSSES["hinge"].g(x).item() == pytest.approx(-1.0)
    assert LOSSES["least-squares"].g(x).item() == pytest.approx((0.5 * 1 + 0.5 * 1) / 2)


def test_hinge_and_least_squares_discriminator() -> None:
    real, fake = LOSSES["hinge"].d(_t(0.5, 2.0), _t(-2.0, 0.0), 1.0)
    assert real.item() == pytest.approx(0.25) and fake.item() == pytest.approx(0.5)
    real, fake = LOSSES["least-squares"].d(_t(1.0, 3.0), _t(0.0, 2.0), 1.0)
    assert real.item() == pytest.approx(1.0) and fake.item() == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_are_fp32_and_differentiable(name: str) -> None:
    real = torch.randn(4, dtype=torch.bfloat16, requires_grad=True)
    fake = torch.randn(4, dtype=torch.bfloat16, requires_grad=True)
    l_real, l_fake = LOSSES[name].d(real, fake, 1.0)
    l_g = LOSSES[name].g(fake)
    assert {l_real.dtype, l_fake.dtype, l_g.dtype} == {torch.float32}
    (l_real + l_fake + l_g).backward()
    assert real.grad is not None and fake.grad is not None


def test_minimax_saturates_where_non_saturating_does_not() -> None:
    # the reason the heuristic exists: when D rejects fakes confidently, minimax's gradient vanishes
    fake = torch.tensor([-8.0], requires_grad=True)
    LOSSES["minimax"].g(fake).backward()
    g_minimax = fake.grad.abs().item()
    fake.grad = None
    LOSSES["non-saturating"].g(fake).backward()
    assert fake.grad.abs().item() > 100 * g_minimax


def test_feature_matching() -> None:
    fakes = torch.tensor([False, True, False, True])  # rows 1 and 3 are generated
    same = [torch.ones(4, 2, 3, 3), torch.zeros(4, 5, 1, 1)]
    apart = [torch.tensor([0.0, 1, 0, 1])[:, None, None, None].expand(4, 2, 3, 3), same[1]]
    assert feature_matching(same, fakes).item() == 0.0
    assert feature_matching(apart, fakes).item() == pytest.approx(1.0)


def by_autograd(feats: list[torch.Tensor], fakes: torch.Tensor) -> torch.Tensor:
    """The same term left to autograd, reals parted from fakes and treated as constants."""
    return sum(
        (f[~fakes].detach().float().mean(0) - f[fakes].float().mean(0)).square().mean()
        for f in feats
    )


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_feature_matching_gradient_is_autograds_in_the_features_layout(layout, dtype) -> None:
    torch.manual_seed(0)
    fakes = torch.tensor([0, 0, 1, 1, 0, 1, 0, 1], dtype=torch.bool)
    feats = [
        torch.randn(8, c, s, s).to(dtype).to(memory_format=layout).requires_grad_()
        for c, s in ((3, 5), (4, 2), (6, 1))
    ]
    ours, theirs = feature_matching(feats, fakes), by_autograd(feats, fakes)
    torch.testing.assert_close(ours, theirs.float(), rtol=1e-5, atol=1e-6)
    got = torch.autograd.grad(3.0 * ours, feats)
    want = torch.autograd.grad(3.0 * theirs, feats)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-2 if dtype == torch.bfloat16 else 1e-5, atol=1e-6)
        assert g.dtype == dtype and g[~fakes].abs().sum() == 0  # the reals are constants
        assert g.is_contiguous(memory_format=layout)  # dense, in the features' own layout
