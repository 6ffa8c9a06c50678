"""Resume state and the inference export, both written atomically and loaded without pickle code.

A checkpoint is a dict of state dicts, tensors and plain values, so `torch.load(weights_only=True)`
reads it. The export is `generator.safetensors` + `generator.json` (model config): all that
sampling needs, kept apart from the much larger resume state.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from dcgan.config import ConfigError, ModelConfig, from_dict
from dcgan.images import atomic_write
from dcgan.models import Generator
from dcgan.rundir import latest_checkpoint

FORMAT_VERSION = 1
EXPORT_NAME = "generator.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint or export is missing, unreadable or of an unknown format."""


def save_checkpoint(state: dict[str, Any], *paths: str | Path) -> Path:
    """Write `state` (plus the format version) to each path via a temp file and rename.

    The state is serialised once, however many copies are written. Returns the last path.
    """
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buffer)
    data = buffer.getvalue()
    return [atomic_write(p, lambda f: f.write(data)) for p in paths][-1]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`: a file that would run code is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many exception types for damaged or hostile files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot load checkpoint {path}: {first}") from None
    version = state.get("format_version") if isinstance(state, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this dcgan reads version "
            f"{FORMAT_VERSION}"
        )
    return state


def save_weights(module: torch.nn.Module, path: str | Path) -> Path:
    """Write a module's state dict as safetensors (CPU, contiguous), atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    return atomic_write(path, lambda f: f.write(save(tensors)))


def export_generator(
    generator: Generator, run_dir: str | Path, extra: dict | None = None, name: str = "generator"
) -> Path:
    """Write `{name}.safetensors` and `{name}.json` (model config) into `run_dir`."""
    run_dir = Path(run_dir)
    meta = {"format_version": FORMAT_VERSION, "model": vars(generator.cfg).copy(), **(extra or {})}
    atomic_write(run_dir / f"{name}.json", lambda f: f.write(json.dumps(meta, indent=2).encode()))
    return save_weights(generator, run_dir / f"{name}.safetensors")


def load_export(path: str | Path) -> tuple[Generator, dict[str, Any]]:
    """Rebuild G from an export: `path` is the .safetensors file or the directory holding it."""
    path = Path(path)
    weights = path / EXPORT_NAME if path.is_dir() else path
    meta_path = weights.with_suffix(".json")
    if not weights.is_file() or not meta_path.is_file():
        raise CheckpointError(
            f"no generator export at {path}: expected {weights.name} and {meta_path.name}"
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{meta_path}: unknown format version {meta.get('format_version')!r}")
    try:
        model_cfg = from_dict({"model": meta["model"]}, str(meta_path)).model
    except (ConfigError, KeyError) as e:
        raise CheckpointError(f"{meta_path}: invalid model config ({e})") from None
    generator = Generator(model_cfg)
    generator.load_state_dict(load_file(weights))
    return generator, meta


def model_config_of(state: dict[str, Any]) -> ModelConfig:
    """The ModelConfig stored in a checkpoint's resolved config."""
    return from_dict(state["config"], "checkpoint config").model


def load_generator(source: str | Path) -> tuple[Generator, str]:
    """The sampling G (its moving average when kept) and its z distribution, from a run
    directory, a `.safetensors` export or a `.pt` checkpoint.

    A run directory is read through its export, which is refreshed with every checkpoint.
    """
    source = Path(source)
    if source.suffix == ".pt":
        state = load_checkpoint(source)
        generator = Generator(model_config_of(state))
        # the moving average is what the run samples from, when it kept one
        generator.load_state_dict(state.get("ema") or state["generator"])
        return generator, state["config"]["train"]["z_dist"]
    if source.is_dir() and not (source / EXPORT_NAME).is_file():
        latest = latest_checkpoint(source)
        if latest.is_file():
            return load_generator(latest)
    generator, meta = load_export(source)
    return generator, meta.get("z_dist", "normal")
