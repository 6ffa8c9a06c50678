"""run/sources.py: the one loader of runs, exports and checkpoints (commands and API)."""

from __future__ import annotations

import torch

from conftest import with_settings
from dcgan.api import DCGAN
from dcgan.config import Config
from dcgan.run.checkpoint import EXPORT_NAME
from dcgan.run.rundir import latest_checkpoint
from dcgan.run.sources import load_models, load_sampler
from dcgan.training.loop import train


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_run_loads_both_networks_and_the_average_from_its_checkpoint(
    tiny_config: Config,
) -> None:
    run = train(with_settings(tiny_config, ema=0.9))
    found = load_models(run.run_dir)
    assert same_weights(found.generator, run.generator)
    assert same_weights(found.discriminator, run.discriminator)
    assert found.ema is not None and same_weights(found.ema, run.ema)
    assert found.run_dir == run.run_dir and found.config.train.ema == 0.9
    # the commands' loader reads the export: the same sampling G
    assert same_weights(load_sampler(run.run_dir).generator, run.ema)


def test_save_output_loads_g_and_d_from_its_exports(tiny_config: Config, tmp_path) -> None:
    gan = DCGAN(tiny_config)
    gan.train()
    saved = gan.save(tmp_path / "saved")
    found = load_models(saved)
    assert same_weights(found.generator, gan.sampler)
    assert same_weights(found.discriminator, gan.discriminator)
    assert found.ema is None and found.run_dir is None


def test_a_run_with_only_an_export_gets_the_same_fresh_d_every_time(
    tiny_config: Config,
) -> None:
    run = train(tiny_config)
    latest_checkpoint(run.run_dir).unlink()
    for kept in (run.run_dir / "checkpoints").glob("*.pt"):
        kept.unlink()
    found = load_models(run.run_dir)
    assert (run.run_dir / EXPORT_NAME).is_file() and found.discriminator is None
    assert same_weights(found.generator, load_sampler(run.run_dir).generator)
    first, again = DCGAN.load(run.run_dir), DCGAN.load(run.run_dir)
    assert same_weights(first.generator, found.generator)
    assert same_weights(first.discriminator, again.discriminator)
    assert same_weights(first.discriminator, DCGAN(found.config).discriminator)
