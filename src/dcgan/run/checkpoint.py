"""Resume state and the inference export, both written atomically and loaded without pickle code.

A checkpoint (`Checkpoint`, the one owner of its keys) is a dict of state dicts, tensors and plain
values, so `torch.load(weights_only=True)` reads it. The export is `generator.safetensors` +
`generator.json` (model config): all that sampling needs, kept apart from the much larger resume
state.
"""

from __future__ import annotations

import io
import json
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from dcgan.config import ModelConfig, from_dict
from dcgan.errors import CheckpointError, ConfigError
from dcgan.fsio import atomic_write
from dcgan.nn.models import Generator
from dcgan.run.rundir import latest_checkpoint

FORMAT_VERSION = 1
EXPORT_NAME = "generator.safetensors"


@dataclass
class Checkpoint:
    """A run's resume state: what `latest.pt` and `step-NNNNNN.pt` hold (format 1).

    This class is the one owner of the checkpoint's keys: training builds one, resume, the API
    and generation read its fields. Every value is a tensor, a state dict or a plain value, so
    `torch.load(weights_only=True)` reads the file.
    """

    config: dict[str, Any]  # the run's resolved config, nested (`config.to_dict`)
    step: int
    generator: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor]
    opt_g: dict[str, Any]
    opt_d: dict[str, Any]
    fixed_z: torch.Tensor  # (num_samples, nz): the preview grid's noise
    rng: dict[str, Any]  # "torch", "noise" (the training noise) and, where CUDA is, "cuda"
    ema: dict[str, torch.Tensor] | None = None  # moving average of G, when the run keeps one
    best_fid: float | None = None  # lowest FID of --eval-every
    scalers: list[dict[str, Any]] | None = None  # fp16 loss scalers: [D's, G's]
    rollbacks: int = 0  # divergences recovered from by --on-nan rollback
    images_seen: int | None = None  # real images trained on, over all processes
    world: int = 1  # processes that trained it; any number may resume it
    augment_p: float | None = None  # the augmentation probability, when --augment is on
    ada_signal: list[float] | None = None  # ADA's [sum, count] of rt since its last adjustment

    def __post_init__(self) -> None:
        if self.images_seen is None:  # written before the field existed
            t = self.config["train"]
            self.images_seen = self.step * t["batch_size"] * t["d_steps"]

    @property
    def model_config(self) -> ModelConfig:
        """The architecture the weights belong to."""
        return from_dict({"model": self.config["model"]}, "checkpoint config").model

    @property
    def z_dist(self) -> str:
        return self.config["train"]["z_dist"]

    @property
    def sampling_weights(self) -> dict[str, torch.Tensor]:
        """G's weights that samples come from: the moving average when the run kept one."""
        return self.ema if self.ema is not None else self.generator

    def to_dict(self) -> dict[str, Any]:
        """The file's contents: every field by name, plus the format version."""
        return {
            "format_version": FORMAT_VERSION,
            **{f.name: getattr(self, f.name) for f in fields(self)},
        }

    @classmethod
    def from_dict(cls, saved: Any, path: Path) -> Checkpoint:
        """Check a loaded file's version and keys; errors name `path`."""
        version = saved.get("format_version") if isinstance(saved, dict) else None
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {path} has format version {version!r}; this dcgan reads version "
                f"{FORMAT_VERSION}"
            )
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING}
        keys = set(saved) - {"format_version"}
        if problems := sorted(required - keys) + sorted(keys - names):
            raise CheckpointError(
                f"checkpoint {path} is damaged or not from dcgan: unexpected or missing "
                f"{', '.join(map(repr, problems))}; resume from another step-*.pt of the run"
            )
        return cls(**{k: saved[k] for k in keys})


def save_checkpoint(checkpoint: Checkpoint, *paths: str | Path) -> Path:
    """Write `checkpoint` to each path via a temp file and rename.

    It is serialised once, however many copies are written. Returns the last path.
    """
    buffer = io.BytesIO()
    torch.save(checkpoint.to_dict(), buffer)
    data = buffer.getvalue()
    return [atomic_write(p, lambda f: f.write(data)) for p in paths][-1]


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint with `weights_only=True`: a file that would run code is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many exception types for damaged or hostile files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot load checkpoint {path}: {first}") from None
    return Checkpoint.from_dict(saved, path)


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


def load_generator(source: str | Path) -> tuple[Generator, str]:
    """The sampling G (its moving average when kept) and its z distribution, from a run
    directory, a `.safetensors` export or a `.pt` checkpoint.

    A run directory is read through its export, which is refreshed with every checkpoint.
    """
    source = Path(source)
    if source.suffix == ".pt":
        checkpoint = load_checkpoint(source)
        generator = Generator(checkpoint.model_config)
        generator.load_state_dict(checkpoint.sampling_weights)
        return generator, checkpoint.z_dist
    if source.is_dir() and not (source / EXPORT_NAME).is_file():
        latest = latest_checkpoint(source)
        if latest.is_file():
            return load_generator(latest)
    generator, meta = load_export(source)
    return generator, meta.get("z_dist", "normal")
