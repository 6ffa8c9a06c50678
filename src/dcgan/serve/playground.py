"""What the page asks one trained generator for, each answer one uint8 image (C, S, S) with the
`dcgan` command line that writes the same image: the page shows nothing a command could not.

Every image comes from the functions the commands call (`sampling.generate`,
`latent.interpolate`, `latent.sweep`, `latent.arithmetic`) with the same arguments, so image k
of a slider is image k of the command's strip, bit for bit. A path or a sweep is computed once
for all its steps and kept (a few of them), so moving a slider costs no forward pass.
"""

from __future__ import annotations

import shlex
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from dcgan import latent
from dcgan.run.sources import Sampler
from dcgan.sampling import FixedClass, generate

KEPT_STRIPS = 8  # paths and sweeps kept for slider moves
MAX_STEPS = 16  # images on one slider, both ends included
MAX_GROUP = 8  # images in one arithmetic group


@dataclass(frozen=True)
class Picture:
    """One image for the page: uint8 (C, S, S) and the command line that writes it."""

    image: torch.Tensor
    command: str


class Playground:
    """One generator in memory, asked by seed, index and (conditional models) class."""

    def __init__(self, sampler: Sampler, source: str, device: torch.device) -> None:
        self.generator = sampler.generator.to(device).eval()
        self.dist, self.class_names = sampler.z_dist, sampler.class_names
        self.method = latent.resolve_method(None, self.dist)  # the path a slider takes
        self.source = source
        self._strips: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    @property
    def cfg(self):
        return self.generator.cfg

    def info(self) -> dict:
        """What the page needs to lay itself out."""
        cfg = self.cfg
        return {
            "source": self.source,
            "image_size": cfg.image_size,
            "channels": cfg.channels,
            "nz": cfg.nz,
            "z_dist": self.dist,
            "method": self.method,
            "conditional": bool(cfg.conditional),
            "num_classes": cfg.num_classes if cfg.conditional else 0,
            "class_names": list(self.class_names),
            "max_steps": MAX_STEPS,
            "max_group": MAX_GROUP,
        }

    # ------------------------------------------------------------------------------ images

    def image(self, seed: int, index: int, label: int | None) -> Picture:
        """Image `index` of `dcgan generate --seed seed` (of class `label`)."""
        labels = None if label is None else [label]
        ((_, images),) = generate(self.generator, [index], seed, 1, self.dist, labels)
        cmd = self._command("generate", f"--seed {seed} --num {index + 1}", label)
        return Picture(images[0], f"{cmd} --out images/  # images/{index:06d}.png")

    def interpolate(
        self, seed: int, a: int, b: int, steps: int, k: int, method: str, label: int | None
    ) -> Picture:
        """Image k of the path from image a to image b in `steps` images."""
        key = ("interpolate", seed, a, b, steps, method, label)
        strip = self._strip(
            key, lambda g: latent.interpolate(self._src(g, seed), [(a, b)], steps, method)[0]
        )
        args = f"{a}:{b} --steps {steps} --method {method} --seed {seed}"
        cmd = self._command("interpolate", args, label)
        return Picture(strip[k], f"{cmd} --out path.png  # image {k + 1} of {steps}")

    def sweep(
        self, seed: int, index: int, dim: int, span: tuple[float, float], steps: int, k: int,
        label: int | None,
    ) -> Picture:  # fmt: skip
        """Image `index` with z's dimension `dim` set to value k of `steps` across `span`."""
        low, high = span
        key = ("sweep", seed, index, dim, low, high, steps, label)
        strip = self._strip(
            key, lambda g: latent.sweep(self._src(g, seed), index, [dim], span, steps)[0]
        )
        args = (
            f"--index {index} --dims {dim} --range {low!r} {high!r} --steps {steps} --seed {seed}"
        )
        cmd = self._command("sweep", args, label)
        return Picture(strip[k], f"{cmd} --out sweep.png  # image {k + 1} of {steps}")

    def arithmetic(self, seed: int, groups: Sequence[Sequence[int]], label: int | None) -> Picture:
        """The image of mean(A) - mean(B) + mean(C) over images of `seed`."""
        a, b, c = groups
        record = latent.arithmetic(self._src(self._g(label), seed), a, b, c, variations=0)
        named = zip("abc", groups, strict=True)
        lists = " ".join(f"--{n} {','.join(map(str, g))}" for n, g in named)
        cmd = self._command("arithmetic", f"{lists} --variations 0 --seed {seed}", label)
        return Picture(record.result, f"{cmd} --out sum.png  # the result, A - B + C")

    # ------------------------------------------------------------------------------ helpers

    def _src(self, generator: nn.Module, seed: int) -> latent.Latents:
        return latent.Latents(generator, seed, self.dist)

    def _g(self, label: int | None) -> nn.Module:
        return self.generator if label is None else FixedClass(self.generator, label)

    def _strip(self, key: tuple, make: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
        if key not in self._strips:
            self._strips[key] = make(self._g(key[-1]))
            if len(self._strips) > KEPT_STRIPS:
                self._strips.popitem(last=False)
        self._strips.move_to_end(key)
        return self._strips[key]

    def _command(self, name: str, args: str, label: int | None) -> str:
        source = shlex.quote(self.source)
        cls = "" if label is None else f" --class {label}"
        return f"dcgan {name} {source} {args}{cls}"
