"""Seed-addressable generation: image i always comes from the z derived from (seed, i)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from dcgan.errors import ConfigError
from dcgan.images import make_grid, save_png, to_uint8
from dcgan.progress import bar
from dcgan.seeding import z_for_indices

# A conditional preview shows at most this many classes, one per row.
PREVIEW_CLASSES = 10


@torch.no_grad()
def render(
    generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """z (B, nz) (and classes (B,) for a conditional G) -> uint8 images (B, C, S, S) on the
    CPU, G in eval mode without gradients.

    Eval mode makes each image independent of the others in its batch (BatchNorm uses its
    running statistics) and leaves those statistics untouched; G's mode is restored after.
    """
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    try:
        if labels is None:
            return to_uint8(generator(z.to(device)))
        return to_uint8(generator(z.to(device), labels.to(device)))
    finally:
        generator.train(was_training)


class FixedClass(nn.Module):
    """A conditional G with its class fixed: z (B, nz) -> images (B, C, S, S) of class
    `label`, so every experiment here runs on it as on an unconditional G."""

    def __init__(self, generator: nn.Module, label: int):
        super().__init__()
        self.generator, self.label, self.cfg = generator, label, generator.cfg

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        labels = torch.full((len(z),), self.label, dtype=torch.long, device=z.device)
        return self.generator(z, labels)


def class_blend(num_classes: int, a: int, b: int, t: torch.Tensor) -> torch.Tensor:
    """Class weights (T, K) going from class a (t = 0) to class b (t = 1) in a straight line."""
    one_hot = torch.eye(num_classes, dtype=torch.float32)
    return torch.lerp(one_hot[a], one_hot[b], t.float()[:, None])


def generate(
    generator: nn.Module,
    indices: Sequence[int],
    seed: int = 0,
    batch_size: int = 64,
    dist: str = "normal",
    labels: Sequence[int] | None = None,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield (indices, uint8 images (B, C, S, S)) in batches; the images do not depend on
    `batch_size` because each z comes from (seed, index) and G runs in eval mode.

    labels: the class of each index (a conditional G), so image i of class c is G(z_i, c)."""
    nz = generator.cfg.nz
    for start in range(0, len(indices), batch_size):
        chunk = list(indices[start : start + batch_size])
        y = None if labels is None else torch.tensor(labels[start : start + batch_size])
        yield chunk, render(generator, z_for_indices(seed, chunk, nz, dist), y)


def balanced_labels(count: int, num_classes: int) -> list[int]:
    """Classes of images 0..count-1 when none is asked for: image i is class i mod K, so every
    class gets its share (within one image)."""
    return [i % num_classes for i in range(count)]


def class_rows(num_classes: int, count: int) -> tuple[list[int], list[int], int]:
    """A conditional grid of about `count` images: one row per class (the first
    PREVIEW_CLASSES), the same z index down each column. Returns (z indices, classes, columns),
    row-major, so image (r, c) is G(z_c, r)."""
    rows = min(num_classes, PREVIEW_CLASSES)
    columns = max(1, -(-count // rows))
    indices = [c for _ in range(rows) for c in range(columns)]
    return indices, [r for r in range(rows) for _ in range(columns)], columns


def write_images(
    generator: nn.Module,
    num: int,
    out_dir: str | Path,
    seed: int = 0,
    batch_size: int = 64,
    dist: str = "normal",
    grid: str | Path | None = None,
    index_labels: bool = False,
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] = (),
) -> list[Path]:
    """Write images 0..num-1 as `out_dir/NNNNNN.png` (and optionally one grid, each cell
    captioned with its index when `index_labels`); return paths.

    A conditional G draws image i of class c from z(seed, i) whatever c is. Without `classes`,
    image i is class i mod K; with one class, all images are of it; with several, each class
    gets images 0..num-1 in `out_dir/<class name>/` and the grid has one row per class.
    """
    out_dir, conditional = Path(out_dir), getattr(generator.cfg, "conditional", False)
    if conditional and classes is not None and len(classes) > 1:
        names = [_folder_name(c, class_names) for c in classes]
        batches = (
            (f"{name}/{i:06d}", image)
            for c, name in zip(classes, names, strict=True)
            for chunk, images in generate(generator, range(num), seed, batch_size, dist, [c] * num)
            for i, image in zip(chunk, images, strict=True)
        )
        captions = [f"{n} {i}" for n in names for i in range(num)]
        shown = _shown(batches, num * len(classes), batch_size)
        return _write(shown, out_dir, grid, captions if index_labels else None, nrow=num)
    labels = None
    if conditional:
        labels = [classes[0]] * num if classes else balanced_labels(num, generator.cfg.num_classes)
    batches = (
        (f"{i:06d}", image)
        for chunk, images in generate(generator, range(num), seed, batch_size, dist, labels)
        for i, image in zip(chunk, images, strict=True)
    )
    captions = [str(i) for i in range(num)] if index_labels else None
    return _write(_shown(batches, num, batch_size), out_dir, grid, captions)


# More batches than this take long enough to show a progress bar.
FEW_BATCHES = 4


def _shown(named: Iterator, total: int, batch_size: int) -> Iterable:
    """`named` behind a progress bar when it spans more than a few batches."""
    if total <= FEW_BATCHES * batch_size:
        return named
    return bar(named, total=total, desc="generating", unit="img")


def _write(
    named: Iterable[tuple[str, torch.Tensor]],
    out_dir: Path,
    grid: str | Path | None,
    captions: list[str] | None,
    nrow: int | None = None,
) -> list[Path]:
    """Save each (name, image (C, S, S)) as out_dir/name.png, and all as one grid."""
    paths, kept = [], []
    for name, image in named:
        paths.append(save_png(image, out_dir / f"{name}.png"))
        if grid is not None:
            kept.append(image)
    if grid is not None:
        save_png(make_grid(torch.stack(kept), nrow=nrow, labels=captions), grid)
    return paths


def _folder_name(label: int, names: Sequence[str]) -> str:
    """A class's sub-folder: its name when it makes a safe file name, else its number."""
    name = names[label] if label < len(names) else ""
    safe = name and all(ch.isalnum() or ch in "-_. " for ch in name) and name.strip(". ")
    return name if safe else str(label)


def parse_classes(text: str, num_classes: int, names: Sequence[str] = ()) -> list[int]:
    """`--class` text -> class numbers: `7`, `3,5`, `all`, or class names (`cat`) where the
    model has them. An unconditional model (num_classes 0) or an unknown class is a one-line
    ConfigError naming the value and the choices."""
    if not num_classes:
        raise ConfigError("--class: this model is not conditional (trained without --conditional)")
    if text.strip() == "all":
        return list(range(num_classes))
    by_name = {n: i for i, n in enumerate(names)}
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part in by_name:
            out.append(by_name[part])
        elif part.lstrip("-").isdigit() and 0 <= int(part) < num_classes:
            out.append(int(part))
        else:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            numbered = list(names) == [str(c) for c in range(num_classes)]
            known = f" or a name ({shown})" if names and not numbered else ""
            raise ConfigError(
                f"--class: {part!r} is not a class of this model; use 0..{num_classes - 1}"
                f"{known}, a comma-separated list, or all"
            )
    return out
