"""The Hugging Face Hub layout of a generator export: `config.json` + `model.safetensors` +
`README.md` with the Hub's metadata header, as `huggingface_hub`'s ModelHubMixin expects.

The files hold exactly what a run's export holds (`generator.json`, `generator.safetensors`
and its model card), under the Hub's names, so `load_export` and every command that takes an
export read either. Pushing is `huggingface-cli upload USER/NAME DIR`; loading a repo id goes
through `huggingface_hub` (the `hub` extra), offline from its cache with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dcgan.errors import ConfigError
from dcgan.fsio import atomic_write_text
from dcgan.nn.models import Generator
from dcgan.run.card import CARD_NAME, HUB_STEM, SAMPLES_COPY, evaluations, write_card
from dcgan.run.checkpoint import HUB_CONFIG, HUB_WEIGHTS, export_generator, is_hub_folder
from dcgan.run.rundir import read_config

HUB_FILES = [HUB_CONFIG, HUB_WEIGHTS, CARD_NAME, SAMPLES_COPY.format(name=HUB_STEM)]
TAGS = ["dcgan", "gan", "pytorch", "image-generation"]


def export_hub(
    generator: Generator, directory: str | Path, extra: dict[str, Any], run: Path | None
) -> Path:
    """Write the Hub folder `directory` for `generator` (settings `extra`: z_dist, class
    names, step), its card from the figures of run directory `run`. Written beside and moved
    in whole, so an interrupted export leaves no half folder; an existing folder is refused."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"--out: {directory} exists and is not empty; name a new folder")
    directory.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        export_generator(generator, work, extra, name=HUB_STEM, run=run)
        write_card(work, HUB_STEM, run, generator)
        card = (work / CARD_NAME).read_text()
        atomic_write_text(work / CARD_NAME, front_matter(run) + card)
        os.replace(work / f"{HUB_STEM}.json", work / HUB_CONFIG)
        if directory.exists():
            directory.rmdir()
        os.replace(work, directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return directory


def front_matter(run: Path | None) -> str:
    """The Hub's YAML metadata header of the card: library, tags, dataset and metrics."""
    lines = ["---", "library_name: dcgan", f"tags: [{', '.join(TAGS)}]"]
    lines.append("pipeline_tag: unconditional-image-generation")
    if run is not None:
        try:
            dataset = read_config(run).data.dataset
        except (OSError, ConfigError):
            dataset = None
        if dataset and dataset not in ("fake", "folder", "npz", "hdf5"):
            lines.append(f"datasets: [{dataset}]")
        measured = sorted({k for r in evaluations(run) for k in r["metrics"] if k.isidentifier()})
        if measured:
            lines.append(f"metrics: [{', '.join(measured)}]")
    return "\n".join([*lines, "---", "", ""])


def hub_folder(model_id: str, **download: Any) -> Path:
    """The local folder of `model_id`: a Hub-layout directory as it is, or a Hub repo id
    fetched (or found in the local cache, with HF_HUB_OFFLINE=1) by `huggingface_hub`."""
    path = Path(model_id)
    if path.is_dir():
        if not is_hub_folder(path):
            raise ConfigError(f"{path}: no {HUB_CONFIG} + {HUB_WEIGHTS} here (a Hub folder)")
        return path
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ConfigError(
            f"{model_id}: not a folder; loading a Hub repo id needs huggingface_hub "
            "(pip install 'dcgan[hub]')"
        ) from None
    fetched = snapshot_download(repo_id=model_id, allow_patterns=HUB_FILES, **download)
    return Path(fetched)


class LocalHubMixin:
    """`save_pretrained(dir)` and `from_pretrained(dir)` for local Hub folders where
    huggingface_hub is not installed (its ModelHubMixin takes this place with the `hub`
    extra, adding repo ids, the Hub's cache and pushing). The class supplies
    `_save_pretrained(path)` and `_from_pretrained(model_id=...)`, as for the mixin."""

    def __init_subclass__(cls, **_card_metadata: Any) -> None:  # the mixin's class keywords
        super().__init_subclass__()

    def save_pretrained(self, save_directory: str | Path, **_ignored: Any) -> None:
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_pretrained(directory)  # type: ignore[attr-defined]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **download: Any):
        return cls._from_pretrained(  # type: ignore[attr-defined]
            model_id=str(pretrained_model_name_or_path), **download
        )
