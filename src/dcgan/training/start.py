"""How a run starts or resumes: the config it may continue with, its directory, its logger and
first checkpoint, and what it tells the user before the first step."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from dcgan.config import RESUMABLE_FIELDS, Config, locked_changes, to_dict
from dcgan.data import ImageSet
from dcgan.errors import CheckpointError, ConfigError, brief
from dcgan.run import rundir, tensorboard
from dcgan.run.reporting import QuietLogger, RunLogger
from dcgan.run.sources import choose_checkpoint, read_run_config
from dcgan.run.tensorboard import Board
from dcgan.training import distributed
from dcgan.training.batches import steps_per_epoch, total_steps
from dcgan.training.distributed import Processes
from dcgan.training.guards import DivergenceWatch
from dcgan.training.precision import resolve_precision
from dcgan.training.state import TrainState, restore
from dcgan.training.step import STAT_KEYS
from dcgan.training.upkeep import Accumulator, RunContext, write_checkpoint, write_sample


def run_config(cfg: Config, resume: Path | None, device: torch.device) -> Config:
    """`cfg`, checked against the run it resumes, with precision 'auto' resolved for `device`
    (the run records the one used)."""
    if resume is not None:
        cfg = resume_config(resume, cfg)
    tensorboard.require(cfg.output.tensorboard)  # before any work, not at the first record
    precision = resolve_precision(cfg.train.precision, device)
    return replace(cfg, train=replace(cfg.train, precision=precision))


def resume_config(run_dir: Path, requested: Config) -> Config:
    """The saved config with the requested safe changes; refuses any other difference."""
    saved = read_run_config(run_dir, repair=True)
    # Settings left to be decided take what the run decided: the class count ("the data's"),
    # spectral normalisation (the pairing's choice, or BatchNorm for a run saved before it).
    unset = {}
    if requested.model.conditional and not requested.model.num_classes:
        unset["num_classes"] = saved.model.num_classes
    if requested.model.spectral_norm is None:
        unset["spectral_norm"] = saved.model.spectral_norm
    requested = replace(requested, model=replace(requested.model, **unset))
    changed = locked_changes(to_dict(saved), to_dict(requested))
    if changed:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed)
        raise ConfigError(
            f"cannot resume {run_dir} with a different config ({shown}); only "
            f"{', '.join(sorted(RESUMABLE_FIELDS))} may change"
        )
    return requested


def run_to_continue(
    procs: Processes, cfg: Config, resume: str | Path | None, from_step: int | None
) -> tuple[Path | None, int | None]:
    """The run to continue, the one asked for or, after torchrun restarted the worker group,
    the one its first attempt started; and the kept step to go back to."""
    if resume is None:
        resume = procs.on_main(distributed.restarted_run, cfg.output.out, share=True)
    if distributed.restart_count():
        from_step = None  # the first attempt went back to it; a restart continues from latest.pt
    return (None if resume is None else Path(resume)), from_step


def open_run(
    cfg: Config,
    state: TrainState,
    data: ImageSet,
    resume: Path | None,
    procs: Processes,
    from_step: int | None = None,
) -> RunContext:
    """The run directory (new, or `resume` with its checkpoint loaded into `state`), created
    only now that everything is valid; its logger, FID tracker and step-0 checkpoint."""
    note = None
    if resume is not None:
        run_dir = resume
        note = resume_state(run_dir, state, procs, cfg, from_step)
    else:
        run_dir = procs.on_main(new_run_dir, cfg, share=True)
    procs.seed(cfg.train.seed, state.step)
    procs.on_main(rundir.write_config, run_dir, cfg)
    n_steps = total_steps(cfg, len(data), procs.world)
    log = RunLogger(run_dir, n_steps, state.step) if procs.main else QuietLogger()
    per_epoch = steps_per_epoch(cfg, len(data), procs.world)
    log.info(
        f"run {run_dir}: {len(data)} images, {per_epoch} steps/epoch, "
        f"steps {state.step}->{n_steps}, device {procs.device}, precision {cfg.train.precision}"
    )
    if note is not None:
        log.info(note)
    report_processes(log, cfg, procs)
    report_data(log, data)
    acc, watch = Accumulator(reduce=procs.mean), DivergenceWatch(STAT_KEYS)
    ctx = RunContext(run_dir, cfg, procs, log, per_epoch, n_steps, acc, watch)
    if cfg.output.tensorboard:
        ctx.board = procs.on_main(Board.open, run_dir, state.step) or ctx.board
    if state.step == 0:
        procs.on_main(write_start, ctx, state)
    ctx.tracker = procs.on_main(make_tracker, cfg, procs.device, log)
    return ctx


def new_run_dir(cfg: Config) -> Path:
    """A fresh numbered run directory, recorded for a torchrun restart to find."""
    run_dir = rundir.create_run_dir(cfg)
    distributed.remember_run(cfg.output.out, run_dir)
    return run_dir


def resume_state(
    run_dir: Path, state: TrainState, procs: Processes, cfg: Config, from_step: int | None = None
) -> str | None:
    """Load the run's checkpoint into `state`: the kept one of `from_step`, else latest.pt,
    else (latest.pt damaged or missing) the newest kept one that loads, whose step the stats
    are cut back to; returns what the log should say about it. A run killed before its first
    checkpoint has nothing to lose and starts again from step 0."""
    latest, note = rundir.latest_checkpoint(run_dir), None
    started = latest.exists() or rundir.kept_checkpoints(run_dir) or rundir.read_stats(run_dir)
    if started or from_step is not None:
        saved, path, note = choose_checkpoint(run_dir, from_step)
        check_trained_with(run_dir, saved.config, cfg, path)
        try:
            restore(state, saved)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
            raise CheckpointError(
                f"checkpoint {path} does not fit this run ({brief(e, 120)}); resume from "
                "another kept step with --from-step"
            ) from None
    procs.on_main(rundir.truncate_stats, run_dir, state.step)
    if note is not None:
        note += f"; stats.jsonl records after step {state.step} are dropped"
    return note


def check_trained_with(run_dir: Path, saved: dict, cfg: Config, path: Path) -> None:
    """Refuse a config.yaml whose settings that may not change on resume differ from those the
    checkpoint was trained with: a damaged value (or an edit) would silently change the run."""
    changed = locked_changes(saved, to_dict(cfg))
    if changed:
        key, old, new = changed[0]
        more = f" (and {len(changed) - 1} more)" if changed[1:] else ""
        raise ConfigError(
            f"{Path(run_dir) / rundir.CONFIG_FILE}: {key} is {new!r} but {path} was trained with "
            f"{old!r}{more}; set it back: only {', '.join(sorted(RESUMABLE_FIELDS))} may change"
        )


def write_start(ctx: RunContext, state: TrainState) -> None:
    """A fresh run's step-0 preview and checkpoint: a start to resume or roll back to."""
    write_sample(ctx, state)
    write_checkpoint(ctx, state, keep=False)


def make_tracker(cfg: Config, device: torch.device, log: RunLogger):
    """The FID evaluator for --eval-every (its reference features computed or loaded now)."""
    if cfg.output.eval_every == 0:
        return None
    # Imported here: the Inception network's module is only needed when FID is measured.
    from dcgan.evaluation.evaluate import FIDTracker

    log.info(f"FID every {cfg.output.eval_every} steps on {cfg.output.eval_samples} images")
    return FIDTracker(cfg, device)


def report_processes(log: RunLogger | QuietLogger, cfg: Config, procs: Processes) -> None:
    """Under torchrun: the global batch the processes make together (also in stats.jsonl),
    and whether this attempt is a restart of a crashed worker group."""
    if procs.world > 1:
        t = cfg.train
        log.info(
            f"{procs.world} processes x batch {t.batch_size} = global batch "
            f"{procs.world * t.batch_size}" + ("; BatchNorm synced" if t.sync_bn else "")
        )
    if restarts := distributed.restart_count():
        log.info(f"torchrun restart {restarts}: continuing from the checkpoint")


def report_data(log: RunLogger | QuietLogger, data: ImageSet) -> None:
    """Where the images came from, and every unreadable file that was skipped (in log.txt)."""
    log.info(f"data: {data.source}")
    if data.skipped:
        first = ", ".join(path for path, _ in data.skipped[:3])
        log.info(f"skipped {len(data.skipped)} unreadable files (all listed in log.txt): {first}")
        for path, reason in data.skipped:
            log.detail(f"skipped {path}: {reason}")
