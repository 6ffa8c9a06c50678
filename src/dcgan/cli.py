"""`dcgan` command line: thin subcommands that validate options and call the Python API.

Every config field is a flag named after it (`batch_size` -> `--batch-size`); only flags the user
gives override the defaults or the `--config` file.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dcgan.config import ConfigError, dump_yaml, leaf_fields, leaf_type, merge, resolve, validate

_HELP = {
    "image_size": "image side in pixels: a power of two from 16 to 512",
    "channels": "image channels (1 grey, 3 colour)",
    "dataset": "dataset name (see the README)",
    "holdout": "images kept out of training, e.g. for evaluation",
    "data_root": "directory holding the dataset files (or the folder/.zip/file itself)",
    "split": "official split: train, test or all",
    "lsun_classes": "comma-separated LSUN LMDB names, e.g. bedroom_train,church_outdoor_train",
    "flip": "randomly mirror half of each real batch",
    "cache_dir": "where decoded images are cached (default $XDG_CACHE_HOME/dcgan)",
    "workers": "decoding processes for image files (0: none; default: by dataset size)",
    "max_bad_fraction": "fail when more than this fraction of image files are unreadable",
    "epochs": "passes over the data (ignored when --steps is given)",
    "steps": "training steps (overrides --epochs)",
    "batch_size": "images per batch in each process (under torchrun: global batch / processes)",
    "loss": "non-saturating, minimax, hinge or least-squares",
    "lr_g": "G's learning rate (default: --lr)",
    "lr_d": "D's learning rate (default: --lr)",
    "betas_g": "G's Adam betas (default: --beta1 --beta2)",
    "betas_d": "D's Adam betas (default: --beta1 --beta2)",
    "g_steps": "G updates per step",
    "d_steps": "D updates per step, each on its own real batch",
    "real_label": "target for real images; 0.9 is one-sided label smoothing",
    "grad_clip": "clip each network's gradient norm to this value",
    "z_dist": "normal or uniform",
    "feature_matching": "initial weight of the auxiliary feature-matching loss on D's features",
    "feature_matching_steps": "steps over which that weight decays linearly to 0",
    "d_dropout": "dropout probability after each of D's blocks",
    "ema": "decay of the moving average of G's weights used for samples (0: off)",
    "device": "auto, cpu, cuda or mps",
    "deterministic": "bitwise-reproducible kernels (slower)",
    "precision": "auto (bf16 where native, else fp32), fp32, bf16 or fp16",
    "compile": "torch.compile G and D (slow to start; pays off on long runs)",
    "sync_bn": "under torchrun: BatchNorm statistics over the global batch of all processes",
    "on_nan": "when a loss or weight turns NaN/inf: stop, or rollback to the last checkpoint",
    "max_rollbacks": "rollbacks allowed before the run stops",
    "rollback_lr_factor": "each rollback multiplies both learning rates by this",
    "out": "root directory for numbered run directories",
    "eval_every": "compute FID every this many steps and keep the best generator (0: off)",
    "eval_samples": "generated and real images per FID evaluation",
    "eval_reference": "real images for FID: auto, holdout, train, test or all",
}


class _Parser(argparse.ArgumentParser):
    """Bad arguments give one line naming the flag, not a usage dump or a traceback."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    for name, (section, _) in leaf_fields().items():
        tp = leaf_type(section, name)
        args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        base = args[0]
        flag = "--" + name.replace("_", "-")
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": _HELP.get(name)}
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(base) is tuple:
            parser.add_argument(flag, nargs=2, type=float, metavar=("B1", "B2"), **kw)
        else:
            parser.add_argument(flag, type=base, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dcgan", description="Train, sample and evaluate DCGANs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a DCGAN (defaults: the bundled MNIST digits)")
    t.add_argument("--config", type=Path, help="YAML file of settings (flags override it)")
    t.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    _add_config_flags(t)

    s = sub.add_parser("summary", help="print each layer's output shape and parameter count")
    s.add_argument("--config", type=Path)
    _add_config_flags(s)

    g = sub.add_parser("generate", help="write images from a run or a generator export")
    g.add_argument(
        "source", type=Path, help="run directory, generator.safetensors or checkpoint .pt"
    )
    g.add_argument("--num", type=int, default=64, help="number of images")
    g.add_argument("--out", type=Path, required=True, help="directory for the PNGs")
    g.add_argument("--grid", type=Path, help="also write all images as one grid PNG")
    g.add_argument("--seed", type=int, default=0, help="image i comes from (seed, i)")
    g.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")

    d = sub.add_parser("download", help="fetch official dataset files (checksummed, cached)")
    d.add_argument("--dataset", nargs="+", required=True, metavar="NAME", help="dataset names")
    d.add_argument(
        "--root", "--data-root", dest="root", type=Path, default=Path("data"), help="data root"
    )
    d.add_argument("--files", nargs="+", metavar="FILE", help="only these files (e.g. extra)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")

    c = sub.add_parser("datasets", help="list dataset names, their files and what is present")
    c.add_argument("--root", "--data-root", dest="root", type=Path, default=Path("data"))

    from dcgan import cli_eval

    cli_eval.add_parsers(sub)
    return parser


def _config_flags(ns: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(ns).items() if k in leaf_fields()}


def cmd_train(ns: argparse.Namespace) -> int:
    from dcgan.distributed import env_rank
    from dcgan.guards import EXIT_CODES
    from dcgan.training import train

    flags = _config_flags(ns)
    if "epochs" in flags and "steps" not in flags:
        flags["steps"] = None  # an explicit --epochs wins over a steps value from a file
    if ns.resume is not None:
        from dcgan.config import load_yaml
        from dcgan.rundir import read_config

        cfg = read_config(ns.resume)
        if ns.config is not None:
            cfg = merge(cfg, load_yaml(ns.config), str(ns.config))
        cfg = validate(merge(cfg, flags, "flag"))
    else:
        cfg = resolve(ns.config, flags)
    if ns.dry_run:
        print(dump_yaml(cfg), end="")
        return 0
    result = train(cfg, resume=ns.resume)
    if result.stopped_by is not None:
        return EXIT_CODES[result.stopped_by]
    if env_rank() != 0:
        return 0  # rank 0 reports for the whole group
    print(f"run directory: {result.run_dir}")
    grids = sorted((result.run_dir / "samples").glob("step-*.png"))
    print(f"samples:       {result.run_dir / 'samples'}")
    print(f"final grid:    {grids[-1]}")
    return 0


def cmd_summary(ns: argparse.Namespace) -> int:
    from dcgan.api import DCGAN

    DCGAN(resolve(ns.config, _config_flags(ns))).summary()
    return 0


def cmd_generate(ns: argparse.Namespace) -> int:
    from dcgan.checkpoint import load_generator
    from dcgan.sampling import write_images
    from dcgan.training import pick_device

    for name in ("num", "batch_size"):
        if getattr(ns, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: {getattr(ns, name)} must be at least 1")
    if ns.seed < 0:
        raise ConfigError(f"--seed: {ns.seed} must be >= 0")
    generator, z_dist = load_generator(ns.source)
    generator.to(pick_device(ns.device))
    paths = write_images(generator, ns.num, ns.out, ns.seed, ns.batch_size, z_dist, ns.grid)
    print(
        f"wrote {len(paths)} images to {ns.out}" + (f" and a grid to {ns.grid}" if ns.grid else "")
    )
    return 0


def cmd_download(ns: argparse.Namespace) -> int:
    from dcgan.data import download

    for name in ns.dataset:
        if download.is_manual(name):
            print(download.manual_instructions(name, ns.root))
            continue
        files = download.download(name, ns.root, files=ns.files, progress=not ns.no_progress)
        for path in files:
            print(f"{name}: {path}")
    return 0


def cmd_datasets(ns: argparse.Namespace) -> int:
    from dcgan.data.catalogue import dataset_table

    print(dataset_table(ns.root))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from dcgan.checkpoint import CheckpointError
    from dcgan.guards import Diverged

    ns = build_parser().parse_args(argv)
    from dcgan.cli_eval import COMMANDS

    command = {
        **COMMANDS,
        "train": cmd_train,
        "summary": cmd_summary,
        "generate": cmd_generate,
        "download": cmd_download,
        "datasets": cmd_datasets,
    }[ns.command]
    try:
        return command(ns)
    except (ConfigError, CheckpointError) as e:
        print(f"dcgan {ns.command}: error: {e}", file=sys.stderr)
        return 2
    except Diverged as e:
        print(f"dcgan {ns.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dcgan {ns.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
