"""The training state: networks, optimisers, noise and counters, and its checkpoint form.

Everything here changes during training and is saved, so a resumed run continues exactly where
it stopped (bitwise on the CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from dcgan.config import Config, augment_policies, to_dict
from dcgan.errors import ConfigError
from dcgan.nn.ema import make_ema, recalibrate_batchnorm
from dcgan.nn.models import Discriminator, Generator
from dcgan.run.checkpoint import Checkpoint
from dcgan.sampling import class_rows
from dcgan.seeding import STREAM_TRAIN_NOISE, seed_for, z_for_indices
from dcgan.training.augmenting import AdaptiveP, Augmenter
from dcgan.training.distributed import Processes
from dcgan.training.precision import Precision


class Runners(NamedTuple):
    """What runs each network in the step: the modules themselves, or DDP-wrapped over
    processes and/or torch.compile'd versions of them."""

    g: Callable  # z (B, nz) -> images (B, C, S, S)
    d: Callable  # images -> (logits (B,), block features), in D's update
    d_frozen: Callable  # the same in G's update, where D's weights get no gradients


class Scalers(NamedTuple):
    """fp16 loss scalers, one per network: each has its own backward."""

    d: torch.amp.GradScaler
    g: torch.amp.GradScaler


@dataclass
class TrainState:
    """What a training run works on. `to_checkpoint` saves what a resume needs: the networks,
    optimisers, average, noise stream, step and counters, the process count it ran on, the
    augmenter's p and ADA's signal, and the class names. Not saved, because the run's
    settings rebuild them: `runners` (how G and D are called), this process's `rank`, the
    preview layout, and `ema_calibrated_at` (a resumed average is always re-estimated)."""

    generator: Generator
    discriminator: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    fixed_z: torch.Tensor  # (num_samples, nz) preview noise, on the CPU
    noise_rng: torch.Generator  # draws every training z, on the CPU
    runners: Runners
    step: int = 0
    ema: Generator | None = None  # moving average of G's weights, when enabled
    best_fid: float | None = None  # lowest FID seen by --eval-every, kept across resumes
    ema_calibrated_at: int | None = None  # step whose averaged weights the BN stats match
    scalers: Scalers | None = None  # fp16 only
    rollbacks: int = 0  # divergences recovered from by --on-nan rollback
    images_seen: int = 0  # real images trained on, over all processes
    rank: int = 0  # this process's slice of each global batch...
    world: int = 1  # ...of `world` slices (torchrun's processes)
    augmenter: Augmenter | None = None  # --augment: what D's inputs go through
    ada: AdaptiveP | None = None  # --ada-target: what steers the augmenter's p
    fixed_labels: torch.Tensor | None = None  # a conditional preview's classes, one per z
    preview_columns: int | None = None  # a conditional preview's images per class row
    class_names: tuple[str, ...] = ()  # a conditional run's class names, from its data


def build_state(
    cfg: Config, device: torch.device, models: tuple | None = None, procs: Processes | None = None
) -> TrainState:
    """Fresh networks (paper init, seeded) or given ones, Adam optimisers and the preview noise;
    with `procs` of several processes, BatchNorm synced (--sync-bn) and G and D under DDP."""
    t, procs = cfg.train, procs or Processes(device)
    if t.r1_gamma > 0 and procs.world > 1:  # DDP's gradient hooks do not see autograd.grad
        raise ConfigError(
            f"r1_gamma: {t.r1_gamma} is not supported under torchrun ({procs.world} processes) "
            "yet; train on one process, or set --r1-gamma 0"
        )
    torch.manual_seed(t.seed)
    if models is None:
        models = (Generator(cfg.model), Discriminator(cfg.model))
    # channels-last runs these convolutions faster on CPUs and on tensor-core GPUs
    g, d = (m.to(device, memory_format=torch.channels_last) for m in models)
    # The average is taken first: it is sampled on rank 0 alone, so it keeps plain BatchNorm.
    ema = make_ema(g) if t.ema > 0 else None
    if t.sync_bn and procs.world > 1:
        g, d = procs.sync_batchnorm(g), procs.sync_batchnorm(d)
    # One fused kernel per parameter instead of a pass per Adam operation (the same update).
    fused = device.type in ("cpu", "cuda")
    opt_g = torch.optim.Adam(
        g.parameters(), lr=t.lr_g or t.lr, betas=t.betas_g or (t.beta1, t.beta2), fused=fused
    )
    opt_d = torch.optim.Adam(
        d.parameters(), lr=t.lr_d or t.lr, betas=t.betas_d or (t.beta1, t.beta2), fused=fused
    )
    # The preview grid shows images 0..n-1 of `dcgan generate --seed <run seed>`.
    indices, labels, columns = preview_layout(cfg)
    fixed_z = z_for_indices(t.seed, indices, cfg.model.nz, t.z_dist)
    noise_rng = torch.Generator().manual_seed(seed_for(t.seed, 0, STREAM_TRAIN_NOISE))
    runners = make_runners(g, d, t.compile, procs)
    state = TrainState(g, d, opt_g, opt_d, fixed_z, noise_rng, runners, ema=ema)
    state.rank, state.world = procs.rank, procs.world
    if labels is not None:
        state.fixed_labels, state.preview_columns = torch.tensor(labels), columns
    amp = Precision(t.precision, device.type)
    if t.precision == "fp16":
        state.scalers = Scalers(d=amp.scaler(), g=amp.scaler())
    state.augmenter, state.ada = make_augmentation(cfg, procs)
    return state


def preview_layout(cfg: Config) -> tuple[list[int], list[int] | None, int | None]:
    """(z indices, classes, columns) of the preview grid: images 0..num_samples-1 of the run
    seed, or for a conditional model one row per class with the same z down each column."""
    count = cfg.output.num_samples
    if not cfg.model.conditional:
        return list(range(count)), None, None
    return class_rows(cfg.model.num_classes, count)


def make_augmentation(cfg: Config, procs: Processes) -> tuple[Augmenter | None, AdaptiveP | None]:
    """The augmenter of D's inputs (None without --augment) and, with --ada-target, the
    controller of its p, which then starts at 0."""
    t = cfg.train
    policies = augment_policies(t.augment)
    if not policies:
        return None, None
    ada = None if t.ada_target is None else AdaptiveP(t.ada_target, t.ada_interval, t.ada_kimg)
    p = t.augment_p if ada is None else 0.0
    size = cfg.model.image_size
    augmenter = Augmenter(policies, p, t.seed, size, procs.rank, procs.world, t.augment_cutout)
    return augmenter, ada


class Features(nn.Module):
    """D's `forward_features` as a module's forward: what DDP wraps and calls."""

    def __init__(self, discriminator: Discriminator):
        super().__init__()
        self.discriminator = discriminator

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.discriminator.forward_features(x, labels)


def make_runners(g: Generator, d: Discriminator, compile: bool, procs: Processes) -> Runners:
    """G and D's features under DDP over several processes (D's G-update runner stays
    unwrapped) and torch.compile'd with --compile; the modules themselves otherwise."""
    if procs.world == 1 and not compile:
        return Runners(g, d.forward_features, d.forward_features)
    run_g, run_d, frozen = procs.wrap(g), procs.wrap(Features(d)), d.forward_features
    if compile:
        # Separately: compiling the whole step breaks autograd (G's saved tensors are freed by
        # D's backward); each network alone compiles cleanly.
        run_g, run_d = torch.compile(run_g), torch.compile(run_d)
        frozen = run_d if procs.world == 1 else torch.compile(frozen)
    return Runners(run_g, run_d, frozen)


def sampling_generator(state: TrainState, cfg: Config) -> Generator:
    """The generator previews, exports and evaluation use: the moving average (its BatchNorm
    statistics re-estimated for the averaged weights) when enabled, else G itself.

    The average only changes when a step ends, so a preview, an evaluation and a checkpoint
    at the same step share one re-estimation.
    """
    if state.ema is None:
        return state.generator
    if state.ema_calibrated_at != state.step:
        m, t = cfg.model, cfg.train
        recalibrate_batchnorm(state.ema, m.nz, t.z_dist, t.seed, m.num_classes)
        state.ema_calibrated_at = state.step
    return state.ema


# ---------------------------------------------------------------------------- checkpoint form


def to_checkpoint(state: TrainState, cfg: Config) -> Checkpoint:
    """The full resume state: weights, optimisers, step, preview noise and every RNG."""
    rng = {"torch": torch.get_rng_state(), "noise": state.noise_rng.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return Checkpoint(
        config=to_dict(cfg),
        step=state.step,
        generator=state.generator.state_dict(),
        discriminator=state.discriminator.state_dict(),
        opt_g=state.opt_g.state_dict(),
        opt_d=state.opt_d.state_dict(),
        fixed_z=state.fixed_z,
        rng=rng,
        ema=None if state.ema is None else state.ema.state_dict(),
        best_fid=state.best_fid,
        scalers=None if state.scalers is None else [s.state_dict() for s in state.scalers],
        rollbacks=state.rollbacks,
        images_seen=state.images_seen,
        world=state.world,
        augment_p=None if state.augmenter is None else state.augmenter.p,
        ada_signal=None if state.ada is None else state.ada.state(),
        class_names=list(state.class_names) or None,
    )


def restore(state: TrainState, saved: Checkpoint) -> None:
    """Load a checkpoint made by `to_checkpoint` into `state`."""
    state.generator.load_state_dict(saved.generator)
    state.discriminator.load_state_dict(saved.discriminator)
    load_optimizer(state.opt_g, saved.opt_g)
    load_optimizer(state.opt_d, saved.opt_d)
    if state.ema is not None and saved.ema is not None:
        state.ema.load_state_dict(saved.ema)
    state.fixed_z, state.step, state.best_fid = saved.fixed_z, saved.step, saved.best_fid
    state.rollbacks, state.images_seen = saved.rollbacks, saved.images_seen
    state.ema_calibrated_at = None  # the average's statistics must be re-estimated
    if state.scalers is not None and saved.scalers:
        for scaler, scaler_state in zip(state.scalers, saved.scalers, strict=True):
            scaler.load_state_dict(scaler_state)
    if saved.class_names:
        state.class_names = tuple(saved.class_names)
    if state.augmenter is not None and saved.augment_p is not None:
        state.augmenter.p = saved.augment_p
    if state.ada is not None and saved.ada_signal is not None:
        state.ada.load(saved.ada_signal, next(state.discriminator.parameters()).device)
    state.noise_rng.set_state(saved.rng["noise"])
    torch.set_rng_state(saved.rng["torch"])
    if "cuda" in saved.rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved.rng["cuda"])


def load_optimizer(opt: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load `saved` into `opt` but keep how `opt` runs (fused or not): that is this machine's
    choice, and a checkpoint from another machine or version must not override it."""
    how = [{k: group[k] for k in ("fused", "foreach") if k in group} for group in opt.param_groups]
    groups = [{**group, **keep} for group, keep in zip(saved["param_groups"], how, strict=True)]
    opt.load_state_dict({**saved, "param_groups": groups})
