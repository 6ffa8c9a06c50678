import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from PIL import Image

from conftest import with_settings
from dcgan.config import Config, merge
from dcgan.errors import ConfigError
from dcgan.run.checkpoint import load_checkpoint
from dcgan.run.rundir import latest_checkpoint
from dcgan.run.tensorboard import Board
from dcgan.training.loop import train

STAT_FIELDS = {
    "step",
    "epoch",
    "images_seen",
    "loss_d_real",
    "loss_d_fake",
    "loss_d",
    "loss_g",
    "d_real",
    "d_fake",
    "lr_g",
    "lr_d",
    "images_per_s",
}


def test_run_directory_layout(tiny_config: Config) -> None:
    run = train(tiny_config).run_dir
    assert run.name == "00000-fake-16"
    for name in (
        "config.yaml",
        "log.txt",
        "stats.jsonl",
        "progress.gif",
        "losses.png",
        "generator.safetensors",
        "generator.json",
        "checkpoints/latest.pt",
    ):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-000000.png",
        "step-000002.png",
        "step-000004.png",
    ]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "latest.pt",
        "step-000002.pt",
        "step-000004.pt",
    ]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == 4
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert set(records[0]) >= STAT_FIELDS
    assert records[1]["images_seen"] == 4 * 8
    grid = Image.open(run / "samples" / "step-000004.png")
    assert grid.mode == "L" and grid.size == (4 * 16 + 5 * 2,) * 2  # 16 previews, 4x4 grid
    assert Image.open(run / "progress.gif").n_frames >= 2


@pytest.mark.slow
def test_runs_are_numbered_and_never_overwritten(tiny_config: Config) -> None:
    first = train(tiny_config).run_dir
    stamp = (first / "stats.jsonl").read_text()
    second = train(tiny_config).run_dir
    assert second.name == "00001-fake-16"
    assert (first / "stats.jsonl").read_text() == stamp


@pytest.mark.slow
def test_epochs_define_the_length(tiny_config: Config) -> None:
    cfg = with_settings(tiny_config, steps=None, epochs=2, batch_size=128)
    result = train(cfg)  # fake has 512 images: 4 steps per epoch
    assert result.step == 8


@pytest.mark.slow
def test_checkpoint_is_plain_state(tiny_config: Config) -> None:
    run = train(tiny_config).run_dir
    state = torch.load(latest_checkpoint(run), weights_only=True)
    assert state["step"] == 4 and state["format_version"] == 1
    assert load_checkpoint(latest_checkpoint(run)).step == 4
    assert {"generator", "discriminator", "opt_g", "opt_d", "fixed_z", "rng", "config"} <= set(
        state
    )
    assert state["fixed_z"].shape == (16, 16)


def test_preview_does_not_touch_batchnorm_statistics(tiny_config: Config) -> None:
    from dcgan.training.state import build_state
    from dcgan.training.upkeep import write_sample

    state = build_state(tiny_config, torch.device("cpu"))
    before = {k: v.clone() for k, v in state.generator.state_dict().items()}
    ctx = SimpleNamespace(run_dir=Path(tiny_config.output.out), cfg=tiny_config, board=Board())
    write_sample(ctx, state)
    after = state.generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert state.generator.training


@pytest.mark.slow
def test_ema_follows_g_and_samples_come_from_it(tiny_config: Config) -> None:
    from dcgan.nn.ema import decay_at

    result = train(merge(tiny_config, {"ema": 0.9, "steps": 6}, "t"))
    assert result.ema is not None and result.sampler is result.ema
    g, e = result.generator.state_dict(), result.ema.state_dict()
    weights = [k for k in g if k.endswith("weight")]
    assert any(not torch.equal(g[k], e[k]) for k in weights)  # an average, not a copy
    assert all((g[k] - e[k]).abs().max() < 0.05 for k in weights)  # of recent weights
    assert decay_at(0.999, 0) == 0.1 and decay_at(0.999, 10**6) == 0.999
    from dcgan.run.sources import load_generator

    exported, _ = load_generator(result.run_dir / "generator.safetensors")
    assert all(torch.equal(v, exported.state_dict()[k]) for k, v in e.items())


@pytest.mark.slow
def test_ema_off_samples_from_g(tiny_config: Config) -> None:
    result = train(merge(tiny_config, {"ema": 0.0, "steps": 2}, "t"))
    assert result.ema is None and result.sampler is result.generator


@pytest.mark.slow
def test_batchnorm_recalibration_is_exact_and_repeatable(tiny_config: Config) -> None:
    from dcgan.nn.ema import recalibrate_batchnorm
    from dcgan.nn.models import Generator

    g = Generator(tiny_config.model)
    recalibrate_batchnorm(g, tiny_config.model.nz, "normal", seed=3)
    first = {k: v.clone() for k, v in g.state_dict().items()}
    recalibrate_batchnorm(g, tiny_config.model.nz, "normal", seed=3)
    assert all(torch.equal(first[k], v) for k, v in g.state_dict().items())
    bn = next(m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert bn.momentum == 0.1 and not torch.equal(bn.running_var, torch.ones_like(bn.running_var))


TRICKS = {
    "label smoothing": {"real_label": 0.9},
    "more G steps": {"g_steps": 2},
    "more D steps": {"d_steps": 2},
    "separate lr and betas": {
        "lr_g": 1e-3,
        "lr_d": 1e-4,
        "betas_g": (0.5, 0.99),
        "betas_d": (0.0, 0.9),
    },
    "grad clipping": {"grad_clip": 0.5},
    "dropout in D": {"d_dropout": 0.3},
    "uniform z": {"z_dist": "uniform"},
    "feature matching": {"feature_matching": 1.0, "feature_matching_steps": 3},
    "minimax": {"loss": "minimax"},
    "hinge": {"loss": "hinge"},
    "least-squares": {"loss": "least-squares"},
    "colour at 32": {"channels": 3, "image_size": 32},
}


@pytest.mark.slow
@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_every_trick_trains(tiny_config: Config, trick: str) -> None:
    cfg = with_settings(tiny_config, **TRICKS[trick])
    result = train(cfg)
    records = [json.loads(x) for x in (result.run_dir / "stats.jsonl").read_text().splitlines()]
    assert records and all(torch.isfinite(torch.tensor(r["loss_g"])) for r in records)
    assert result.step == 4


def test_tricks_change_the_optimisers(tiny_config: Config) -> None:
    cfg = with_settings(tiny_config, **TRICKS["separate lr and betas"])
    run = train(cfg).run_dir
    state = load_checkpoint(latest_checkpoint(run))
    g_group, d_group = state.opt_g["param_groups"][0], state.opt_d["param_groups"][0]
    assert (g_group["lr"], tuple(g_group["betas"])) == (1e-3, (0.5, 0.99))
    assert (d_group["lr"], tuple(d_group["betas"])) == (1e-4, (0.0, 0.9))


def test_feature_matching_weight_anneals_to_zero(tiny_config: Config) -> None:
    from dcgan.training.step import fm_weight_at

    cfg = with_settings(tiny_config, feature_matching=2.0, feature_matching_steps=4)
    assert [fm_weight_at(cfg, s) for s in range(6)] == [2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
    records = [json.loads(x) for x in (train(cfg).run_dir / "stats.jsonl").read_text().splitlines()]
    assert records[0]["loss_fm"] > 0


@pytest.mark.slow
def test_more_d_steps_consume_more_data(tiny_config: Config) -> None:
    run = train(with_settings(tiny_config, d_steps=3)).run_dir
    last = json.loads((run / "stats.jsonl").read_text().splitlines()[-1])
    assert last["images_seen"] == 4 * 3 * 8


def test_clipping_bounds_the_gradient_norm(tiny_config: Config) -> None:
    from dcgan.training.step import clip

    model = torch.nn.Linear(3, 3)
    model(torch.randn(5, 3)).pow(2).sum().mul(1000).backward()
    clip(model, 0.5)
    norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert norm == pytest.approx(0.5, rel=1e-4)


def test_dataset_smaller_than_a_batch_is_a_clear_error(tiny_config: Config) -> None:
    with pytest.raises(ConfigError, match="lower --batch-size"):
        train(with_settings(tiny_config, batch_size=1024))
    assert not Path(tiny_config.output.out).exists() or not any(
        Path(tiny_config.output.out).iterdir()
    )


@pytest.mark.slow
def test_training_from_python_images(tiny_config: Config) -> None:
    images = torch.rand(40, 1, 28, 28) * 2 - 1  # float, other size: resized to 16
    result = train(tiny_config, images)
    assert result.step == 4
