"""The checkpoint schema's one owner, and files from earlier versions still loading, resuming and
generating the images that version made (fixtures: tests/fixtures/README.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dcgan.api import DCGAN
from dcgan.config import Config, merge
from dcgan.errors import CheckpointError
from dcgan.run.checkpoint import Checkpoint, load_checkpoint, load_export, save_checkpoint
from dcgan.run.rundir import latest_checkpoint, read_config
from dcgan.run.sources import load_generator
from dcgan.sampling import generate
from dcgan.training.loop import train

FIXTURES = Path(__file__).parent.parent / "fixtures"
OLD_RUN = FIXTURES / "run-2490272"


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "run-2490272-expected.npz") as z:
        return dict(z)


def images(source: Path) -> np.ndarray:
    """Images 0..7 of seed 3 in batches of 4, as the fixture's expectations were made."""
    generator, z_dist = load_generator(source)
    return torch.cat([x for _, x in generate(generator, range(8), 3, 4, z_dist)]).numpy()


def assert_same_images(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Equal up to one grey level: fp32 kernels may round differently on another CPU."""
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == np.uint8
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
    assert (ours == theirs).mean() > 0.99


@pytest.mark.parametrize(
    ("key", "source"),
    [
        ("run", "."),
        ("export", "generator.safetensors"),
        ("checkpoint", "checkpoints/step-000002.pt"),
    ],
)
def test_an_old_run_generates_the_images_it_did(expected, key: str, source: str) -> None:
    assert_same_images(images(OLD_RUN / source), expected[key])


def test_the_api_loads_an_old_run(expected) -> None:
    image = DCGAN.load(OLD_RUN).generate_image(seed=3, index=5)
    assert_same_images((image * 255).round().to(torch.uint8).numpy(), expected["api"])


def test_an_old_run_resumes_as_that_version_did(expected, tmp_path: Path) -> None:
    run = shutil.copytree(OLD_RUN, tmp_path / "run")
    cfg = merge(read_config(run), {"steps": 6, "out": str(tmp_path)}, "test")
    result = train(cfg, resume=run)
    assert result.step == 6
    weights = torch.cat([p.detach().flatten() for p in result.generator.parameters()]).numpy()
    np.testing.assert_allclose(weights, expected["resumed_g"], rtol=0, atol=1e-5)
    assert_same_images(images(run), expected["resumed"])


def test_the_schema_round_trips_and_names_its_keys(tmp_path: Path) -> None:
    saved = load_checkpoint(latest_checkpoint(OLD_RUN))
    assert saved.step == 4 and saved.world == 1 and saved.ema is not None
    assert saved.sampling_weights is saved.ema
    assert saved.model_config.image_size == 16 and saved.z_dist == "normal"
    path = save_checkpoint(saved, tmp_path / "copy.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == 1 and set(raw) == set(saved.to_dict())
    again = load_checkpoint(path)
    assert all(torch.equal(again.generator[k], v) for k, v in saved.generator.items())


def test_a_checkpoint_without_images_seen_derives_it(tmp_path: Path) -> None:
    raw = load_checkpoint(latest_checkpoint(OLD_RUN)).to_dict()
    del raw["images_seen"]
    torch.save(raw, tmp_path / "old.pt")
    t = raw["config"]["train"]
    assert load_checkpoint(tmp_path / "old.pt").images_seen == 4 * t["batch_size"] * t["d_steps"]


@pytest.mark.parametrize("change", ["missing", "unknown"])
def test_a_checkpoint_with_wrong_keys_is_one_line_naming_them(tmp_path: Path, change: str) -> None:
    raw = load_checkpoint(latest_checkpoint(OLD_RUN)).to_dict()
    if change == "missing":
        del raw["generator"]
    else:
        raw["surprise"] = 1
    torch.save(raw, tmp_path / "bad.pt")
    name = "'generator'" if change == "missing" else "'surprise'"
    with pytest.raises(CheckpointError, match=rf"bad\.pt is damaged .*{name}") as caught:
        load_checkpoint(tmp_path / "bad.pt")
    assert "\n" not in str(caught.value)


def test_fields_added_since_the_old_file_have_defaults_and_the_rest_is_what_it_holds() -> None:
    raw = torch.load(latest_checkpoint(OLD_RUN), weights_only=True)
    fields = Checkpoint.__dataclass_fields__
    assert set(raw) - {"format_version"} <= set(fields)
    added = set(fields) - set(raw)
    assert added == {"augment_p", "ada_signal", "class_names"}
    assert all(fields[name].default is None for name in added)


def test_an_export_whose_settings_ask_for_terabytes_falls_back_to_the_checkpoint(
    tiny_config: Config,
) -> None:
    """generator.json that passes validation (512 px, width 8192) but not its weights' check:
    nothing is built from it, and the run's latest.pt serves."""
    import json
    import warnings

    from dcgan.errors import Recovered
    from dcgan.run.sources import load_sampler

    run = train(tiny_config).run_dir
    meta_path = run / "generator.json"
    meta = json.loads(meta_path.read_text())
    meta["model"] |= {"image_size": 512, "ngf": 8192}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_export(run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = load_sampler(run)
    assert found.generator.cfg.ngf == tiny_config.model.ngf
    assert any(issubclass(w.category, Recovered) and "latest.pt" in str(w.message) for w in caught)
