"""The Hugging Face Hub layout: `save_pretrained` / `from_pretrained`, `dcgan export --format
hub`, every command reading the folder, and a repo id found offline in the local Hub cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_flags
from dcgan import DCGAN
from dcgan.cli import main
from dcgan.images import read_png
from dcgan.run.hub import LocalHubMixin


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    assert main(["train", *tiny_flags(root)]) == 0
    return next((root / "runs").glob("0*"))


def images(source: Path | str, out: Path) -> list[torch.Tensor]:
    assert main(["generate", str(source), "--num", "6", "--seed", "4", "--out", str(out)]) == 0
    return [read_png(p) for p in sorted(out.glob("*.png"))]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) == 6 and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.slow
def test_save_pretrained_writes_the_hub_layout_and_loads_back(run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "my-dcgan"
    DCGAN.load(run).save_pretrained(folder)
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: dcgan\n") and "\n---\n" in card[4:]
    assert "pipeline_tag: unconditional-image-generation" in card
    assert 'DCGAN.from_pretrained("USER/NAME")' in card and ".tmp" not in card
    gan = DCGAN.from_pretrained(folder)
    assert torch.equal(gan.generate_image(seed=2), DCGAN.load(run).generate_image(seed=2))
    assert same(images(folder, tmp_path / "a"), images(run, tmp_path / "b"))


def test_export_format_hub_is_read_by_every_command(run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "hub"
    assert main(["export", str(run), "--format", "hub", "--out", str(folder)]) == 0
    assert same(images(folder, tmp_path / "a"), images(run, tmp_path / "b"))
    out = tmp_path / "path.png"
    assert main(["interpolate", str(folder), "0:3", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    # an existing folder is never written into
    assert main(["export", str(run), "--format", "hub", "--out", str(folder)]) == 2


def test_without_huggingface_hub_local_folders_still_work(run: Path, tmp_path: Path) -> None:
    class Local(LocalHubMixin):  # the fallback DCGAN gets when the extra is not installed
        _save_pretrained = DCGAN._save_pretrained
        _from_pretrained = classmethod(DCGAN._from_pretrained.__func__)

    folder = tmp_path / "local"
    gan = DCGAN.load(run)
    Local.save_pretrained(gan, folder)
    assert same(images(folder, tmp_path / "a"), images(run, tmp_path / "b"))


@pytest.mark.slow
def test_a_repo_id_loads_offline_from_the_local_hub_cache(run: Path, tmp_path: Path) -> None:
    """The cache as huggingface_hub lays it out after a download of USER/NAME at one commit;
    HF_HUB_OFFLINE=1, so nothing is fetched."""
    pytest.importorskip("huggingface_hub")
    folder = tmp_path / "export"
    DCGAN.load(run).save_pretrained(folder)
    cache, commit = tmp_path / "hf-cache", "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--someone--tiny-dcgan"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    out = tmp_path / "from-cache"
    code = (
        "import sys; from dcgan import DCGAN; "
        "DCGAN.from_pretrained('someone/tiny-dcgan').generate_images(6, sys.argv[1], seed=4)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = [read_png(p) for p in sorted(out.glob("*.png"))]
    assert same(loaded, images(run, tmp_path / "b"))
