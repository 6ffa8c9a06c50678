"""Precision modes: each trains without NaN, 'auto' follows the hardware, and the fp32 step
computes what the classic pytorch/examples loop computes."""

import copy

import pytest
import torch
import yaml
from torch import nn

from conftest import with_settings
from dcgan.config import Config
from dcgan.data import ImageSet
from dcgan.errors import ConfigError
from dcgan.nn.losses import LOSSES
from dcgan.run.checkpoint import load_checkpoint
from dcgan.run.rundir import latest_checkpoint
from dcgan.seeding import sample_z
from dcgan.training import precision
from dcgan.training.batches import RealBatches
from dcgan.training.loop import train
from dcgan.training.precision import Precision, resolve_precision
from dcgan.training.state import build_state, restore
from dcgan.training.step import train_step

CPU = torch.device("cpu")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fp32", "bf16", "fp16"])
def test_each_precision_trains_without_nan(tiny_config: Config, mode: str) -> None:
    result = train(with_settings(tiny_config, precision=mode, steps=6, loss="hinge"))
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["train"]["precision"] == mode
    for net in (result.generator, result.discriminator):
        assert all(torch.isfinite(p).all() for p in net.parameters())
    ckpt = load_checkpoint(latest_checkpoint(result.run_dir))
    assert (ckpt.scalers is not None) == (mode == "fp16")


def test_fp16_resume_restores_the_loss_scalers(tiny_config: Config) -> None:
    cfg = with_settings(tiny_config, precision="fp16")
    run = train(cfg).run_dir
    saved = load_checkpoint(latest_checkpoint(run)).scalers
    state = build_state(cfg, CPU)
    restore(state, load_checkpoint(latest_checkpoint(run)))
    assert [s.state_dict() for s in state.scalers] == saved


@pytest.mark.parametrize(
    ("flags", "expected"),
    [({"avx512f", "avx512_bf16"}, "bf16"), ({"amx_bf16"}, "bf16"), ({"avx2", "fma"}, "fp32")],
)
def test_auto_picks_bf16_only_where_the_cpu_has_it(monkeypatch, flags, expected) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    assert resolve_precision("auto", CPU) == expected
    assert resolve_precision("fp32", CPU) == "fp32"


@pytest.mark.slow
def test_auto_is_recorded_as_what_it_resolved_to(tiny_config: Config, monkeypatch) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    run = train(with_settings(tiny_config, steps=2)).run_dir
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["precision"] == "fp32"


def test_unknown_precision_is_a_one_line_error(tiny_config: Config) -> None:
    with pytest.raises(ConfigError, match="precision: 'fp8' is not one of auto, fp32"):
        with_settings(tiny_config, precision="fp8")


def test_fp16_autocast_runs_convolutions_in_fp16() -> None:
    conv = nn.Conv2d(1, 2, 3)
    with Precision("fp16", "cpu").autocast():
        assert conv(torch.randn(1, 1, 5, 5)).dtype == torch.float16
    with Precision("fp32", "cpu").autocast():
        assert conv(torch.randn(1, 1, 5, 5)).dtype == torch.float32


# ---------------------------------------------------------------------------- the reference


def reference_step(netG, netD, optG, optD, real, z) -> list[float]:
    """The pytorch/examples DCGAN step, as written there: Sigmoid + BCELoss, D on real then on
    fake (each backpropagated), then G on the same fakes. Returns errD_real, errD_fake, errG."""
    criterion = nn.BCELoss()
    netD.zero_grad()
    label = torch.full((real.shape[0],), 1.0)
    output = netD(real)
    errD_real = criterion(output, label)
    errD_real.backward()
    fake = netG(z)
    label.fill_(0.0)
    output = netD(fake.detach())
    errD_fake = criterion(output, label)
    errD_fake.backward()
    optD.step()
    netG.zero_grad()
    label.fill_(1.0)
    output = netD(fake)
    errG = criterion(output, label)
    errG.backward()
    optG.step()
    return [errD_real.item(), errD_fake.item(), errG.item()]


@pytest.mark.slow
def test_fp32_step_matches_the_reference_loop(tiny_config: Config) -> None:
    cfg = with_settings(tiny_config, precision="fp32", ema=0.0, batch_size=16)
    state = build_state(cfg, CPU)
    netG = copy.deepcopy(state.generator).to(memory_format=torch.contiguous_format)
    netD = nn.Sequential(copy.deepcopy(state.discriminator), nn.Sigmoid())
    optG = torch.optim.Adam(netG.parameters(), lr=cfg.train.lr, betas=(0.5, 0.999))
    optD = torch.optim.Adam(netD.parameters(), lr=cfg.train.lr, betas=(0.5, 0.999))
    noise = torch.Generator()
    noise.set_state(state.noise_rng.get_state())  # the same z as the project's step draws
    images = torch.randint(0, 256, (64, 1, 16, 16), dtype=torch.uint8)
    reals = RealBatches(ImageSet(images, source="test"), cfg, CPU)
    for step in range(4):
        real = reals(step).contiguous()
        z = sample_z(16, cfg.model.nz, "normal", noise)
        expected = reference_step(netG, netD, optG, optD, real, z)
        ours = train_step(state, reals, LOSSES["non-saturating"], Precision("fp32", "cpu"), cfg)
        assert ours.stacked()[:3].tolist() == pytest.approx(expected, rel=1e-4, abs=1e-5), step
