"""`dcgan interpolate`, `arithmetic`, `walk` and `sweep`: latent-space experiments on a trained G.

Each parses and checks its arguments and the output path before loading anything, then calls
`dcgan.latent` and writes one PNG (or GIF) atomically.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

import torch

from dcgan.cli.common import Command, check_output, positive
from dcgan.device import pick_device
from dcgan.errors import ConfigError, shown

PAIR = re.compile(r"([0-9]+):([0-9]+)")
INDEX = re.compile(r"[0-9]+")
DIM_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
# What one command may render, checked before anything is allocated: counts against the
# first, and once G's image size is known, the pixels (float, then zoomed bytes) against the
# second, so that no flag can ask for more memory than a laptop has.
MAX_IMAGES = 4096
MAX_OUTPUT_BYTES = 512 * 2**20
MAX_ZOOM = 64
MIN_FPS = 0.1  # a GIF frame lasts at most 10 s (Pillow stores it in 16 bits of 10 ms)


def _common(p: argparse.ArgumentParser, out_help: str, gif: bool = False) -> None:
    p.add_argument(
        "source", type=Path, help="run directory, generator.safetensors or checkpoint .pt"
    )
    p.add_argument("--out", type=Path, required=True, help=out_help)
    p.add_argument("--seed", type=int, default=0, help="image i is image i of `generate --seed`")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--zoom", type=int, default=1, help="enlarge the output K times (crisp pixels)")
    blend = ", or A:B to blend from class A to class B along each row" if gif else ""
    p.add_argument(
        "--class",
        dest="classes",
        metavar="CLASS",
        help=f"conditional models: the class of every image (7, or a name such as cat){blend}",
    )
    if gif:
        p.add_argument("--fps", type=float, default=20.0, help="GIF frames per second")


def _method(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--method", help="slerp (great circle, the default for normal z) or lerp (straight line)"
    )


def _checked(ns: argparse.Namespace, suffixes: tuple[str, ...]) -> None:
    """Flags every command shares, and an output file it can write, before any work."""
    positive(batch_size=ns.batch_size, zoom=ns.zoom)
    if ns.zoom > MAX_ZOOM:
        raise ConfigError(f"--zoom: {ns.zoom} is more than {MAX_ZOOM}")
    if ns.seed < 0:
        raise ConfigError(f"--seed: {ns.seed} must be >= 0")
    fps = getattr(ns, "fps", None)
    if fps is not None and not MIN_FPS <= fps <= 100:
        raise ConfigError(f"--fps: {fps} must be from {MIN_FPS} to 100")
    out: Path = ns.out
    if out.suffix.lower() not in suffixes:
        raise ConfigError(f"--out: {out}: can write {' or '.join(suffixes)} files only")
    check_output("--out", out)


def _count(count: int, flags: str) -> None:
    """Refuse, before any work, more images than one command renders."""
    if count > MAX_IMAGES:
        raise ConfigError(
            f"{flags}: {count} images, more than the {MAX_IMAGES} one command renders; ask for "
            "fewer"
        )


def _fits(ns: argparse.Namespace, generator: torch.nn.Module, count: int, flags: str) -> None:
    """Refuse, once G's image size is known, images whose pixels would not fit the budget."""
    side, channels = generator.cfg.image_size, generator.cfg.channels
    need = count * side * side * channels * (4 + ns.zoom**2)  # float32, then zoomed uint8
    if need > MAX_OUTPUT_BYTES:
        raise ConfigError(
            f"{flags} --zoom {ns.zoom}: {count} images of {side * ns.zoom} px need "
            f"{need / 2**20:.0f} MB, more than {MAX_OUTPUT_BYTES // 2**20} MB; ask for fewer "
            "images or a smaller --zoom"
        )


def _load(ns: argparse.Namespace) -> tuple[torch.nn.Module, str]:
    """G on the chosen device (checked first) and its z distribution; a conditional G with
    its class fixed to --class (see `_load_blend` for A:B)."""
    generator, dist, _ = _load_blend(ns, blend_ok=False)
    return generator, dist


def _load_blend(
    ns: argparse.Namespace, blend_ok: bool = True
) -> tuple[torch.nn.Module, str, tuple[int, int] | None]:
    """G on the chosen device, its z distribution, and for --class A:B the two classes (G
    then stays unfixed: the caller blends its class along the path)."""
    from dcgan.run.sources import load_sampler
    from dcgan.sampling import FixedClass, parse_classes

    device = pick_device(ns.device)
    generator, dist, names = load_sampler(ns.source)
    k = generator.cfg.num_classes
    if ns.classes is None:
        if generator.cfg.conditional:
            raise ConfigError(
                f"--class: {ns.source} is a conditional model; name the class (0..{k - 1}"
                f"{' or a name' if names else ''}){' or A:B' if blend_ok else ''}"
            )
        return generator.to(device), dist, None
    parts = ns.classes.split(":") if blend_ok else [ns.classes]
    classes = [c for part in parts for c in parse_classes(part, k, names)]
    if len(classes) != len(parts):
        raise ConfigError(f"--class: {ns.classes!r} names {len(classes)} classes; give one")
    if len(classes) == 2:
        return generator.to(device), dist, (classes[0], classes[1])
    return FixedClass(generator, classes[0]).to(device), dist, None


def _write(ns: argparse.Namespace, write: Callable[[Path], object], what: str) -> int:
    """Write the output file; an OS error (a full disk, a read-only place) is one line."""
    try:
        write(ns.out)
    except OSError as e:
        raise ConfigError(f"--out: cannot write {ns.out}: {e.strerror or e}") from None
    print(f"wrote {what} to {ns.out}")
    return 0


def _save(ns: argparse.Namespace, image: torch.Tensor) -> Callable[[Path], object]:
    from dcgan.images import enlarge, save_png

    return lambda path: save_png(enlarge(image, ns.zoom), path)


def _save_gif(ns: argparse.Namespace, frames) -> Callable[[Path], object]:
    from dcgan.images import enlarge, save_gif_images

    frames = [enlarge(frame, ns.zoom) for frame in frames]
    duration = max(1, round(1000 / ns.fps))
    return lambda path: save_gif_images(frames, path, duration_ms=duration)


def parse_pair(text: str) -> tuple[int, int]:
    match = PAIR.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"pair '{text}': expected I:J, two image indices >= 0 (e.g. 3:17)")
    return int(match[1]), int(match[2])


def parse_group(text: str, flag: str) -> list[int]:
    items = [item.strip() for item in text.split(",")]
    if any(INDEX.fullmatch(item) is None for item in items):
        raise ConfigError(
            f"{flag}: '{text}' is not a group of image indices; use integers >= 0 as 3,17,22"
        )
    return [int(item) for item in items]


def parse_dims(text: str) -> list[int]:
    """'0-9', '3', '0,5,7' or '0-4,10' -> the z dimensions, in order (ranges inclusive)."""
    dims: list[int] = []
    for item in text.split(","):
        match = DIM_RANGE.fullmatch(item.strip())
        first, last = (int(match[1]), int(match[2] or match[1])) if match else (0, -1)
        if match is None or last < first:
            raise ConfigError(
                f"--dims: {shown(text)} is not a list of z dimensions; use e.g. 0-9 or 0,5,7 "
                "(ranges ascending, ends included)"
            )
        if len(dims) + last - first >= MAX_IMAGES:
            raise ConfigError(f"--dims: {shown(text)} names more than {MAX_IMAGES} dimensions")
        dims += range(first, last + 1)
    return dims


def _index(value: int, flag: str) -> int:
    if value < 0:
        raise ConfigError(f"{flag}: {value} is not an image index; use an integer >= 0")
    return value


# --- interpolate ---------------------------------------------------------------------------------


def interpolate_arguments(p: argparse.ArgumentParser) -> None:
    _common(p, ".png: one row per pair; .gif: all pairs side by side, there and back", gif=True)
    p.add_argument("pairs", nargs="+", metavar="I:J", help="from image I to image J of --seed")
    p.add_argument("--steps", type=int, default=10, help="images per pair, both ends included")
    _method(p)


def run_interpolate(ns: argparse.Namespace) -> int:
    from dcgan import latent

    pairs = [parse_pair(text) for text in ns.pairs]
    if ns.steps < 2:
        raise ConfigError(f"--steps: {ns.steps} must be at least 2 (both ends)")
    if ns.method is not None:
        latent.resolve_method(ns.method, "normal")
    _checked(ns, (".png", ".gif"))
    count, flags = len(pairs) * ns.steps * 2, "I:J pairs x --steps"  # a GIF goes there and back
    _count(count, flags)
    generator, dist, blend = _load_blend(ns)
    _fits(ns, generator, count, flags)
    src = latent.Latents(generator, ns.seed, dist, ns.batch_size)
    images = latent.interpolate(src, pairs, ns.steps, ns.method, blend)
    if ns.out.suffix.lower() == ".gif":
        write = _save_gif(ns, latent.there_and_back(images))
    else:
        write = _save(ns, latent.interpolation_sheet(images, pairs))
    return _write(ns, write, f"{len(pairs)} interpolations of {ns.steps} steps")


# --- arithmetic ----------------------------------------------------------------------------------


def arithmetic_arguments(p: argparse.ArgumentParser) -> None:
    _common(p, "the figure, .png")
    for name, help in (("a", "images to start from"), ("b", "minus these"), ("c", "plus these")):
        p.add_argument(
            f"--{name}", required=True, metavar="I,J,...", help=f"group {name.upper()}: {help}"
        )
    p.add_argument("--variations", type=int, default=8, help="result images with noise added")
    p.add_argument("--noise", type=float, default=0.25, help="scale of the variations' noise")


def run_arithmetic(ns: argparse.Namespace) -> int:
    from dcgan import latent

    groups = [parse_group(getattr(ns, name), f"--{name}") for name in ("a", "b", "c")]
    if ns.variations < 0:
        raise ConfigError(f"--variations: {ns.variations} must be >= 0")
    if not ns.noise >= 0 or ns.noise == float("inf"):
        raise ConfigError(f"--noise: {ns.noise} must be a finite number >= 0")
    _checked(ns, (".png",))
    count = sum(map(len, groups)) + 1 + ns.variations
    _count(count, "--a --b --c --variations")
    generator, dist = _load(ns)
    _fits(ns, generator, count, "--a --b --c --variations")
    src = latent.Latents(generator, ns.seed, dist, ns.batch_size)
    record = latent.arithmetic(src, *groups, ns.variations, ns.noise)
    return _write(ns, _save(ns, latent.arithmetic_sheet(record, groups)), "A - B + C")


# --- walk ----------------------------------------------------------------------------------------


def walk_arguments(p: argparse.ArgumentParser) -> None:
    _common(p, ".gif: the loop; .png: its frames as a contact sheet", gif=True)
    p.add_argument("--frames", type=int, default=120, help="frames in the loop")
    p.add_argument("--keys", type=int, default=6, help="key points: images 0..keys-1 of --seed")
    _method(p)


def run_walk(ns: argparse.Namespace) -> int:
    from dcgan import latent
    from dcgan.images import make_grid

    if ns.keys < 2:
        raise ConfigError(f"--keys: {ns.keys} must be at least 2")
    if ns.frames < 2 or ns.frames < ns.keys:
        raise ConfigError(
            f"--frames: {ns.frames} must be at least 2 and at least --keys ({ns.keys})"
        )
    if ns.method is not None:
        latent.resolve_method(ns.method, "normal")
    _checked(ns, (".gif", ".png"))
    _count(ns.frames, "--frames")
    generator, dist = _load(ns)
    _fits(ns, generator, ns.frames, "--frames")
    src = latent.Latents(generator, ns.seed, dist, ns.batch_size)
    frames = latent.walk(src, ns.frames, ns.keys, ns.method)
    if ns.out.suffix.lower() == ".gif":
        write = _save_gif(ns, frames)
    else:
        write = _save(ns, make_grid(frames))
    return _write(ns, write, f"a walk of {ns.frames} frames through {ns.keys} keys")


# --- sweep ---------------------------------------------------------------------------------------


def sweep_arguments(p: argparse.ArgumentParser) -> None:
    _common(p, "the grid, .png: one row per dimension")
    p.add_argument("--index", type=int, default=0, help="start from image I of --seed")
    p.add_argument("--dims", default="0-9", help="z dimensions: 0-9, 0,5,7 or 0-4,10")
    p.add_argument(
        "--range",
        nargs=2,
        type=float,
        default=(-3.0, 3.0),
        metavar=("LOW", "HIGH"),
        help="values each dimension takes",
    )
    p.add_argument("--steps", type=int, default=9, help="values per dimension, both ends included")


def run_sweep(ns: argparse.Namespace) -> int:
    from dcgan import latent

    _index(ns.index, "--index")
    dims = parse_dims(ns.dims)
    if ns.steps < 2:
        raise ConfigError(f"--steps: {ns.steps} must be at least 2 (both ends)")
    low, high = ns.range
    if not all(abs(v) < float("inf") for v in (low, high)):
        raise ConfigError(f"--range: {low} {high} must be finite numbers")
    _checked(ns, (".png",))
    _count(len(dims) * (ns.steps + 1), "--dims x --steps")
    generator, dist = _load(ns)
    _fits(ns, generator, len(dims) * (ns.steps + 1), "--dims x --steps")
    if max(dims) >= generator.cfg.nz:
        raise ConfigError(
            f"--dims: {max(dims)} is out of range; this generator's z has dimensions "
            f"0-{generator.cfg.nz - 1}"
        )
    src = latent.Latents(generator, ns.seed, dist, ns.batch_size)
    images = latent.sweep(src, ns.index, dims, (low, high), ns.steps)
    return _write(ns, _save(ns, latent.sweep_sheet(images, dims)), f"{len(dims)} dimension sweeps")


COMMANDS = (
    Command(
        "interpolate",
        "images between pairs of generated images (slerp or lerp), as a grid or a GIF",
        interpolate_arguments,
        run_interpolate,
    ),
    Command(
        "arithmetic",
        "vector arithmetic on z: mean(A) - mean(B) + mean(C), the paper's figure 7",
        arithmetic_arguments,
        run_arithmetic,
    ),
    Command(
        "walk",
        "a looping walk through latent space along great circles, as a GIF or a sheet",
        walk_arguments,
        run_walk,
    ),
    Command(
        "sweep",
        "vary one z dimension at a time from a generated image",
        sweep_arguments,
        run_sweep,
    ),
)
