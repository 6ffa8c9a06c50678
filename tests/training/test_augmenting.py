"""Augmentation in training: seeded per (update, call), process slices, and ADA steering p."""

from __future__ import annotations

import pytest
import torch

from conftest import with_settings
from dcgan.config import Config
from dcgan.errors import ConfigError
from dcgan.run.checkpoint import load_checkpoint
from dcgan.run.rundir import latest_checkpoint, read_stats
from dcgan.training.augmenting import AdaptiveP, Augmenter
from dcgan.training.loop import train

POLICIES = ("translation", "cutout", "color")


def test_an_augmenter_repeats_a_call_and_varies_across_updates_and_calls() -> None:
    aug = Augmenter(POLICIES, 1.0, seed=3, size=16)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    assert torch.equal(aug(x, 5, 0), aug(x, 5, 0))
    assert not torch.equal(aug(x, 5, 0), aug(x, 5, 1))
    assert not torch.equal(aug(x, 5, 0), aug(x, 6, 0))


def test_process_slices_augment_as_the_single_process_batch() -> None:
    x = torch.rand(6, 1, 16, 16) * 2 - 1
    whole = Augmenter(POLICIES, 0.5, seed=1, size=16)(x, 2, 3)
    parts = [
        Augmenter(POLICIES, 0.5, 1, 16, rank, 3)(x[2 * rank : 2 * rank + 2], 2, 3)
        for rank in range(3)
    ]
    assert torch.equal(torch.cat(parts), whole)


def test_the_cutout_fraction_sets_the_square_that_is_blanked() -> None:
    x = torch.ones(8, 1, 32, 32)
    blanked = {
        ratio: (Augmenter(("cutout",), 1.0, seed=2, size=32, cutout=ratio)(x, 0, 0) == 0)
        for ratio in (0.5, 0.25)
    }
    # each image loses at most a 16x16 (8x8) square, exactly that where it is not clipped
    assert blanked[0.5].sum((1, 2, 3)).max() == 256 and blanked[0.25].sum((1, 2, 3)).max() == 64
    assert (blanked[0.25] <= blanked[0.5]).all()  # the same centres: the small square inside


@pytest.mark.slow
def test_the_cutout_fraction_reaches_training(tiny_config: Config) -> None:
    runs = [
        train(with_settings(tiny_config, deterministic=True, augment="cutout", augment_cutout=r))
        for r in (0.5, 0.25)
    ]
    a, b = (run.discriminator.state_dict() for run in runs)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_ada_raises_p_when_d_is_overconfident_and_lowers_it_when_not() -> None:
    ada = AdaptiveP(target=0.6, interval=4, kimg=1.0)
    for _ in range(4):
        ada.add(torch.tensor(0.9))  # D is sure of the real images: overfitting
    up = ada.adjust(0.5, images_per_step=25, mean=lambda t: t)
    assert up == pytest.approx(0.5 + 4 * 25 / 1000)
    for _ in range(4):
        ada.add(torch.tensor(0.2))
    assert ada.adjust(up, 25, lambda t: t) == pytest.approx(0.5)
    ada.add(torch.tensor(0.9))
    assert ada.adjust(1.0, 10_000, lambda t: t) == 1.0  # clamped to [0, 1]
    ada.add(torch.tensor(-1.0))
    assert ada.adjust(0.0, 10_000, lambda t: t) == 0.0


def test_ada_signal_survives_a_checkpoint_exactly() -> None:
    ada = AdaptiveP(0.6, 4, 1.0)
    for v in (0.25, 0.125, 0.7):
        ada.add(torch.tensor(v))
    again = AdaptiveP(0.6, 4, 1.0)
    again.load(ada.state(), torch.device("cpu"))
    assert again.count == 3 and torch.equal(again.total, ada.total)


@pytest.mark.slow
def test_training_with_ada_steers_p_by_rt_and_saves_them(tiny_config: Config) -> None:
    # batch 8, 2 steps between moves, 160 images from 0 to 1: each move is +-0.1
    flat = {"augment": "translation,cutout,color", "ada_target": 0.05, "ada_interval": 2}
    cfg = with_settings(tiny_config, steps=12, ada_kimg=0.16, log_every=2, **flat)
    result = train(cfg)
    rows = [r for r in read_stats(result.run_dir) if "loss_d" in r]
    p = 0.0  # ADA starts without augmentation
    for row in rows:  # each log interval is exactly one ADA interval, so rt is what steered p
        assert -1 <= row["rt"] <= 1
        p = min(max(p + (0.1 if row["rt"] > 0.05 else -0.1), 0.0), 1.0)
        assert row["augment_p"] == pytest.approx(p)
    saved = load_checkpoint(latest_checkpoint(result.run_dir))
    assert saved.augment_p == pytest.approx(rows[-1]["augment_p"]) and saved.ada_signal is not None
    assert (result.run_dir / "losses.png").is_file()


@pytest.mark.slow
def test_fixed_p_is_kept_and_checkpointed(tiny_config: Config) -> None:
    result = train(with_settings(tiny_config, augment="cutout", augment_p=0.4))
    saved = load_checkpoint(latest_checkpoint(result.run_dir))
    assert saved.augment_p == 0.4 and saved.ada_signal is None
    assert all(r["augment_p"] == 0.4 for r in read_stats(result.run_dir) if "loss_d" in r)


@pytest.mark.slow
def test_augmentation_changes_what_d_sees(tiny_config: Config) -> None:
    plain = train(with_settings(tiny_config, deterministic=True))
    augmented = train(with_settings(tiny_config, deterministic=True, augment="translation"))
    a, b = plain.discriminator.state_dict(), augmented.discriminator.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"augment": "zoom"}, "augment: zoom is not one of translation, cutout, color or none"),
        ({"ada_target": 0.6}, "ada_target: adaptive augmentation needs --augment policies"),
        ({"augment": "color", "augment_p": 1.5}, r"augment_p: 1.5 must be in \[0, 1\]"),
        ({"augment": "color", "ada_kimg": 0}, "ada_kimg: 0"),
        ({"augment": "cutout", "augment_cutout": 0}, r"augment_cutout: 0.0 must be in \(0, 1\]"),
        ({"augment": "cutout", "augment_cutout": 1.5}, r"augment_cutout: 1.5 must be in \(0, 1\]"),
    ],
)
def test_bad_augmentation_settings_are_one_line(tiny_config: Config, flags, message) -> None:
    with pytest.raises(ConfigError, match=message):
        with_settings(tiny_config, **flags)


def test_ada_without_new_signal_keeps_p() -> None:
    assert AdaptiveP(0.6, 4, 1.0).adjust(0.3, 64, lambda t: t) == 0.3
