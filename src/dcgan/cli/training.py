"""`dcgan train` and `dcgan summary`: the subcommands built from the config's fields."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dcgan.cli.common import Command, add_config_flags, config_flags
from dcgan.config import dump_yaml, load_yaml, merge, resolve, validate
from dcgan.errors import ConfigError


def train_arguments(t: argparse.ArgumentParser) -> None:
    t.add_argument("--config", type=Path, help="YAML file of settings (flags override it)")
    t.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run")
    t.add_argument(
        "--from-step",
        type=int,
        metavar="N",
        help="with --resume: continue from the run's kept checkpoints/step-N.pt",
    )
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    add_config_flags(t)


def run_train(ns: argparse.Namespace) -> int:
    from dcgan.run.rundir import SAMPLES_DIR, latest_preview
    from dcgan.run.sources import read_run_config
    from dcgan.training.distributed import env_rank, launched_by_torchrun
    from dcgan.training.guards import EXIT_CODES, OUT_OF_TIME
    from dcgan.training.loop import train

    flags = config_flags(ns)
    if "epochs" in flags and "steps" not in flags:
        flags["steps"] = None  # an explicit --epochs wins over a steps value from a file
    if ns.from_step is not None and (ns.resume is None or ns.from_step < 0):
        raise ConfigError(f"--from-step: {ns.from_step} needs --resume RUN and a step >= 0")
    if ns.resume is not None:
        cfg = read_run_config(ns.resume, repair=not ns.dry_run)
        if ns.config is not None:
            cfg = merge(cfg, load_yaml(ns.config), str(ns.config))
        cfg = validate(merge(cfg, flags, "flag"))
    else:
        cfg = resolve(ns.config, flags)
    if ns.dry_run:
        print(dump_yaml(cfg), end="")
        return 0
    result = train(cfg, resume=ns.resume, from_step=ns.from_step)
    code = 0 if result.stopped_by is None else EXIT_CODES[result.stopped_by]
    complete = result.stopped_by in (None, OUT_OF_TIME)  # the final grid was written
    if complete and env_rank() == 0:  # rank 0 reports for the whole group
        samples = result.run_dir / SAMPLES_DIR
        print(f"run directory: {result.run_dir}")
        print(f"samples:       {samples}")
        print(f"final grid:    {latest_preview(result.run_dir)[1]}")
    if launched_by_torchrun():
        leave_now(code)
    return code


def leave_now(code: int) -> None:
    """End a torchrun worker whose run is over: every file is closed and the process group
    destroyed by now, but torch's C++ teardown as the interpreter exits now and then aborts
    ("terminate called without an active exception": a thread still joinable when its owner
    is destroyed), which torchrun reports as a failed worker after a complete run. Nothing of
    ours is left to finalise, so skip that teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def summary_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--config", type=Path)
    add_config_flags(s)


def run_summary(ns: argparse.Namespace) -> int:
    from dcgan.api import DCGAN

    DCGAN(resolve(ns.config, config_flags(ns))).summary()
    return 0


COMMANDS = (
    Command(
        "train", "train a DCGAN (defaults: the bundled MNIST digits)", train_arguments, run_train
    ),
    Command(
        "summary",
        "print each layer's output shape and parameter count",
        summary_arguments,
        run_summary,
    ),
)
