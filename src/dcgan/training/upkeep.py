"""The upkeep between steps: statistics, preview grids, FID, checkpoints, rollback and stop.

Each runs on its own interval (all of them at the end); nothing is written before the
divergence check passes, and only rank 0 writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dcgan.config import Config
from dcgan.errors import CheckpointError, ConfigError, Diverged
from dcgan.images import make_grid, save_gif, save_png
from dcgan.run import rundir
from dcgan.run.checkpoint import export_generator, load_checkpoint, save_checkpoint
from dcgan.run.plots import plot_losses
from dcgan.run.reporting import QuietLogger, RunLogger
from dcgan.run.status import DIVERGED_MARK
from dcgan.run.tensorboard import Board
from dcgan.sampling import render
from dcgan.training import distributed
from dcgan.training.distributed import Processes
from dcgan.training.guards import OUT_OF_TIME, DivergenceWatch
from dcgan.training.state import TrainState, restore, sampling_generator, to_checkpoint
from dcgan.training.step import STAT_KEYS


@dataclass
class Accumulator:
    """Sums of the step statistics kept on the device so the loop never waits for the host."""

    sums: torch.Tensor | None = None
    count: int = 0
    since: float = field(default_factory=time.perf_counter)
    # Combines the sums of every process (their mean) before they are read.
    reduce: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda sums: sums)

    def add(self, values: torch.Tensor) -> None:
        """Add one step's (len(STAT_KEYS),) statistics."""
        self.sums = values if self.sums is None else self.sums + values
        self.count += 1

    def reset(self) -> None:
        self.sums, self.count, self.since = None, 0, time.perf_counter()

    def pop(self) -> tuple[dict[str, float], float]:
        """Means since the last pop (one host sync) and the seconds they took."""
        means = (self.reduce(self.sums) / self.count).tolist()
        now = time.perf_counter()
        seconds, self.since, self.sums, self.count = now - self.since, now, None, 0
        return dict(zip(STAT_KEYS, means, strict=True)), seconds


@dataclass
class RunContext:
    """What the upkeep of a run needs besides the training state."""

    run_dir: Path
    cfg: Config
    procs: Processes
    log: RunLogger | QuietLogger
    per_epoch: int  # steps per pass over the data
    total_steps: int  # the step the run ends at
    acc: Accumulator
    watch: DivergenceWatch
    tracker: Callable[[torch.nn.Module], float] | None = None  # FID of a generator
    board: Board = field(default_factory=Board)  # --tensorboard's writer (rank 0)


def upkeep(ctx: RunContext, state: TrainState, last: bool, ended_by: str | None = None) -> None:
    """After a step: whatever is due of stats, preview, FID and checkpoint (all when `last`);
    `ended_by` (OUT_OF_TIME) goes into the stats record of a step that ends the run early."""
    o, step = ctx.cfg.output, state.step
    ctx.log.advance()
    if state.ada is not None and step % state.ada.interval == 0:
        steer_augmentation(ctx, state)
    due_log = ctx.acc.count and (step % o.log_every == 0 or last)
    due_sample = step % o.sample_every == 0 or last
    due_eval = o.eval_every > 0 and (step % o.eval_every == 0 or last)
    due_ckpt = step % o.checkpoint_every == 0 or last
    if not (due_log or due_sample or due_eval or due_ckpt):
        return
    check_finite(ctx, state)
    record = make_record(ctx, state) if due_log else None  # every rank's mean
    if record is not None and ended_by is not None:
        record["ended_by"] = ended_by

    def write() -> None:
        if record is not None:
            ctx.log.record(record)
            ctx.board.record(record)
        if due_sample:
            write_sample(ctx, state)
        if due_eval:
            evaluate_fid(ctx, state)  # before the checkpoint saves best_fid
        if due_ckpt:
            write_checkpoint(ctx, state, keep=step % o.checkpoint_every == 0)

    ctx.procs.on_main(write)


def steer_augmentation(ctx: RunContext, state: TrainState) -> None:
    """ADA: move the augmentation probability by the rt of the steps since the last move."""
    t = ctx.cfg.train
    images_per_step = t.batch_size * state.world * t.d_steps
    state.augmenter.p = state.ada.adjust(state.augmenter.p, images_per_step, ctx.procs.mean)


def make_record(ctx: RunContext, state: TrainState) -> dict[str, Any]:
    """One stats.jsonl row from the accumulated means (the only host sync of a log interval)."""
    steps_done = ctx.acc.count
    means, seconds = ctx.acc.pop()
    t = ctx.cfg.train
    global_batch = t.batch_size * state.world
    images = steps_done * global_batch * t.d_steps
    augment = {} if state.augmenter is None else {"augment_p": round(state.augmenter.p, 6)}
    return {
        "step": state.step,
        "epoch": round(state.step / ctx.per_epoch, 4),
        "images_seen": state.images_seen,
        "global_batch": global_batch,
        **{k: round(v, 6) for k, v in means.items()},
        "loss_d": round(means["loss_d_real"] + means["loss_d_fake"], 6),
        "lr_g": state.opt_g.param_groups[0]["lr"],
        "lr_d": state.opt_d.param_groups[0]["lr"],
        "images_per_s": round(images / max(seconds, 1e-9), 1),
        **augment,
    }


def write_sample(ctx: RunContext, state: TrainState) -> Path:
    """Preview grid from the fixed noise, G (or its average) in eval mode without gradients."""
    images = render(sampling_generator(state, ctx.cfg), state.fixed_z, state.fixed_labels)
    path = rundir.preview_path(ctx.run_dir, state.step)
    grid = make_grid(images, nrow=state.preview_columns)
    ctx.board.image(state.step, grid)
    return save_png(grid, path)


def evaluate_fid(ctx: RunContext, state: TrainState) -> None:
    """Record the sampling generator's FID; export it as `generator-best` when it improves."""
    generator = sampling_generator(state, ctx.cfg)
    try:
        value = ctx.tracker(generator)
    except ValueError as e:  # an ill-conditioned FID: too few samples for its 2048 features
        raise ConfigError(f"eval_samples: {e}; raise --eval-samples") from None
    if state.best_fid is None or value < state.best_fid:
        state.best_fid = value
        meta = {"step": state.step, "z_dist": ctx.cfg.train.z_dist, "fid": value}
        if state.class_names:
            meta["class_names"] = list(state.class_names)
        export_generator(generator, ctx.run_dir, meta, name="generator-best")
    rec = {"step": state.step, "fid": round(value, 4), "best_fid": round(state.best_fid, 4)}
    ctx.log.metric(rec)
    ctx.board.record(rec)


def write_checkpoint(ctx: RunContext, state: TrainState, keep: bool) -> Path:
    """Save `latest.pt` (and `step-NNNNNN.pt` when `keep`), then refresh the G export.

    Each file is complete or untouched (temp file, fsync, rename); `latest.pt` is written last,
    so after a failed write it still holds the previous good step.
    """
    run_dir, cfg = ctx.run_dir, ctx.cfg
    paths = [rundir.kept_checkpoint_path(run_dir, state.step)] if keep else []
    sampling = sampling_generator(state, cfg)  # first: the saved average's statistics match
    meta = {"step": state.step, "z_dist": cfg.train.z_dist, "ema": cfg.train.ema}
    if state.class_names:
        meta["class_names"] = list(state.class_names)
    try:
        path = save_checkpoint(to_checkpoint(state, cfg), *paths, rundir.latest_checkpoint(run_dir))
        export_generator(sampling, run_dir, meta)
    except OSError as e:
        raise CheckpointError(
            f"could not write the step {state.step} checkpoint in "
            f"{run_dir / rundir.CHECKPOINT_DIR} "
            f"({e.strerror or e}); latest.pt still holds the previous one: free space, then "
            f"dcgan train --resume {run_dir}"
        ) from None
    return path


def check_finite(ctx: RunContext, state: TrainState) -> None:
    """Raise Diverged on every rank when any rank saw a non-finite statistic or weight."""
    nets = {"generator": state.generator, "discriminator": state.discriminator}
    try:
        ctx.watch.check(state.step, nets)
        problem = None
    except Diverged as e:
        problem = str(e)
    problems = [p for p in ctx.procs.gather(problem) if p is not None]
    if problems:
        raise Diverged(problems[0])


def roll_back(ctx: RunContext, state: TrainState, error: Diverged) -> None:
    """--on-nan rollback: reload the last good checkpoint with both learning rates lowered;
    re-raise `error` (with what to do) when stopping is asked for or the rollbacks are spent."""
    t, latest = ctx.cfg.train, rundir.latest_checkpoint(ctx.run_dir)
    if t.on_nan != "rollback" or state.rollbacks >= t.max_rollbacks:
        spent = f"{state.rollbacks} rollbacks spent; " if t.on_nan == "rollback" else ""
        ctx.log.detail(f"{DIVERGED_MARK}: {error}")  # the run's end, for `dcgan runs`
        raise Diverged(
            f"{error}; nothing was saved after it: {latest} holds the last good step. "
            f"{spent}Resume with --on-nan rollback (it lowers the learning rates), or start "
            f"again with a lower --lr"
        ) from None
    optimisers = (state.opt_g, state.opt_d)
    # The base rates of --lr-decay's schedule (when set) are lowered with the rates.
    keys = ("lr", "initial_lr")
    lowered = [
        {k: g[k] * t.rollback_lr_factor for k in keys if k in g}
        for opt in optimisers
        for g in opt.param_groups
    ]
    count = state.rollbacks + 1
    restore(state, load_checkpoint(latest))  # replaces the optimisers' parameter groups
    ctx.procs.seed(t.seed, state.step)
    groups = [g for opt in optimisers for g in opt.param_groups]
    for group, rates in zip(groups, lowered, strict=True):
        group.update(rates)
    state.rollbacks = count
    ctx.procs.on_main(rundir.truncate_stats, ctx.run_dir, state.step)
    ctx.procs.on_main(ctx.board.reopen, state.step)
    ctx.acc.reset()
    ctx.watch.reset()
    ctx.log.info(
        f"{error}; rolled back to step {state.step} with learning rates x{t.rollback_lr_factor} "
        f"(rollback {count} of {t.max_rollbacks})"
    )


def finish(ctx: RunContext, state: TrainState, stopped_by: str | None) -> None:
    """The end of a run: its summary figures, or after a signal, a checkpoint of the finished
    step and how to go on."""
    if stopped_by is None:
        ctx.procs.on_main(summary_figures, ctx)
        ctx.procs.on_main(distributed.forget_run, ctx.cfg.output.out)
    elif stopped_by == OUT_OF_TIME:  # the last step's upkeep wrote the checkpoint and samples
        ctx.procs.on_main(summary_figures, ctx)
        ctx.procs.on_main(out_of_time, ctx, state)
    else:
        check_finite(ctx, state)
        ctx.procs.on_main(stop_early, ctx, state, stopped_by)
    ctx.procs.on_main(ctx.board.finish, ctx.cfg, state.step, state.best_fid)


def summary_figures(ctx: RunContext) -> None:
    """progress.gif from the preview grids, and losses.png."""
    frames = list(rundir.preview_grids(ctx.run_dir).values())
    if frames:
        save_gif(frames, ctx.run_dir / "progress.gif")
    records = rundir.read_stats(ctx.run_dir)
    if records:
        plot_losses(records, ctx.run_dir / "losses.png")
    ctx.log.info(f"samples: {ctx.run_dir / rundir.SAMPLES_DIR}  (latest grid: {frames[-1].name})")


def out_of_time(ctx: RunContext, state: TrainState) -> None:
    """Say that --max-minutes ended the run, and how to go on to --steps."""
    minutes = f"{ctx.cfg.train.max_minutes:g}"
    ctx.log.info(
        f"stopped by {OUT_OF_TIME} at step {state.step} of {ctx.total_steps}: the time budget "
        f"of {minutes} minutes is spent; checkpoint {rundir.latest_checkpoint(ctx.run_dir)}"
    )
    ctx.log.info(f"go on with: dcgan train --resume {ctx.run_dir} (another {minutes} minutes)")


def stop_early(ctx: RunContext, state: TrainState, signal: str) -> None:
    """After SIGINT/SIGTERM: checkpoint the finished step (unless just done); say how to go on."""
    latest = rundir.latest_checkpoint(ctx.run_dir)
    if state.step % ctx.cfg.output.checkpoint_every != 0:
        write_checkpoint(ctx, state, keep=False)
    ctx.log.info(f"stopped by {signal} at step {state.step}; checkpoint {latest}")
    ctx.log.info(f"resume with: dcgan train --resume {ctx.run_dir}")
