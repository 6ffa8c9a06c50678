"""--joint-d-batch: D sees each update's reals and fakes as one batch, in D's update and G's."""

from __future__ import annotations

import pytest
import torch

from conftest import with_settings
from dcgan.config import Config
from dcgan.nn.losses import LOSSES
from dcgan.nn.models import Discriminator
from dcgan.training.batches import RealBatches, prepare_images
from dcgan.training.precision import Precision
from dcgan.training.state import build_state
from dcgan.training.step import UNCONDITIONAL, Classes, d_pair, joint_layout, train_step

CPU = torch.device("cpu")


def batches_d_saw(cfg: Config, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Run one step of `cfg` and return the batch size of every call of D."""
    seen: list[int] = []
    forward = Discriminator.forward_features

    def spy(d, x, labels=None):
        seen.append(len(x))
        if labels is not None:
            assert len(labels) == len(x)
        return forward(d, x, labels)

    monkeypatch.setattr(Discriminator, "forward_features", spy)  # before the runners bind it
    state = build_state(cfg, CPU)
    reals = RealBatches(prepare_images(cfg, None), cfg, CPU)
    train_step(state, reals, LOSSES["hinge"], Precision("fp32", "cpu"), cfg)
    return seen


@pytest.mark.parametrize("conditional", [False, True])
def test_each_update_runs_d_once_on_reals_and_fakes_together(
    tiny_config: Config, monkeypatch: pytest.MonkeyPatch, conditional: bool
) -> None:
    batch = tiny_config.train.batch_size
    cfg = with_settings(tiny_config, joint_d_batch=True)
    if conditional:
        cfg = with_settings(cfg, conditional=True, num_classes=10)  # the tiny set's
    assert batches_d_saw(cfg, monkeypatch) == [2 * batch, 2 * batch]  # D's update, then G's


def test_off_d_sees_reals_and_fakes_apart(
    tiny_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = tiny_config.train.batch_size
    assert batches_d_saw(tiny_config, monkeypatch) == [batch, batch, batch]


def tiny_d(tiny_config: Config, mbstd_group: int) -> Discriminator:
    torch.manual_seed(0)
    return Discriminator(with_settings(tiny_config, mbstd_group=mbstd_group).model)


def test_joint_logits_are_ds_on_the_joined_batch(tiny_config: Config) -> None:
    d = tiny_d(tiny_config, mbstd_group=2)
    real, fake = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16) + 1.0
    pair = d_pair(d.forward_features, real, fake, UNCONDITIONAL, True, mbstd_group=2)
    # runs of two: real 0, 1, fake 0, 1, real 2, 3, fake 2, 3
    order = torch.cat([real[:2], fake[:2], real[2:], fake[2:]])
    logits, feats = d.forward_features(order)
    assert torch.equal(pair.real_logits, logits[[0, 1, 4, 5]])
    assert torch.equal(pair.fake_logits, logits[[2, 3, 6, 7]])
    assert pair.fake_rows.tolist() == [False, False, True, True] * 2
    assert all(torch.equal(a, b) for a, b in zip(pair.feats, feats, strict=True))
    # apart, BatchNorm normalises the shifted fakes by their own statistics: other logits
    apart = d_pair(d.forward_features, real, fake, UNCONDITIONAL, False)
    assert not torch.allclose(pair.real_logits, apart.real_logits)
    assert not torch.allclose(pair.fake_logits, apart.fake_logits)
    assert apart.fake_rows.tolist() == [False] * 4 + [True] * 4  # reals first, then fakes


def test_without_features_d_pair_returns_no_features(tiny_config: Config) -> None:
    d = tiny_d(tiny_config, mbstd_group=2)
    real, fake = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16)
    for joint in (True, False):
        assert d_pair(d.forward_features, real, fake, UNCONDITIONAL, joint, 2, False).feats == []


@pytest.mark.parametrize(("batch", "group"), [(4, 2), (8, 4), (12, 4), (32, 4), (6, 3), (3, 3)])
def test_joint_minibatch_std_groups_are_the_groups_each_half_forms_alone(
    tiny_config: Config, batch: int, group: int
) -> None:
    """With BatchNorm on its running statistics only minibatch std spans the batch: if every
    image sits in the group it has alone, the joint logits are the logits apart."""
    d = tiny_d(tiny_config, mbstd_group=group).eval()
    real, fake = torch.randn(batch, 1, 16, 16), torch.randn(batch, 1, 16, 16) * 3 + 1.0
    joint = d_pair(d.forward_features, real, fake, UNCONDITIONAL, True, group)
    apart = d_pair(d.forward_features, real, fake, UNCONDITIONAL, False, group)
    torch.testing.assert_close(joint.real_logits, apart.real_logits)
    torch.testing.assert_close(joint.fake_logits, apart.fake_logits)
    for a, b in zip(joint.feats, apart.feats, strict=True):
        for fakes in (False, True):  # each half's rows, in batch order
            torch.testing.assert_close(a[joint.fake_rows == fakes], b[apart.fake_rows == fakes])


def test_joint_layout_stacks_the_halves_when_no_layout_keeps_the_groups_apart() -> None:
    # 6 images alone form groups of gcd(6, 4) = 2; 12 form groups of 4, which must mix
    assert joint_layout(6, 4).run == 6
    assert joint_layout(32, 4).run == 8 and joint_layout(32, 0).run == 32
    layout = joint_layout(8, 4)
    real, fake = torch.arange(8.0), -torch.arange(8.0)
    both = layout.join(real, fake)
    assert both.tolist() == [0, 1, -0, -1, 2, 3, -2, -3, 4, 5, -4, -5, 6, 7, -6, -7]
    assert [t.tolist() for t in layout.split(both)] == [real.tolist(), fake.tolist()]


def test_the_joint_batch_keeps_a_channels_last_layout() -> None:
    layout = joint_layout(8, 4)
    real = torch.randn(8, 3, 4, 4).to(memory_format=torch.channels_last)
    both = layout.join(real, real.clone())
    assert both.is_contiguous(memory_format=torch.channels_last)


def test_joint_and_apart_agree_where_no_statistic_spans_the_batch(tiny_config: Config) -> None:
    d = tiny_d(tiny_config, mbstd_group=0).eval()  # BatchNorm on its running statistics
    real, fake = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16) + 1.0
    labels = Classes(None, None)
    r, f, *_ = d_pair(d.forward_features, real, fake, labels, True)
    r_apart, f_apart, *_ = d_pair(d.forward_features, real, fake, labels, False)
    torch.testing.assert_close(r, r_apart)
    torch.testing.assert_close(f, f_apart)


def test_joint_labels_follow_their_images(tiny_config: Config) -> None:
    """A conditional D gets each image's own class in the joint batch's layout."""
    torch.manual_seed(0)
    cfg = with_settings(tiny_config, mbstd_group=2, conditional=True, num_classes=10)
    d = Discriminator(cfg.model).eval()
    torch.nn.init.normal_(d.embed.weight, 0.0, 1.0)  # classes that move the logits visibly
    real, fake = torch.randn(8, 1, 16, 16), torch.randn(8, 1, 16, 16)
    classes = Classes(torch.arange(8), torch.arange(8).flip(0))
    r, f, *_ = d_pair(d.forward_features, real, fake, classes, True, 2)
    r_apart, f_apart, *_ = d_pair(d.forward_features, real, fake, classes, False, 2)
    torch.testing.assert_close(r, r_apart)
    torch.testing.assert_close(f, f_apart)
