"""The Python API: `DCGAN(config).train(...)`, `.save(dir)`, `DCGAN.load(dir)`, generation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dcgan import latent
from dcgan.config import Config, from_dict, merge, resolve, validate
from dcgan.errors import CheckpointError, ConfigError
from dcgan.nn.models import Discriminator, Generator, summary
from dcgan.run import rundir
from dcgan.run.checkpoint import (
    EXPORT_NAME,
    export_generator,
    load_checkpoint,
    load_export,
    load_into,
    load_weights,
    save_weights,
)
from dcgan.run.sources import read_run_config
from dcgan.sampling import generate, write_images
from dcgan.training.loop import TrainResult, train

D_EXPORT = "discriminator.safetensors"


class DCGAN:
    """A generator/discriminator pair with its config.

    >>> gan = DCGAN({"train": {"steps": 2}, "data": {"dataset": "fake"}})  # doctest: +SKIP
    >>> gan.train()                                                          # doctest: +SKIP
    >>> img = gan.generate_image(seed=3)  # (C, S, S) float in [0, 1]       # doctest: +SKIP
    """

    def __init__(self, config: Config | dict | str | Path | None = None, **overrides: Any):
        """config: a Config, a nested dict, or a YAML file; overrides: leaf settings by name."""
        if isinstance(config, (str, Path)):
            cfg = resolve(config, overrides)
        else:
            base = config if isinstance(config, Config) else from_dict(config or {})
            cfg = validate(merge(base, overrides, "DCGAN()"))
        self.config = cfg
        torch.manual_seed(cfg.train.seed)
        self.generator = Generator(cfg.model)
        self.discriminator = Discriminator(cfg.model)
        self.ema: Generator | None = None  # moving average of G's weights, after training
        self.run_dir: Path | None = None

    @property
    def sampler(self) -> Generator:
        """The generator images come from: the moving average of G when there is one."""
        return self.ema if self.ema is not None else self.generator

    def summary(self) -> str:
        """Print (and return) each layer's output shape and parameter count for G and D."""
        text = summary(self.generator, self.discriminator)
        print(text)
        return text

    def train(
        self,
        dataset: Any = None,
        epochs: int | None = None,
        steps: int | None = None,
        **overrides: Any,
    ) -> TrainResult:
        """Train on `dataset`: a dataset name, images (N, C, H, W) uint8 or float in [-1, 1], or
        None for the configured dataset. Writes a run directory like `dcgan train`."""
        changes = dict(overrides)
        if isinstance(dataset, str):
            changes["dataset"], dataset = dataset, None
        if epochs is not None:
            changes.update(epochs=epochs, steps=None)
        if steps is not None:
            changes["steps"] = steps
        self.config = validate(merge(self.config, changes, "DCGAN.train()"))
        result = train(self.config, dataset, models=(self.generator, self.discriminator))
        self.generator, self.discriminator, self.run_dir = (
            result.generator,
            result.discriminator,
            result.run_dir,
        )
        self.ema = result.ema
        return result

    def save(self, directory: str | Path) -> Path:
        """Write config.yaml, the generator export and D's weights into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        rundir.write_config(directory, self.config)
        export_generator(self.sampler, directory, {"z_dist": self.config.train.z_dist})
        save_weights(self.discriminator, directory / D_EXPORT)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> DCGAN:
        """Rebuild from `save()` output or a run directory (export, else latest checkpoint)."""
        directory = Path(directory)
        gan = cls(read_run_config(directory))
        latest = rundir.latest_checkpoint(directory)
        has_export = (directory / EXPORT_NAME).is_file()
        if has_export and (directory / D_EXPORT).is_file():
            gan.generator = load_export(directory)[0]
            d_weights = load_weights(directory / D_EXPORT, fix="save the model again")
            load_into(gan.discriminator, d_weights, directory / D_EXPORT)
        elif latest.is_file():
            checkpoint = load_checkpoint(latest)
            load_into(gan.generator, checkpoint.generator, latest)
            load_into(gan.discriminator, checkpoint.discriminator, latest)
            if checkpoint.ema is not None:
                gan.ema = Generator(gan.config.model)
                load_into(gan.ema, checkpoint.ema, latest)
            gan.run_dir = directory
        elif has_export:
            gan.generator = load_export(directory)[0]  # D keeps its fresh initialisation
            gan.run_dir = directory
        else:
            raise CheckpointError(f"{directory} holds no generator export and no checkpoint")
        return gan

    def generate_images(
        self, count: int, save_dir: str | Path, seed: int = 0, batch_size: int = 64
    ) -> list[Path]:
        """Write images 0..count-1 of `seed` as PNGs into `save_dir`; return their paths."""
        if count < 1:
            raise ConfigError(f"count: {count} must be at least 1")
        return write_images(
            self.sampler, count, save_dir, seed, batch_size, self.config.train.z_dist
        )

    def generate_image(self, seed: int = 0, index: int = 0) -> torch.Tensor:
        """Image `index` of `seed` as a float tensor (C, S, S) in [0, 1]."""
        _, images = next(generate(self.sampler, [index], seed, 1, self.config.train.z_dist))
        return images[0].float() / 255.0

    # --- latent space: the same functions as `dcgan interpolate`, `arithmetic`, `walk`, `sweep`

    def interpolate(
        self,
        i: int,
        j: int,
        steps: int = 10,
        method: str | None = None,
        seed: int = 0,
        batch_size: int = 64,
    ) -> torch.Tensor:
        """Images from image `i` to image `j` of `seed`: float (steps, C, S, S) in [0, 1].

        The first and last are exactly `generate_image(seed, i)` and `generate_image(seed, j)`.
        `method`: "slerp" (the great circle; the default for normal z) or "lerp" (the straight
        line; the default for uniform z).
        """
        dist = self.config.train.z_dist
        images = latent.interpolate(self.sampler, [(i, j)], steps, method, seed, dist, batch_size)
        return _unit(images[0])

    def arithmetic(
        self,
        a: Sequence[int],
        b: Sequence[int],
        c: Sequence[int],
        seed: int = 0,
        variations: int = 8,
        noise: float = 0.25,
        batch_size: int = 64,
    ) -> latent.Arithmetic:
        """mean(A) - mean(B) + mean(C) on the z of images `a`, `b`, `c` of `seed` (the paper's
        figure 7). Returns float images in [0, 1]: `.exemplars` (three (n, C, S, S)), `.means`
        (3, C, S, S), `.result` (C, S, S) and `.variations` (variations, C, S, S), the result's
        z with `noise` times a seeded draw of z's distribution added."""
        record = latent.arithmetic(
            self.sampler, a, b, c, seed, variations, noise, self.config.train.z_dist, batch_size
        )
        return record.map(_unit)

    def walk(
        self,
        frames: int = 120,
        keys: int = 6,
        seed: int = 0,
        method: str | None = None,
        batch_size: int = 64,
    ) -> torch.Tensor:
        """A loop through images 0..keys-1 of `seed` and back to image 0 along great circles:
        float (frames, C, S, S) in [0, 1], frames about equally far apart in z, no jump from
        the last frame to the first."""
        dist = self.config.train.z_dist
        images = latent.walk(self.sampler, frames, keys, seed, method, dist, batch_size)
        return _unit(images)

    def sweep(
        self,
        index: int,
        dims: Sequence[int],
        low: float = -3.0,
        high: float = 3.0,
        steps: int = 9,
        seed: int = 0,
        batch_size: int = 64,
    ) -> torch.Tensor:
        """Image `index` of `seed` with one z dimension at a time set to each of `steps` values
        from `low` to `high`: float (len(dims), steps, C, S, S) in [0, 1]."""
        dist = self.config.train.z_dist
        images = latent.sweep(self.sampler, index, dims, low, high, steps, seed, dist, batch_size)
        return _unit(images)


def _unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1], as `DCGAN.generate_image` returns them."""
    return images.float() / 255.0
