"""The training loop: `train(config) -> TrainResult`, its phases labelled, top to bottom.

A step is `d_steps` discriminator updates (each on its own real batch) followed by `g_steps`
generator updates. Everything random is derived from the run seed or saved in the checkpoint,
so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcgan.config import Config
from dcgan.device import pick_device, set_determinism
from dcgan.errors import Diverged
from dcgan.nn.losses import LOSSES
from dcgan.nn.models import Discriminator, Generator, check_size
from dcgan.training import distributed
from dcgan.training.batches import (
    RealBatches,
    class_names,
    place_data,
    prepare_images,
    with_classes,
)
from dcgan.training.distributed import Processes
from dcgan.training.guards import GracefulStop, TimeBudget
from dcgan.training.precision import Precision
from dcgan.training.start import open_run, run_config, run_to_continue
from dcgan.training.state import build_state
from dcgan.training.step import lr_scale_at, scale_learning_rates, train_step
from dcgan.training.upkeep import finish, roll_back, upkeep


@dataclass
class TrainResult:
    run_dir: Path
    generator: Generator  # the trained weights
    discriminator: Discriminator
    step: int
    ema: Generator | None = None  # their moving average, when enabled
    # SIGINT or SIGTERM when a signal ended the run early, OUT_OF_TIME when --max-minutes did
    stopped_by: str | None = None
    class_names: tuple[str, ...] = ()  # a conditional model's, one per class

    @property
    def sampler(self) -> Generator:
        """The generator samples come from: the moving average when there is one."""
        return self.ema if self.ema is not None else self.generator


def train(
    cfg: Config,
    images: Any | None = None,
    *,
    resume: str | Path | None = None,
    models: tuple[Generator, Discriminator] | None = None,
    from_step: int | None = None,
    labels: Any | None = None,
) -> TrainResult:
    """Train a DCGAN as `cfg` says and return the run directory and the trained networks.

    images: optional training images (uint8 or float in [-1, 1], (N, C, H, W)) instead of
    `cfg.data`, with `labels` (N,) int for a conditional model; resume: a run directory to
    continue (from its kept checkpoint of step `from_step` when given); models: networks to
    start from. Under torchrun, this process joins the group and trains its share of each
    global batch.
    """
    with distributed.start(pick_device(cfg.train.device)) as procs:
        return train_on(
            procs, cfg, images, resume=resume, models=models, from_step=from_step, labels=labels
        )


def train_on(
    procs: Processes,
    cfg: Config,
    images: Any | None = None,
    *,
    resume: str | Path | None = None,
    models: tuple[Generator, Discriminator] | None = None,
    from_step: int | None = None,
    labels: Any | None = None,
) -> TrainResult:
    """The training loop of `train`, run by each of `procs`' processes (one without torchrun)."""
    # --- set-up: the run to continue and the config it allows
    set_determinism(cfg.train.deterministic)
    resume, from_step = run_to_continue(procs, cfg, resume, from_step)
    cfg = run_config(cfg, resume, procs.device)
    check_size(cfg.model)  # before the data is decoded: networks that cannot be allocated

    # --- data: decoded once (rank 0 first, filling the cache), kept as uint8 on the device,
    # normalised per batch; each process takes its slice of every global batch
    data = procs.main_first(lambda: place_data(prepare_images(cfg, images, labels), procs.device))
    cfg = with_classes(cfg, data)  # a conditional model's class count comes from the labels
    reals = RealBatches(data, cfg, procs.device, procs.rank, procs.world)

    # --- networks and optimisers, fresh or restored; the run directory once all is valid
    state = build_state(cfg, procs.device, models, procs)
    state.class_names = class_names(cfg, data)
    ctx = open_run(cfg, state, data, resume, procs, from_step)
    loss, amp = LOSSES[cfg.train.loss], Precision(cfg.train.precision, procs.device.type)

    stopped, budget = None, TimeBudget(cfg.train.max_minutes)  # minutes counted from here
    with GracefulStop() as stop, closing(ctx.log), closing(ctx.board):
        while state.step < ctx.total_steps:
            # --- a signal to any process stops them all, at the same step
            stopped = procs.any_signal(stop.signal)
            if stopped is not None:
                break
            # --- the updates: D, G and the average; statistics stay on the device
            if cfg.train.lr_decay > 0:
                scale = lr_scale_at(cfg.train.lr_decay, state.step, ctx.total_steps)
                scale_learning_rates(state, scale)
            stats = train_step(state, reals, loss, amp, cfg).stacked()
            ctx.acc.add(stats)
            ctx.watch.add(state.step, stats)
            # --- upkeep: logs, samples, FID and checkpoints, each on its interval, and all of
            # them at the last step or where the time budget (any process's clock) runs out;
            # a NaN rolls back to the last checkpoint (or stops the run)
            ended = procs.any_signal(budget.expired()) if budget.minutes > 0 else None
            try:
                last = state.step == ctx.total_steps or ended is not None
                upkeep(ctx, state, last=last, ended_by=ended)
            except Diverged as e:
                roll_back(ctx, state, e)
            if ended is not None and state.step < ctx.total_steps:
                stopped = ended
                break
        # --- the end: the summary figures, or a checkpoint and how to resume after a signal
        finish(ctx, state, stopped)
    result = TrainResult(ctx.run_dir, state.generator, state.discriminator, state.step)
    result.ema, result.stopped_by, result.class_names = state.ema, stopped, state.class_names
    return result
