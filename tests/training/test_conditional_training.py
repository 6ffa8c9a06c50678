"""Class-conditional training: labels reach both networks, resume stays exact, torchrun slices
keep each image with its label, and the run records its classes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import tiny_flags, with_settings
from dcgan.api import DCGAN
from dcgan.cli import main
from dcgan.config import Config
from dcgan.data import ImageSet
from dcgan.errors import ConfigError, DataError
from dcgan.nn.losses import LOSSES
from dcgan.run.checkpoint import load_checkpoint
from dcgan.run.rundir import latest_checkpoint
from dcgan.seeding import STREAM_AUGMENT, STREAM_FAKE_LABELS, seed_for
from dcgan.training import augmenting, step
from dcgan.training.batches import RealBatches, prepare_images
from dcgan.training.loop import train
from dcgan.training.precision import Precision
from dcgan.training.state import build_state
from dcgan.training.step import draw_labels

CPU = torch.device("cpu")


def load_png(path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path)))


@pytest.fixture
def conditional(tiny_config: Config) -> Config:
    return with_settings(tiny_config, conditional=True, deterministic=True)


@pytest.mark.slow
@pytest.mark.parametrize("cond_g, cond_d", [("cbn", "projection"), ("concat", "concat")])
def test_a_conditional_run_records_its_classes(conditional: Config, cond_g, cond_d) -> None:
    cfg = with_settings(conditional, cond_g=cond_g, cond_d=cond_d, augment="translation")
    result = train(cfg)
    assert result.generator.cfg.num_classes == 10  # the built-in fake set's labels
    assert result.class_names == tuple(str(c) for c in range(10))
    saved = load_checkpoint(latest_checkpoint(result.run_dir))
    assert saved.class_names == [str(c) for c in range(10)]
    assert saved.model_config.num_classes == 10
    meta = json.loads((result.run_dir / "generator.json").read_text())
    assert meta["model"]["conditional"] and meta["class_names"] == saved.class_names
    # the preview: one row per class, the same z down each column (N images -> N/10 columns)
    grid = load_png(result.run_dir / "samples" / "step-000004.png")
    side, columns = 16 + 2, -(-cfg.output.num_samples // 10)
    assert grid.shape[:2] == (10 * side + 2, columns * side + 2)


def test_an_unconditional_export_has_no_class_fields(tiny_config: Config) -> None:
    run = train(tiny_config).run_dir
    meta = json.loads((run / "generator.json").read_text())
    assert "class_names" not in meta and "conditional" not in meta["model"]
    assert "class_names" not in torch.load(latest_checkpoint(run), weights_only=True)


@pytest.mark.parametrize(
    "recipe",
    [
        {},  # spectral normalisation in D by default, for a projection D
        {"spectral_norm": False},  # BatchNorm in D, asked for
        {"spectral_norm": True, "loss": "hinge", "mbstd_group": 4},  # the demo's
    ],
    ids=["defaults", "batchnorm-d", "demo-conditional"],
)
@pytest.mark.slow
def test_conditional_resume_is_bitwise(conditional: Config, recipe: dict) -> None:
    cfg = with_settings(conditional, steps=6, checkpoint_every=100, g_steps=2, **recipe)
    straight = train(cfg)
    half = train(with_settings(cfg, steps=3))
    resumed = train(with_settings(cfg, steps=6), resume=half.run_dir)
    a = load_file(straight.run_dir / "generator.safetensors")
    b = load_file(resumed.run_dir / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    d_a, d_b = straight.discriminator.state_dict(), resumed.discriminator.state_dict()
    assert all(torch.equal(d_a[k], d_b[k]) for k in d_a)


def test_a_projection_d_is_spectrally_normalised_unless_told_otherwise(
    conditional: Config,
) -> None:
    """The published pairing by default: no BatchNorm in a conditional projection D, its convs
    normalised; BatchNorm for a concat D, an unconditional D, or when asked for."""

    def d_norms(cfg: Config) -> tuple[bool, bool]:
        if cfg.model.conditional:
            cfg = with_settings(cfg, num_classes=3)
        d = build_state(cfg, CPU).discriminator
        batch_norm = any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
        spectral = any(hasattr(m, "weight_orig") for m in d.modules())
        return batch_norm, spectral

    assert conditional.model.spectral_norm is None  # unset: the pairing decides
    assert d_norms(conditional) == (False, True)
    assert d_norms(with_settings(conditional, spectral_norm=False)) == (True, False)
    assert d_norms(with_settings(conditional, cond_d="concat")) == (True, False)
    assert d_norms(with_settings(conditional, conditional=False)) == (True, False)


@pytest.mark.slow
def test_a_run_saved_before_the_default_changed_keeps_its_batchnorm_d(
    conditional: Config,
) -> None:
    """A conditional run whose config.yaml and checkpoint lack spectral_norm (saved before the
    setting existed, when D had BatchNorm) resumes with that D, not today's default."""
    half = train(with_settings(conditional, spectral_norm=False, steps=2))
    config = half.run_dir / "config.yaml"
    config.write_text(config.read_text().replace("  spectral_norm: false\n", ""))
    latest = latest_checkpoint(half.run_dir)
    saved = torch.load(latest, weights_only=True)
    del saved["config"]["model"]["spectral_norm"]
    torch.save(saved, latest)
    resumed = train(with_settings(conditional, steps=4), resume=half.run_dir)
    assert resumed.step == 4
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in resumed.discriminator.modules())


def labelled_set(n: int = 64) -> ImageSet:
    """Image i is filled with the grey level i and labelled i mod 7: a label can be checked
    against its image."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 16, 16).clone()
    return ImageSet(images, labels=torch.arange(n) % 7, class_names=tuple("abcdefg"))


def test_torchrun_slices_keep_each_image_with_its_label(conditional: Config) -> None:
    cfg = with_settings(conditional, batch_size=8)
    data = labelled_set()
    whole = RealBatches(data, with_settings(cfg, batch_size=16), CPU)
    parts = [RealBatches(data, cfg, CPU, rank, 2) for rank in range(2)]
    for number in range(6):
        images = torch.cat([p(number) for p in parts])
        labels = torch.cat([p.labels(number) for p in parts])
        grey = ((images[:, 0, 0, 0] + 1) * 127.5).round().long()
        assert torch.equal(labels, grey % 7)  # every image kept its own label
        assert torch.equal(labels, whole.labels(number))  # the global batch of one process


def test_fake_classes_do_not_depend_on_the_process_count(conditional: Config) -> None:
    cfg = with_settings(conditional, num_classes=10)
    state = build_state(cfg, CPU)
    one = draw_labels(state, 8, cfg, update=0)
    halves = []
    for rank in range(2):
        state.rank, state.world = rank, 2
        halves.append(draw_labels(state, 4, cfg, update=0))
    assert torch.equal(one, torch.cat(halves))
    state.rank, state.world = 0, 1
    assert not torch.equal(one, draw_labels(state, 8, cfg, update=1))  # each call draws anew
    assert int(one.min()) >= 0 and int(one.max()) < 10


def test_given_images_train_with_their_labels(tmp_path) -> None:
    data = labelled_set()
    gan = DCGAN(image_size=16, ngf=8, ndf=8, nz=16, conditional=True, out=str(tmp_path))
    gan.train(data.images, steps=2, labels=data.labels, batch_size=8)
    assert gan.config.model.num_classes == 7 and gan.sampler.cfg.num_classes == 7
    three = gan.generate_image(seed=1, index=2, label=3)
    assert three.shape == (1, 16, 16)
    assert not torch.equal(three, gan.generate_image(seed=1, index=2, label=4))
    with pytest.raises(ConfigError, match="'9' is not a class"):
        gan.generate_image(label=9)
    with pytest.raises(ConfigError, match="carry no class labels"):
        DCGAN(image_size=16, conditional=True, out=str(tmp_path)).train(data.images, steps=1)


def test_labels_outside_num_classes_are_one_line(conditional: Config) -> None:
    with pytest.raises(ConfigError, match=r"num_classes: 5, but the data's labels run from 0 to 9"):
        train(with_settings(conditional, num_classes=5))


def test_conditional_on_an_unlabelled_dataset_is_one_line(tmp_path, capsys) -> None:
    flags = tiny_flags(tmp_path, dataset="celeba", data_root=str(tmp_path))
    assert main(["train", *flags, "--conditional"]) == 2
    err = capsys.readouterr().err.strip()
    assert "celeba has no class labels" in err and "\n" not in err
    with pytest.raises(DataError):
        from dcgan.config import DataConfig
        from dcgan.data import open_images

        open_images(DataConfig(dataset="celeba", data_root=str(tmp_path)), 16, 1, labels=True)


@pytest.mark.slow
def test_generate_class_is_batch_size_independent(conditional: Config, tmp_path) -> None:
    run = train(conditional).run_dir
    outs = []
    for batch in (1, 7):
        out = tmp_path / f"b{batch}"
        assert main(["generate", str(run), "--class", "3,5", "--num", "5", "--out", str(out),
                     "--batch-size", str(batch)]) == 0  # fmt: skip
        outs.append(out)
    for name in ("3/000004.png", "5/000000.png"):
        assert torch.equal(load_png(outs[0] / name), load_png(outs[1] / name))
    # image i of every class comes from the same z, so only the class changes it
    assert not torch.equal(load_png(outs[0] / "3/000001.png"), load_png(outs[0] / "5/000001.png"))


def _ends(sheet: torch.Tensor, cols: int, side: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The first and last tile of an interpolation sheet's first row (H, W) (labels on the left)."""
    margin = sheet.shape[1] - (cols * (side + 2) + 2)
    left = [margin + 2 + c * (side + 2) for c in (0, cols - 1)]
    return tuple(sheet[2 : 2 + side, x : x + side] for x in left)


@pytest.mark.slow
def test_latent_commands_take_a_class(conditional: Config, tmp_path, capsys) -> None:
    run = train(conditional).run_dir
    gen = tmp_path / "gen"
    assert main(["generate", str(run), "--class", "3,5", "--num", "3", "--out", str(gen)]) == 0
    sheet = tmp_path / "i.png"
    argv = ["interpolate", str(run), "0:2", "--steps", "3", "--out", str(sheet)]
    assert main([*argv, "--class", "3"]) == 0
    first, last = _ends(load_png(sheet), 3)
    assert torch.equal(first, load_png(gen / "3/000000.png"))
    assert torch.equal(last, load_png(gen / "3/000002.png"))
    # 1:1 with --class 3:5 stays at z_1 and goes from class 3 to class 5
    assert main(["interpolate", str(run), "1:1", "--steps", "3", "--out", str(sheet),
                 "--class", "3:5"]) == 0  # fmt: skip
    first, last = _ends(load_png(sheet), 3)
    assert torch.equal(first, load_png(gen / "3/000001.png"))
    assert torch.equal(last, load_png(gen / "5/000001.png"))
    capsys.readouterr()
    assert main(argv) == 2  # a conditional model needs its class
    assert "name the class" in capsys.readouterr().err
    assert main(["walk", str(run), "--out", str(tmp_path / "w.gif"), "--class", "3:5"]) == 2
    assert "not a class" in capsys.readouterr().err  # a blend is for interpolate only


@pytest.mark.slow
def test_api_latent_functions_take_a_label(tmp_path) -> None:
    data = labelled_set()
    gan = DCGAN(image_size=16, ngf=8, ndf=8, nz=16, conditional=True, out=str(tmp_path))
    gan.train(data.images, steps=2, labels=data.labels, batch_size=8)
    path = gan.interpolate(0, 1, steps=3, label=(0, "2"))
    assert torch.equal(path[0], gan.generate_image(0, 0, label=0))
    assert torch.equal(path[-1], gan.generate_image(0, 1, label=2))
    assert gan.walk(frames=4, keys=2, label=2).shape == (4, 1, 16, 16)
    with pytest.raises(ConfigError, match="name the class"):
        gan.sweep(0, [0])


def test_a_steps_draws_are_keyed_by_its_update_numbers(conditional: Config, monkeypatch) -> None:
    """Step 5 with two D and two G updates: augmentation and fake classes draw from the
    run-wide update numbers (step * 256 + update; augmentation two calls an update), the
    numbering every recorded run used, so their figures reproduce."""
    cfg = with_settings(
        conditional,
        num_classes=10,
        d_steps=2,
        g_steps=2,
        augment="translation",
        feature_matching=1.0,
    )
    drawn: list[tuple[int, int]] = []

    def spy(seed: int, index: int, stream: int = 0) -> int:
        drawn.append((stream, index))
        return seed_for(seed, index, stream)

    monkeypatch.setattr(augmenting, "seed_for", spy)
    monkeypatch.setattr(step, "seed_for", spy)
    state = build_state(cfg, CPU)
    state.step = 5
    reals = RealBatches(prepare_images(cfg, None), cfg, CPU)
    step.train_step(state, reals, LOSSES[cfg.train.loss], Precision("fp32", "cpu"), cfg)
    assert sorted(i for s, i in drawn if s == STREAM_AUGMENT) == list(range(2560, 2568))
    # D's two updates draw classes; G's first reuses D's fakes, its second draws anew
    assert [i for s, i in drawn if s == STREAM_FAKE_LABELS] == [1280, 1281, 1283]
