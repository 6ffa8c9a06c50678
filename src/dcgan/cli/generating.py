"""`dcgan generate`: images from a run, a generator export or a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcgan.cli.common import Command, check_output, positive
from dcgan.device import pick_device
from dcgan.errors import ConfigError


def generate_arguments(g: argparse.ArgumentParser) -> None:
    g.add_argument(
        "source", type=Path, help="run directory, generator.safetensors or checkpoint .pt"
    )
    g.add_argument("--num", type=int, default=64, help="number of images")
    g.add_argument("--out", type=Path, required=True, help="directory for the PNGs")
    g.add_argument("--grid", type=Path, help="also write all images as one grid PNG")
    g.add_argument(
        "--index-labels",
        action="store_true",
        help="print each image's index above its cell of the grid",
    )
    g.add_argument(
        "--class",
        dest="classes",
        metavar="CLASS",
        help="conditional models: a class (7 or a name such as cat), a list (3,5) or all; "
        "image i of every class comes from the same z (default: image i is class i mod K)",
    )
    g.add_argument("--seed", type=int, default=0, help="image i comes from (seed, i)")
    g.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def run_generate(ns: argparse.Namespace) -> int:
    from dcgan.run.sources import load_sampler
    from dcgan.sampling import parse_classes, write_images

    positive(num=ns.num, batch_size=ns.batch_size)
    if ns.seed < 0:
        raise ConfigError(f"--seed: {ns.seed} must be >= 0")
    if ns.index_labels and ns.grid is None:
        raise ConfigError("--index-labels: labels go on the grid; give --grid FILE.png too")
    check_output("--out", ns.out, directory=True)
    check_output("--grid", ns.grid)
    generator, z_dist, names = load_sampler(ns.source)
    classes = None
    if ns.classes is not None:
        classes = parse_classes(ns.classes, generator.cfg.num_classes, names)
    generator.to(pick_device(ns.device))
    paths = write_images(
        generator,
        ns.num,
        ns.out,
        ns.seed,
        ns.batch_size,
        z_dist,
        ns.grid,
        ns.index_labels,
        classes,
        names,
    )
    grid = f" and a grid to {ns.grid}" if ns.grid else ""
    print(f"wrote {len(paths)} images to {ns.out}{grid}")
    return 0


COMMANDS = (
    Command(
        "generate",
        "write images from a run or a generator export",
        generate_arguments,
        run_generate,
    ),
)
