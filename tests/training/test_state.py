"""training/state.py: what a run holds, its checkpoint form, the preview layout and the
generator that samples."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import with_settings
from dcgan.config import Config
from dcgan.nn import ema as ema_module
from dcgan.nn.losses import LOSSES
from dcgan.training.batches import RealBatches, prepare_images
from dcgan.training.precision import Precision
from dcgan.training.state import (
    build_state,
    preview_layout,
    restore,
    sampling_generator,
    to_checkpoint,
)
from dcgan.training.step import train_step

CPU = torch.device("cpu")
FP32 = Precision("fp32", "cpu")


def steps(cfg: Config, state, count: int) -> list[list[float]]:
    reals = RealBatches(prepare_images(cfg, None), cfg, CPU)
    return [
        train_step(state, reals, LOSSES["hinge"], FP32, cfg).stacked().tolist()
        for _ in range(count)
    ]


@pytest.mark.slow
def test_a_state_restored_from_its_checkpoint_goes_on_as_the_original(tiny_config: Config) -> None:
    """Checkpoint after 2 steps, restore into a fresh state: the next 2 steps give the same
    statistics and weights, bit for bit (weights, Adam moments, EMA, step, every RNG)."""
    cfg = with_settings(tiny_config, ema=0.9, loss="hinge")
    original = build_state(cfg, CPU)
    steps(cfg, original, 2)
    # a copy, as a file gives: the record shares its tensors with the live state
    saved = copy.deepcopy(to_checkpoint(original, cfg))
    fresh = build_state(with_settings(cfg, seed=99), CPU)  # other weights until restored
    restore(fresh, saved)
    assert fresh.step == 2 and fresh.images_seen == original.images_seen
    assert steps(cfg, fresh, 2) == steps(cfg, original, 2)
    for a, b in zip(
        original.generator.state_dict().values(), fresh.generator.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    for a, b in zip(
        original.ema.state_dict().values(), fresh.ema.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_preview_layout_rows_of_classes_share_z_down_columns(tiny_config: Config) -> None:
    plain = with_settings(tiny_config, num_samples=6)
    assert preview_layout(plain) == ([0, 1, 2, 3, 4, 5], None, None)
    cond = with_settings(plain, conditional=True, num_classes=3)
    indices, classes, columns = preview_layout(cond)
    assert columns == 2 and classes == [0, 0, 1, 1, 2, 2] and indices == [0, 1, 0, 1, 0, 1]


@pytest.mark.slow
def test_sampling_generator_recalibrates_the_average_once_a_step(
    tiny_config: Config, monkeypatch
) -> None:
    calls = []
    real = ema_module.recalibrate_batchnorm
    monkeypatch.setattr(
        "dcgan.training.state.recalibrate_batchnorm",
        lambda *a, **k: (calls.append(a[0]), real(*a, **k)),
    )
    cfg = with_settings(tiny_config, ema=0.9)
    state = build_state(cfg, CPU)
    assert sampling_generator(state, cfg) is state.ema
    assert sampling_generator(state, cfg) is state.ema and len(calls) == 1  # same step: reused
    steps(cfg, state, 1)
    sampling_generator(state, cfg)
    assert calls == [state.ema, state.ema]  # a new step: estimated again
    without = with_settings(tiny_config, ema=0.0)
    bare = build_state(without, CPU)
    assert bare.ema is None and sampling_generator(bare, without) is bare.generator
