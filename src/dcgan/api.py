"""The Python API: `DCGAN(config).train(...)`, `.save(dir)`, `DCGAN.load(dir)`, generation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dcgan import latent
from dcgan.config import Config, from_dict, merge, model_dict, resolve, validate
from dcgan.device import pick_device
from dcgan.errors import ConfigError, require_positive
from dcgan.nn.models import Discriminator, Generator, check_size, summary
from dcgan.run import rundir
from dcgan.run.checkpoint import D_EXPORT_NAME, export_generator, save_weights
from dcgan.run.hub import TAGS, export_hub, hub_folder
from dcgan.run.sources import load_models, load_sampler
from dcgan.sampling import FixedClass, generate, parse_classes, write_images
from dcgan.training.loop import TrainResult, train

try:  # the `hub` extra: save_pretrained / from_pretrained through huggingface_hub's mixin
    from huggingface_hub import ModelHubMixin as HubMixin
except ImportError:  # the same two methods for local folders
    from dcgan.run.hub import LocalHubMixin as HubMixin


class DCGAN(
    HubMixin,
    library_name="dcgan",
    tags=TAGS,
    pipeline_tag="unconditional-image-generation",
):
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
        # A conditional model's class count comes from its training labels: built by train().
        self.generator: Generator | None = None
        self.discriminator: Discriminator | None = None
        if not cfg.model.conditional or cfg.model.num_classes:
            check_size(cfg.model)
            self.generator, self.discriminator = Generator(cfg.model), Discriminator(cfg.model)
        self.ema: Generator | None = None  # moving average of G's weights, after training
        self.run_dir: Path | None = None
        self.class_names: tuple[str, ...] = ()  # a conditional model's, one per class

    @property
    def sampler(self) -> Generator:
        """The generator images come from: the moving average of G when there is one."""
        if self.generator is None:
            raise ConfigError(
                "this conditional model has no networks yet: train it first (its class count "
                "comes from the training labels) or set num_classes"
            )
        return self.ema if self.ema is not None else self.generator

    def summary(self) -> str:
        """Print (and return) each layer's output shape and parameter count for G and D."""
        text = summary(self.sampler, self.discriminator)
        print(text)
        return text

    def train(
        self,
        dataset: Any = None,
        epochs: int | None = None,
        steps: int | None = None,
        labels: Any = None,
        **overrides: Any,
    ) -> TrainResult:
        """Train on `dataset`: a dataset name, images (N, C, H, W) uint8 or float in [-1, 1], or
        None for the configured dataset; `labels` (N,) int are given images' classes for a
        conditional model. Writes a run directory like `dcgan train`."""
        changes = dict(overrides)
        if isinstance(dataset, str):
            changes["dataset"], dataset = dataset, None
        if epochs is not None:
            changes.update(epochs=epochs, steps=None)
        if steps is not None:
            changes["steps"] = steps
        self.config = validate(merge(self.config, changes, "DCGAN.train()"))
        models = None if self.generator is None else (self.generator, self.discriminator)
        result = train(self.config, dataset, models=models, labels=labels)
        self.generator, self.discriminator, self.run_dir = (
            result.generator,
            result.discriminator,
            result.run_dir,
        )
        self.config = replace(self.config, model=result.generator.cfg)  # with its class count
        self.ema, self.class_names = result.ema, result.class_names
        return result

    def save(self, directory: str | Path) -> Path:
        """Write config.yaml, the generator export (with its model card README.md, from the
        figures of the run it was trained in) and D's weights into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        rundir.write_config(directory, self.config)
        meta: dict[str, Any] = {"z_dist": self.config.train.z_dist}
        if self.class_names:
            meta["class_names"] = list(self.class_names)
        export_generator(self.sampler, directory, meta, run=self.run_dir)  # + its model card
        save_weights(self.discriminator, directory / D_EXPORT_NAME)
        return directory

    def _save_pretrained(self, save_directory: Path) -> None:
        """`save_pretrained(dir)`: the generator in the Hub's layout (config.json,
        model.safetensors, README.md with the Hub's metadata), loadable by `from_pretrained`
        and by every `dcgan` command; D is not part of it."""
        meta: dict[str, Any] = {"z_dist": self.config.train.z_dist}
        if self.class_names:
            meta["class_names"] = list(self.class_names)
        export_hub(self.sampler, save_directory, meta, self.run_dir)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, **download: Any) -> DCGAN:
        """`from_pretrained(dir_or_repo_id)`: a Hub-layout folder, or a Hub repo id through
        huggingface_hub (its cache alone with HF_HUB_OFFLINE=1). D starts fresh."""
        fields = ("revision", "cache_dir", "force_download", "local_files_only", "token")
        sampler = load_sampler(hub_folder(model_id, **{k: download.get(k) for k in fields}))
        model = model_dict(sampler.generator.cfg)
        gan = cls({"model": model, "train": {"z_dist": sampler.z_dist}})
        gan.generator, gan.class_names = sampler.generator, sampler.class_names
        return gan

    @classmethod
    def load(cls, directory: str | Path) -> DCGAN:
        """Rebuild from `save()` output or a run directory: G, D and, for a run that kept one,
        G's moving average (`run.sources.load_models`). A run with only an export keeps the
        fresh D that `DCGAN(config)` builds from the run's seed."""
        found = load_models(directory)
        gan = cls(found.config)
        gan.generator, gan.ema = found.generator, found.ema
        if found.discriminator is not None:
            gan.discriminator = found.discriminator
        gan.class_names, gan.run_dir = found.class_names, found.run_dir
        return gan

    def generate_images(
        self,
        count: int,
        save_dir: str | Path,
        seed: int = 0,
        batch_size: int = 64,
        label: int | str | None = None,
    ) -> list[Path]:
        """Write images 0..count-1 of `seed` as PNGs into `save_dir`; return their paths.
        label: a conditional model's class (number or name) for all of them; by default image
        i is class i mod K."""
        require_positive({"count": count})
        classes = None if label is None else self._classes(label)
        dist = self.config.train.z_dist
        return write_images(self.sampler, count, save_dir, seed, batch_size, dist, classes=classes)

    def generate_image(
        self, seed: int = 0, index: int = 0, label: int | str | None = None
    ) -> torch.Tensor:
        """Image `index` of `seed` (of class `label` for a conditional model) as a float tensor
        (C, S, S) in [0, 1]."""
        sampler, dist = self.sampler, self.config.train.z_dist
        labels = None
        if sampler.cfg.conditional:
            labels = self._classes(label if label is not None else index % sampler.cfg.num_classes)
        elif label is not None:
            self._classes(label)  # the one-line error for an unconditional model
        _, images = next(generate(sampler, [index], seed, 1, dist, labels))
        return images[0].float() / 255.0

    def _classes(self, label: int | str) -> list[int]:
        return parse_classes(str(label), self.sampler.cfg.num_classes, self.class_names)

    def _fixed(self, label: int | str | None) -> nn.Module:
        """The sampler, or for a conditional model the sampler with its class fixed to `label`
        (one-line errors when it is missing, unknown or given to an unconditional model)."""
        sampler = self.sampler
        if label is None and sampler.cfg.conditional:
            raise ConfigError("label: this model is conditional; name the class of the images")
        return sampler if label is None else FixedClass(sampler, self._classes(label)[0])

    def evaluate(
        self,
        num_samples: int = 1000,
        metrics: Sequence[str] = ("fid", "kid", "pr"),
        reference: str = "auto",
        num_real: int | None = None,
        ref_stats: str | Path | None = None,
        seed: int = 0,
        device: str = "auto",
    ) -> dict[str, Any]:
        """`dcgan evaluate` from Python: the metrics of `num_samples` images of the sampling G
        (image i from seed (seed, i)) against real images of this model's data (`reference`:
        "auto" = the images the run held out, else "train"/"test"/"holdout"), or against a
        `dcgan ref-stats` file. Returns the record the command writes: `record["metrics"]`
        ({"fid": ..., "kid_mean": ..., ...}), N, the seed, the feature network and the
        reference's identity."""
        # here, not at the top: evaluation imports scikit-learn, which `import dcgan` need not
        from dcgan.evaluation.evaluate import Request, measure

        stats = None if ref_stats is None else Path(ref_stats)
        request = Request(tuple(metrics), num_samples, num_real, reference, stats, seed)
        z_dist, data = self.config.train.z_dist, self.config.data
        return measure(self.sampler, z_dist, data, request, pick_device(device))

    # --- latent space: the same functions as `dcgan interpolate`, `arithmetic`, `walk`, `sweep`

    def interpolate(
        self,
        i: int,
        j: int,
        steps: int = 10,
        method: str | None = None,
        seed: int = 0,
        batch_size: int = 64,
        label: int | str | tuple | None = None,
    ) -> torch.Tensor:
        """Images from image `i` to image `j` of `seed`: float (steps, C, S, S) in [0, 1].

        The first and last are exactly `generate_image(seed, i)` and `generate_image(seed, j)`.
        `method`: "slerp" (the great circle; the default for normal z) or "lerp" (the straight
        line; the default for uniform z). `label`: a conditional model's class, or a pair
        (a, b) whose class embeddings are blended from a to b along the way.
        """
        blend = None
        if isinstance(label, tuple):
            blend = tuple(self._classes(x)[0] for x in label)
            label = None  # G stays unfixed: its class is blended along the path
        src = self._latents(label, seed, batch_size, fixed=blend is None)
        return _unit(latent.interpolate(src, [(i, j)], steps, method, blend)[0])

    def arithmetic(
        self,
        a: Sequence[int],
        b: Sequence[int],
        c: Sequence[int],
        seed: int = 0,
        variations: int = 8,
        noise: float = 0.25,
        batch_size: int = 64,
        label: int | str | None = None,
    ) -> latent.Arithmetic:
        """mean(A) - mean(B) + mean(C) on the z of images `a`, `b`, `c` of `seed` (the paper's
        figure 7). Returns float images in [0, 1]: `.exemplars` (three (n, C, S, S)), `.means`
        (3, C, S, S), `.result` (C, S, S) and `.variations` (variations, C, S, S), the result's
        z with `noise` times a seeded draw of z's distribution added."""
        src = self._latents(label, seed, batch_size)
        return latent.arithmetic(src, a, b, c, variations, noise).map(_unit)

    def walk(
        self,
        frames: int = 120,
        keys: int = 6,
        seed: int = 0,
        method: str | None = None,
        batch_size: int = 64,
        label: int | str | None = None,
    ) -> torch.Tensor:
        """A loop through images 0..keys-1 of `seed` and back to image 0 along great circles:
        float (frames, C, S, S) in [0, 1], frames about equally far apart in z, no jump from
        the last frame to the first."""
        return _unit(latent.walk(self._latents(label, seed, batch_size), frames, keys, method))

    def sweep(
        self,
        index: int,
        dims: Sequence[int],
        low: float = -3.0,
        high: float = 3.0,
        steps: int = 9,
        seed: int = 0,
        batch_size: int = 64,
        label: int | str | None = None,
    ) -> torch.Tensor:
        """Image `index` of `seed` with one z dimension at a time set to each of `steps` values
        from `low` to `high`: float (len(dims), steps, C, S, S) in [0, 1]."""
        src = self._latents(label, seed, batch_size)
        return _unit(latent.sweep(src, index, dims, (low, high), steps))

    def _latents(
        self, label: int | str | None, seed: int, batch_size: int, fixed: bool = True
    ) -> latent.Latents:
        """The latent experiments' source: the sampling G (its class fixed to `label`)."""
        g = self._fixed(label) if fixed else self.sampler
        return latent.Latents(g, seed, self.config.train.z_dist, batch_size)


def _unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1], as `DCGAN.generate_image` returns them."""
    return images.float() / 255.0
