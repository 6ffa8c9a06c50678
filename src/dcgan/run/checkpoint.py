"""Resume state and the inference export, both written atomically and loaded without pickle code.

A checkpoint (`Checkpoint`, the one owner of its keys) is a dict of state dicts, tensors and plain
values, so `torch.load(weights_only=True)` reads it. The export is `generator.safetensors` +
`generator.json` (model config): all that sampling needs, kept apart from the much larger resume
state.

Whatever damage a file has, loading it ends in weights that are exactly the saved ones or in a
one-line `CheckpointError` naming the file: a checkpoint's zip records are checked against their
CRC-32 (torch does not) and against the file's size (no zip bomb), and every weights file carries
a SHA-256 of its tensors and the settings they need.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load, save

from dcgan.config import Z_DISTRIBUTIONS, ModelConfig, from_dict, from_saved, model_dict
from dcgan.errors import CheckpointError, ConfigError, brief, shown
from dcgan.fsio import atomic_write, check_stored_zip
from dcgan.nn.models import Discriminator, Generator
from dcgan.run.card import HUB_STEM, write_card

FORMAT_VERSION = 1
EXPORT_NAME = "generator.safetensors"
D_EXPORT_NAME = "discriminator.safetensors"  # beside the export in `DCGAN.save()` output
# The Hub layout of the same export (huggingface_hub's ModelHubMixin): weights and settings
HUB_WEIGHTS, HUB_CONFIG = f"{HUB_STEM}.safetensors", "config.json"


def is_hub_folder(path: Path) -> bool:
    """A directory holding a Hub-layout export and no run export."""
    return (
        path.is_dir()
        and (path / HUB_WEIGHTS).is_file()
        and (path / HUB_CONFIG).is_file()
        and not (path / EXPORT_NAME).is_file()
    )


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
    class_names: list[str] | None = None  # a conditional run's class names, from its data

    def __post_init__(self) -> None:
        if self.images_seen is None:  # written before the field existed
            t = self.config["train"]
            self.images_seen = self.step * t["batch_size"] * t["d_steps"]

    @property
    def model_config(self) -> ModelConfig:
        """The architecture the weights belong to."""
        return from_saved({"model": self.config["model"]}, "checkpoint config").model

    @property
    def z_dist(self) -> str:
        return self.config["train"].get("z_dist", "normal")

    @property
    def sampling_weights(self) -> dict[str, torch.Tensor]:
        """G's weights that samples come from: the moving average when the run kept one."""
        return self.ema if self.ema is not None else self.generator

    def to_dict(self) -> dict[str, Any]:
        """The file's contents: every field by name, plus the format version (an unconditional
        run's file has no class names, as before they existed)."""
        saved = {f.name: getattr(self, f.name) for f in fields(self)}
        if saved["class_names"] is None:
            del saved["class_names"]
        return {"format_version": FORMAT_VERSION, **saved}

    @classmethod
    def from_dict(cls, saved: Any, path: Path) -> Checkpoint:
        """Check a loaded file's version, keys and value types; errors name `path`."""
        version = saved.get("format_version") if isinstance(saved, dict) else None
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {path} has format version {version!r}; this dcgan reads version "
                f"{FORMAT_VERSION}"
            )
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING}
        keys = set(saved) - {"format_version"}
        problems = sorted(map(repr, (required - keys) | (keys - names)))
        if not problems:
            problems = [k for k, ok in _shape_checks(saved) if not ok]
        if problems:
            raise CheckpointError(
                f"checkpoint {path} is damaged or not from dcgan: unexpected, missing or "
                f"malformed {', '.join(problems)}; resume from another step-*.pt of the run"
            )
        try:
            return cls(**{k: saved[k] for k in keys})
        except (KeyError, TypeError) as e:  # a config without the train settings it needs
            raise CheckpointError(
                f"checkpoint {path} is damaged or not from dcgan: malformed config ({brief(e)})"
            ) from None


def _shape_checks(saved: dict[str, Any]) -> list[tuple[str, bool]]:
    """(key, whether its value has the type a checkpoint holds there)."""

    def weights(value: Any) -> bool:
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
        )

    config, rng = saved["config"], saved["rng"]
    return [
        (
            "config",
            isinstance(config, dict)
            and all(isinstance(config.get(s), dict) for s in ("model", "train")),
        ),
        ("step", isinstance(saved["step"], int) and saved["step"] >= 0),
        ("generator", weights(saved["generator"])),
        ("discriminator", weights(saved["discriminator"])),
        ("ema", saved.get("ema") is None or weights(saved["ema"])),
        ("opt_g", isinstance(saved["opt_g"], dict) and "param_groups" in saved["opt_g"]),
        ("opt_d", isinstance(saved["opt_d"], dict) and "param_groups" in saved["opt_d"]),
        ("fixed_z", isinstance(saved["fixed_z"], torch.Tensor) and saved["fixed_z"].ndim == 2),
        ("class_names", _names_or_none(saved.get("class_names"))),
        (
            "rng",
            isinstance(rng, dict)
            and all(isinstance(rng.get(k), torch.Tensor) for k in ("torch", "noise")),
        ),
    ]


def _names_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def save_checkpoint(checkpoint: Checkpoint, *paths: str | Path) -> Path:
    """Write `checkpoint` to each path via a temp file and rename.

    It is serialised once, however many copies are written. Returns the last path.
    """
    buffer = io.BytesIO()
    torch.save(checkpoint.to_dict(), buffer)
    data = buffer.getvalue()
    return [atomic_write(p, lambda f: f.write(data)) for p in paths][-1]


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint with `weights_only=True`: a file that would run code is refused, and
    so is one whose zip records fail `check_stored_zip` (damage, or a zip bomb)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        check_stored_zip(path)  # torch.load checks no CRC and trusts sizes
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many exception types for damaged or hostile files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot load checkpoint {path}: {brief(first)}") from None
    checkpoint = Checkpoint.from_dict(saved, path)
    # Its saved settings must fit its own weights, or a resume or sample would build networks
    # of the wrong size (or of terabytes); a CheckpointError lets callers fall back to another
    check_fits(lambda: Generator(checkpoint.model_config), checkpoint.generator, path, "generator")
    d_weights = checkpoint.discriminator
    check_fits(lambda: Discriminator(checkpoint.model_config), d_weights, path, "discriminator")
    return checkpoint


def weights_sha256(tensors: dict[str, torch.Tensor], settings: str = "") -> str:
    """SHA-256 of named tensors (names, dtypes, shapes, bytes) and the settings they need."""
    digest = hashlib.sha256(settings.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_weights(module: torch.nn.Module, path: str | Path, settings: str = "") -> Path:
    """Write a module's state dict as safetensors (CPU, contiguous), atomically, with the
    SHA-256 of its tensors and `settings` in the file's metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    metadata = {"sha256": weights_sha256(tensors, settings)}
    return atomic_write(path, lambda f: f.write(save(tensors, metadata=metadata)))


def load_weights(path: Path, settings: str = "", fix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a `save_weights` file, checked against its SHA-256 (files written before
    it was recorded load unchecked); damage is a CheckpointError naming `path`, then `fix`."""
    fix = f"; {fix}" if fix else ""
    try:
        data = path.read_bytes()
        tensors = load(data)
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    except OSError:
        raise
    except Exception as e:  # safetensors, JSON and UnicodeDecode errors of a damaged file
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({brief(e)}){fix}"
        ) from None
    expected = (header.get("__metadata__") or {}).get("sha256")
    if expected is not None and expected != weights_sha256(tensors, settings):
        raise CheckpointError(
            f"{path}: its weights (or the settings beside them) fail their SHA-256 check: the "
            f"file is damaged{fix}"
        )
    return tensors


def check_fits(
    build: Callable[[], torch.nn.Module], weights: dict[str, torch.Tensor], path: Path, what: str
) -> None:
    """Raise CheckpointError unless `weights` fit what `build` makes from the saved settings,
    checked on a copy on the meta device, which allocates nothing: settings that do not fit
    their weights (damaged, or hostile: 512 px at width 8192 asks for terabytes) are named
    before a byte is allocated for them."""
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    except (ConfigError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: invalid {what} settings ({brief(e)})") from None
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if shapes != found:
        key = next((k for k in shapes if shapes[k] != found.get(k)), None) or next(iter(found))
        raise CheckpointError(
            f"{path}: its {what} settings do not fit its weights ({shown(key)}: "
            f"{shapes.get(key)} in the settings, {found.get(key)} in the weights); the file is "
            "damaged or its settings were changed"
        )


def load_into(module: torch.nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """`module.load_state_dict(weights)`; weights of another shape are one line naming `path`."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{path}: its weights do not fit a {type(module).__name__} of its settings "
            f"({brief(e, 120)}); the file is damaged or from another model"
        ) from None


def _export_settings(model: dict[str, Any], z_dist: str, names: list[str] | None = None) -> str:
    """What an export's weights need besides themselves (and a conditional model's class
    names), as their checksum covers it."""
    settings = {"model": model, "z_dist": z_dist}
    if names is not None:
        settings["class_names"] = names
    return json.dumps(settings, sort_keys=True)


def export_generator(
    generator: Generator,
    run_dir: str | Path,
    extra: dict | None = None,
    name: str = "generator",
    run: str | Path | None = None,
) -> Path:
    """Write `{name}.safetensors` and `{name}.json` (model config) into `run_dir`, and for the
    main export (`generator`) its model card README.md, from the figures of run directory `run`
    (default: `run_dir` when it is a run)."""
    run_dir = Path(run_dir)
    model = model_dict(generator.cfg)
    meta = {"format_version": FORMAT_VERSION, "model": model, **(extra or {})}
    atomic_write(run_dir / f"{name}.json", lambda f: f.write(json.dumps(meta, indent=2).encode()))
    settings = _export_settings(model, meta.get("z_dist", "normal"), meta.get("class_names"))
    path = save_weights(generator, run_dir / f"{name}.safetensors", settings)
    if name == Path(EXPORT_NAME).stem:
        write_card(run_dir, name, run, generator)
    return path


EXPORT_FIX = "use the run directory or a checkpoint .pt as the source instead"


def load_export(path: str | Path) -> tuple[Generator, dict[str, Any]]:
    """Rebuild G from an export: `path` is the .safetensors file or the directory holding it,
    a run's (generator.safetensors + .json) or a Hub folder (model.safetensors + config.json,
    the same content under the names `huggingface_hub` expects; see `run.hub`)."""
    path = Path(path)
    weights = path
    if path.is_dir():
        weights = path / (HUB_WEIGHTS if is_hub_folder(path) else EXPORT_NAME)
    meta_path = weights.with_suffix(".json")
    if weights.name == HUB_WEIGHTS and not meta_path.is_file():  # the Hub's name for it
        meta_path = weights.with_name(HUB_CONFIG)
    if not weights.is_file() or not meta_path.is_file():
        raise CheckpointError(
            f"no generator export at {path}: expected {weights.name} and {meta_path.name}"
        )
    meta = read_export_meta(meta_path)
    names = meta.get("class_names")
    settings = _export_settings(model_dict(meta["model"]), meta["z_dist"], names)
    tensors = load_weights(weights, settings, EXPORT_FIX)
    check_fits(lambda: Generator(meta["model"]), tensors, weights, "generator")
    generator = Generator(meta["model"])
    load_into(generator, tensors, weights)
    return generator, {**meta, "model": model_dict(meta["model"])}


def read_export_meta(path: Path) -> dict[str, Any]:
    """An export's JSON, its model config validated (a ModelConfig under "model") and its
    z distribution checked; damage is one line naming `path`."""
    try:
        meta = json.loads(path.read_bytes())
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise CheckpointError(f"{path}: not valid JSON ({brief(e)}); {EXPORT_FIX}") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}: unknown format version {version!r}; {EXPORT_FIX}")
    try:
        model_cfg = from_dict({"model": meta["model"]}, str(path)).model
    except (ConfigError, KeyError) as e:
        raise CheckpointError(f"{path}: invalid model config ({brief(e)}); {EXPORT_FIX}") from None
    z_dist = meta.get("z_dist", "normal")
    if z_dist not in Z_DISTRIBUTIONS:
        raise CheckpointError(f"{path}: unknown z_dist {z_dist!r}; {EXPORT_FIX}")
    names = meta.get("class_names")
    if names is not None and not (_names_or_none(names) and len(names) == model_cfg.num_classes):
        raise CheckpointError(f"{path}: class_names do not match the model; {EXPORT_FIX}")
    return {**meta, "model": model_cfg, "z_dist": z_dist}
