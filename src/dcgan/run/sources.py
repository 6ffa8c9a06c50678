"""The one loader of runs, exports and checkpoints, for the commands and the Python API.

What it reads, working around a damaged file where the run holds the same content elsewhere:
the sampling generator (`load_sampler`: the export, else the latest checkpoint), both networks
(`load_models`, for `DCGAN.load`), the settings (config.yaml, else a checkpoint's copy) and the
checkpoint a resume continues from (latest.pt, else the newest kept step-*.pt that loads).

Each work-around is a `Recovered` warning that names the damaged file and what was used instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

from dcgan.config import Z_DISTRIBUTIONS, Config, from_saved
from dcgan.errors import CheckpointError, ConfigError, Recovered, brief
from dcgan.nn.models import Discriminator, Generator
from dcgan.run.checkpoint import (
    D_EXPORT_NAME,
    EXPORT_NAME,
    Checkpoint,
    is_hub_folder,
    load_checkpoint,
    load_export,
    load_into,
    load_weights,
)
from dcgan.run.rundir import (
    CONFIG_FILE,
    kept_checkpoints,
    latest_checkpoint,
    read_config,
    write_config,
)


class Sampler(NamedTuple):
    """What generation needs from a source: the sampling G, its z distribution and, for a
    conditional model, its class names (one per class)."""

    generator: Generator
    z_dist: str
    class_names: tuple[str, ...] = ()


def load_generator(source: str | Path) -> tuple[Generator, str]:
    """The sampling G (its moving average when kept) and its z distribution, from a run
    directory, a `.safetensors` export or a `.pt` checkpoint (see `load_sampler`)."""
    found = load_sampler(source)
    return found.generator, found.z_dist


def load_sampler(source: str | Path) -> Sampler:
    """The sampling G, its z distribution and class names from a run directory, a
    `.safetensors` export, a Hub-layout folder (`dcgan export --format hub`) or a `.pt`
    checkpoint.

    A run directory is read through its export, which is refreshed with every checkpoint; when
    the export is damaged, its latest checkpoint holds the same weights (a `Recovered` warning).
    """
    source = Path(source)
    if source.suffix == ".pt":
        return checkpoint_generator(source)
    if not source.is_dir() or is_hub_folder(source):
        return _export_sampler(source)
    latest = latest_checkpoint(source)
    if not (source / EXPORT_NAME).is_file():
        if latest.is_file():
            return checkpoint_generator(latest)
        return _export_sampler(source / EXPORT_NAME)  # the error says what is missing
    try:
        return _export_sampler(source)
    except CheckpointError as damaged:
        if not latest.is_file():
            raise
        try:
            found = checkpoint_generator(latest)
        except CheckpointError as also:
            raise CheckpointError(f"{damaged}; and {also}") from None
        warnings.warn(f"{damaged}; used {latest}, which holds the same weights", Recovered, 2)
        return found


def _export_sampler(path: Path) -> Sampler:
    generator, meta = load_export(path)
    return Sampler(generator, meta["z_dist"], _names(meta))


def checkpoint_generator(path: Path) -> Sampler:
    """The sampling G of checkpoint `path` (its moving average when kept), its z_dist and
    class names."""
    checkpoint = load_checkpoint(path)
    try:
        generator = Generator(checkpoint.model_config)
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {path}: invalid model config ({brief(e)})") from None
    load_into(generator, checkpoint.sampling_weights, path)
    if checkpoint.z_dist not in Z_DISTRIBUTIONS:
        raise CheckpointError(f"checkpoint {path}: unknown z_dist {checkpoint.z_dist!r}")
    return Sampler(generator, checkpoint.z_dist, tuple(checkpoint.class_names or ()))


class Models(NamedTuple):
    """Both networks of a run or of `DCGAN.save()` output, with their settings. `ema` is the
    moving average of G when the source kept one apart from G; `discriminator` is None when
    the source holds no D (a run with only an export); `run_dir` is the run the networks came
    from (None for `save()` output, whose weights are copies)."""

    config: Config
    generator: Generator
    discriminator: Discriminator | None
    ema: Generator | None
    class_names: tuple[str, ...]
    run_dir: Path | None


def load_models(directory: str | Path) -> Models:
    """G, D (and G's moving average) from `DCGAN.save()` output or a run directory.

    Unlike `load_sampler`, which needs only the sampling G (the export first), this needs D
    and the raw G: `save()` output holds them beside the export, a run only in its latest
    checkpoint; a run with only an export gets G from it and no D. Each file is read once.
    """
    directory = Path(directory)
    cfg = read_run_config(directory)
    latest = latest_checkpoint(directory)
    has_export = (directory / EXPORT_NAME).is_file()
    if has_export and (directory / D_EXPORT_NAME).is_file():
        generator, meta = load_export(directory)
        discriminator = Discriminator(cfg.model)
        d_path = directory / D_EXPORT_NAME
        load_into(discriminator, load_weights(d_path, fix="save the model again"), d_path)
        return Models(cfg, generator, discriminator, None, _names(meta), None)
    if latest.is_file():
        checkpoint = load_checkpoint(latest)
        generator, discriminator, ema = Generator(cfg.model), Discriminator(cfg.model), None
        load_into(generator, checkpoint.generator, latest)
        load_into(discriminator, checkpoint.discriminator, latest)
        if checkpoint.ema is not None:
            ema = Generator(cfg.model)
            load_into(ema, checkpoint.ema, latest)
        names = tuple(checkpoint.class_names or ())
        return Models(cfg, generator, discriminator, ema, names, directory)
    if has_export:
        generator, meta = load_export(directory)
        return Models(cfg, generator, None, None, _names(meta), directory)
    raise CheckpointError(f"{directory} holds no generator export and no checkpoint")


def _names(meta: dict) -> tuple[str, ...]:
    """An export's class names (none for an unconditional model)."""
    return tuple(meta.get("class_names") or ())


def read_run_config(run_dir: Path, repair: bool = False) -> Config:
    """The run's config.yaml; when that is damaged, the settings its newest loadable checkpoint
    saved (a `Recovered` warning), written back to config.yaml when `repair` is asked."""
    try:
        return read_config(run_dir)
    except ConfigError as damaged:
        if not (Path(run_dir) / CONFIG_FILE).is_file():
            raise
        kept = kept_checkpoints(run_dir)
        for path in [latest_checkpoint(run_dir), *reversed(kept.values())]:
            try:
                cfg = from_saved(load_checkpoint(path).config, f"{path} config")
            except (CheckpointError, ConfigError):
                continue
            if repair:
                write_config(Path(run_dir), cfg)
            done = "rewrote it from" if repair else "used"
            warnings.warn(f"{damaged}; {done} the settings saved in {path}", Recovered, 2)
            return cfg
        raise


def choose_checkpoint(
    run_dir: Path, from_step: int | None = None
) -> tuple[Checkpoint, Path, str | None]:
    """The checkpoint a resume continues from, its path, and a note when it is not latest.pt.

    `from_step` picks a kept `step-NNNNNN.pt`. Otherwise latest.pt, and when that does not
    load, the newest kept checkpoint that does: each candidate is verified by loading it.
    """
    kept = kept_checkpoints(run_dir)
    if from_step is not None:
        if from_step not in kept:
            steps = ", ".join(map(str, kept)) or "none"
            raise ConfigError(
                f"--from-step: {run_dir} kept no checkpoint of step {from_step} "
                f"(checkpoints/step-{from_step:06d}.pt); kept steps: {steps}"
            )
        return _load_kept(kept[from_step], from_step), kept[from_step], None
    latest = latest_checkpoint(run_dir)
    problems = []
    for step, path in [(None, latest), *reversed(kept.items())]:
        try:
            saved = _load_kept(path, step)
        except CheckpointError as e:
            problems.append(str(e))
            continue
        if path == latest:
            return saved, path, None
        note = f"{problems[0]}; resumed from {path.name}, the newest intact checkpoint"
        return saved, path, f"{note} (step {saved.step})"
    shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if problems[3:] else "")
    raise CheckpointError(
        f"cannot resume {run_dir}: none of its checkpoints loads ({shown}); start a new run "
        f"with its settings: dcgan train --config {Path(run_dir) / CONFIG_FILE}"
    )


def _load_kept(path: Path, step: int | None) -> Checkpoint:
    """Checkpoint `path`, loaded, and of step `step` when that is in its name."""
    saved = load_checkpoint(path)
    if step is not None and saved.step != step:
        raise CheckpointError(f"checkpoint {path} holds step {saved.step}, not {step}")
    return saved
