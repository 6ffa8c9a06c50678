from pathlib import Path

import pytest
import torch

import dcgan
from dcgan import DCGAN


def _tiny(tmp_path: Path) -> DCGAN:
    return DCGAN(
        {"model": {"image_size": 16, "ngf": 8, "ndf": 8, "nz": 16}, "data": {"dataset": "fake"}},
        batch_size=8,
        device="cpu",
        out=str(tmp_path / "runs"),
        log_every=1,
        sample_every=10,
    )


@pytest.mark.slow
def test_train_save_load_generate(tmp_path: Path, capsys) -> None:
    gan = _tiny(tmp_path)
    assert "Generator" in gan.summary() and "Discriminator" in capsys.readouterr().out
    result = gan.train(torch.rand(64, 1, 16, 16) * 2 - 1, steps=3)
    assert result.step == 3 and gan.run_dir == result.run_dir
    image = gan.generate_image(seed=5)
    assert image.shape == (1, 16, 16) and image.min() >= 0 and image.max() <= 1
    saved = gan.save(tmp_path / "saved")
    again = DCGAN.load(saved)
    assert torch.equal(again.generate_image(seed=5), image)
    d_a, d_b = gan.discriminator.state_dict(), again.discriminator.state_dict()
    assert all(torch.equal(d_a[k].cpu(), d_b[k]) for k in d_a)
    paths = again.generate_images(5, tmp_path / "imgs")
    assert [p.name for p in paths] == [f"{i:06d}.png" for i in range(5)]


@pytest.mark.slow
def test_train_by_dataset_name_and_epochs(tmp_path: Path) -> None:
    gan = _tiny(tmp_path)
    gan.config.train.batch_size = 128
    result = gan.train("fake", epochs=1)  # 512 random images, batch 128
    assert result.step == 4


@pytest.mark.slow
def test_load_a_run_directory(tmp_path: Path) -> None:
    gan = _tiny(tmp_path)
    gan.train(steps=2)
    loaded = DCGAN.load(gan.run_dir)
    assert torch.equal(loaded.generate_image(index=3), gan.generate_image(index=3))


def test_public_names() -> None:
    for name in ("DCGAN", "Generator", "Discriminator", "Config", "train", "LOSSES"):
        assert hasattr(dcgan, name)


@pytest.mark.slow
def test_evaluate_is_the_evaluate_commands_record(tmp_path: Path, monkeypatch) -> None:
    """`DCGAN.evaluate` and `dcgan evaluate` run one path: the same numbers for the same run,
    N and seed (a small stand-in for Inception keeps it fast)."""
    import json

    import pytest

    from conftest import PixelFeatures
    from dcgan.cli import main
    from dcgan.errors import ConfigError
    from dcgan.evaluation import features

    monkeypatch.setattr(features, "InceptionFeatures", PixelFeatures)
    gan = _tiny(tmp_path)
    gan.train(steps=2)
    record = gan.evaluate(num_samples=40, metrics=("fid", "kid"), seed=3)
    report = tmp_path / "e.json"
    argv = ["evaluate", str(gan.run_dir), "--num-samples", "40", "--metrics", "fid,kid"]
    assert main([*argv, "--seed", "3", "--device", "cpu", "--json", str(report)]) == 0
    assert record["metrics"] == json.loads(report.read_text())["metrics"]
    assert record["num_samples"] == 40 and set(record["metrics"]) == {"fid", "kid_mean", "kid_std"}
    with pytest.raises(ConfigError, match="too few for kid"):
        gan.evaluate(num_samples=3, metrics=("kid",))
    with pytest.raises(ConfigError, match="choose from"):
        gan.evaluate(metrics=("is",))
