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
from dcgan.training.step import UNCONDITIONAL, Classes, d_pair, train_step

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
    (r, f), (real_feats, fake_feats) = d_pair(d.forward_features, real, fake, UNCONDITIONAL, True)
    logits, feats = d.forward_features(torch.cat([real, fake]))
    assert torch.equal(r, logits[:4]) and torch.equal(f, logits[4:])
    assert all(torch.equal(a, b[:4]) for a, b in zip(real_feats, feats, strict=True))
    assert all(torch.equal(a, b[4:]) for a, b in zip(fake_feats, feats, strict=True))
    # apart, BatchNorm normalises the shifted fakes by their own statistics: other logits
    (r_apart, f_apart), _ = d_pair(d.forward_features, real, fake, UNCONDITIONAL, False)
    assert not torch.allclose(r, r_apart) and not torch.allclose(f, f_apart)


def test_joint_and_apart_agree_where_no_statistic_spans_the_batch(tiny_config: Config) -> None:
    d = tiny_d(tiny_config, mbstd_group=0).eval()  # BatchNorm on its running statistics
    real, fake = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16) + 1.0
    labels = Classes(None, None)
    (r, f), _ = d_pair(d.forward_features, real, fake, labels, True)
    (r_apart, f_apart), _ = d_pair(d.forward_features, real, fake, labels, False)
    torch.testing.assert_close(r, r_apart)
    torch.testing.assert_close(f, f_apart)
