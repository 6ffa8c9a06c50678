"""The training loop: `train(config) -> TrainResult`, one readable function with labelled phases.

A step is `d_steps` discriminator updates (each on its own real batch) followed by `g_steps`
generator updates. Everything random is derived from the run seed or saved in the checkpoint,
so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dcgan import distributed, rundir
from dcgan.checkpoint import (
    CheckpointError,
    export_generator,
    load_checkpoint,
    save_checkpoint,
)
from dcgan.config import RESUMABLE_FIELDS, Config, ConfigError, diff, to_dict
from dcgan.data import ImageSet, open_images
from dcgan.data.transforms import convert_channels, resize
from dcgan.distributed import Processes
from dcgan.ema import decay_at, make_ema, recalibrate_batchnorm, update_ema
from dcgan.guards import Diverged, DivergenceWatch, GracefulStop
from dcgan.images import make_grid, save_gif, save_png, to_uint8
from dcgan.losses import LOSSES, GANLoss, feature_matching
from dcgan.models import Discriminator, Generator
from dcgan.precision import Precision, resolve_precision
from dcgan.reporting import QuietLogger, RunLogger
from dcgan.sampling import (
    STREAM_EPOCHS,
    STREAM_FLIPS,
    STREAM_TRAIN_NOISE,
    render,
    sample_z,
    seed_for,
    z_for_indices,
)

# Order of the per-step statistics accumulated on the device between log intervals.
STAT_KEYS = ("loss_d_real", "loss_d_fake", "loss_g", "d_real", "d_fake", "loss_fm")


@dataclass
class TrainState:
    """Everything that changes during training and must be saved to resume it."""

    generator: Generator
    discriminator: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    fixed_z: torch.Tensor  # (num_samples, nz) preview noise, on the CPU
    noise_rng: torch.Generator  # draws every training z, on the CPU
    step: int = 0
    ema: Generator | None = None  # moving average of G's weights, when enabled
    best_fid: float | None = None  # lowest FID seen by --eval-every, kept across resumes
    ema_calibrated_at: int | None = None  # step whose averaged weights the BN stats match
    scalers: tuple[torch.amp.GradScaler, torch.amp.GradScaler] | None = None  # D's, G's (fp16)
    rollbacks: int = 0  # divergences recovered from by --on-nan rollback
    images_seen: int = 0  # real images trained on, over all processes
    rank: int = 0  # this process's slice of each global batch...
    world: int = 1  # ...of `world` slices (torchrun's processes)
    # What runs G, D in its update and D in G's update: DDP-wrapped over processes and/or
    # torch.compile'd; None: the modules themselves
    runners: tuple[Callable, Callable, Callable] | None = None

    def run_g(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): z (B, nz) -> images (B, C, S, S)."""
        return (self.runners[0] if self.runners else self.generator)(z)

    def run_d(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """D's logits (B,) and block features for images x (B, C, S, S), for D's update."""
        return (self.runners[1] if self.runners else self.discriminator.forward_features)(x)

    def run_d_frozen(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """As `run_d`, for G's update: D's weights get no gradients, so none are averaged."""
        return (self.runners[2] if self.runners else self.discriminator.forward_features)(x)


@dataclass
class TrainResult:
    run_dir: Path
    generator: Generator  # the trained weights
    discriminator: Discriminator
    step: int
    ema: Generator | None = None  # their moving average, when enabled
    stopped_by: str | None = None  # SIGINT or SIGTERM when a signal ended the run early

    @property
    def sampler(self) -> Generator:
        """The generator samples come from: the moving average when there is one."""
        return self.ema if self.ema is not None else self.generator


@dataclass
class Accumulator:
    """Sums of STAT_KEYS kept on the device so the loop never waits for the host."""

    sums: torch.Tensor | None = None
    count: int = 0
    since: float = field(default_factory=time.perf_counter)
    # Combines the sums of every process (their mean) before they are read.
    reduce: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda sums: sums)

    def add(self, values: torch.Tensor) -> None:
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


# ---------------------------------------------------------------------------- set-up helpers


def pick_device(name: str) -> torch.device:
    """'auto' prefers CUDA, then Apple MPS, then the CPU; an unavailable choice is an error."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"device: '{name}' is not available on this machine; use --device cpu")
    return torch.device(name)


def set_determinism(enabled: bool) -> None:
    """Bitwise-reproducible kernels when asked (slower), fastest kernels otherwise."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.benchmark = not enabled
    # TF32 keeps fp32's range with a 10-bit mantissa; GAN training does not notice, and on
    # Ampere or newer fp32 matmuls and convolutions run several times faster with it.
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def with_precision(cfg: Config, device: torch.device) -> Config:
    """`cfg` with precision 'auto' replaced by what it means on `device` (recorded in the run)."""
    return replace(
        cfg, train=replace(cfg.train, precision=resolve_precision(cfg.train.precision, device))
    )


def prepare_images(cfg: Config, images: Any | None) -> ImageSet:
    """uint8 (N, C, S, S) at the model's size: the configured dataset or images given in Python.

    Given images may be uint8 or float in [-1, 1], shaped (N, C, H, W) or (N, H, W).
    """
    m = cfg.model
    if images is None:
        return open_images(cfg.data, m.image_size, m.channels, part="train")
    x = torch.as_tensor(np.asarray(images)) if not torch.is_tensor(images) else images.cpu()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ConfigError(f"images: expected shape (N, C, H, W) or (N, H, W), got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        x = to_uint8(x.float())
    return ImageSet(convert_channels(resize(x, m.image_size), m.channels), source="given images")


def place_data(data: ImageSet, device: torch.device) -> ImageSet:
    """Put the images on the training device when they fit in a quarter of its free memory;
    otherwise they stay in host memory (or memory-mapped on disk) and move batch by batch."""
    if device.type != "cuda":
        return data
    free, _ = torch.cuda.mem_get_info(device)
    nbytes = data.images.numel() * data.images.element_size()
    return data.to(device) if nbytes < free // 4 else data


def real_batch(
    data: ImageSet,
    index: torch.Tensor,
    flip: bool,
    seed: int,
    number: int,
    device: torch.device,
    part: slice = slice(None),
) -> torch.Tensor:
    """This process's `part` of real batch `number` (global image indices `index`), in [-1, 1]
    on `device`; with `flip`, a random half is mirrored, the choice seeded by (seed, number)
    so a resumed run, on any number of processes, flips exactly as an unbroken one."""
    x = data.take(index[part])
    if device.type == "cuda" and not x.is_cuda:
        x = x.pin_memory()  # so the copy below overlaps with the GPU's work
    x = x.to(device, non_blocking=True)
    if flip:
        g = torch.Generator().manual_seed(seed_for(seed, number, STREAM_FLIPS))
        mask = (torch.rand(len(index), generator=g)[part] < 0.5).to(device).view(-1, 1, 1, 1)
        x = torch.where(mask, x.flip(-1), x)
    return to_model_range(x)


def report_data(log: RunLogger, data: ImageSet) -> None:
    """Where the images came from, and every unreadable file that was skipped (in log.txt)."""
    log.info(f"data: {data.source}")
    if data.skipped:
        first = ", ".join(path for path, _ in data.skipped[:3])
        log.info(f"skipped {len(data.skipped)} unreadable files (all listed in log.txt): {first}")
        for path, reason in data.skipped:
            log.detail(f"skipped {path}: {reason}")


def steps_per_epoch(cfg: Config, num_images: int, world: int = 1) -> int:
    """Steps per pass over the data; each step takes `d_steps` global batches of
    `batch_size` images from each of `world` processes."""
    per_step = cfg.train.batch_size * cfg.train.d_steps * world
    if num_images < per_step:
        processes = f" x {world} processes" if world > 1 else ""
        raise ConfigError(
            f"batch_size: {cfg.train.batch_size} x d_steps {cfg.train.d_steps}{processes} needs "
            f"at least {per_step} images but the dataset has {num_images}; lower --batch-size"
        )
    return num_images // per_step


def total_steps(cfg: Config, num_images: int, world: int = 1) -> int:
    return cfg.train.steps or cfg.train.epochs * steps_per_epoch(cfg, num_images, world)


def build_state(
    cfg: Config, device: torch.device, models: tuple | None = None, procs: Processes | None = None
) -> TrainState:
    """Fresh networks (paper init, seeded) or given ones, Adam optimisers and the preview noise;
    with `procs` of several processes, BatchNorm synced (--sync-bn) and G and D under DDP."""
    t, procs = cfg.train, procs or Processes(device)
    torch.manual_seed(t.seed)
    if models is None:
        models = (Generator(cfg.model), Discriminator(cfg.model))
    # channels-last is ~1.25x faster for these convolutions on CPU and on tensor-core GPUs
    g, d = (m.to(device, memory_format=torch.channels_last) for m in models)
    # The average is taken first: it is sampled on rank 0 alone, so it keeps plain BatchNorm.
    ema = make_ema(g) if t.ema > 0 else None
    if t.sync_bn and procs.world > 1:
        g, d = procs.sync_batchnorm(g), procs.sync_batchnorm(d)
    # One fused kernel per parameter instead of a pass per Adam operation: 2.2 against 4.9 ms
    # per step for both networks at 32x32 on the 2-core CPU. The same update.
    fused = device.type in ("cpu", "cuda")
    opt_g = torch.optim.Adam(
        g.parameters(), lr=t.lr_g or t.lr, betas=t.betas_g or (t.beta1, t.beta2), fused=fused
    )
    opt_d = torch.optim.Adam(
        d.parameters(), lr=t.lr_d or t.lr, betas=t.betas_d or (t.beta1, t.beta2), fused=fused
    )
    # The preview grid shows images 0..n-1 of `dcgan generate --seed <run seed>`.
    fixed_z = z_for_indices(t.seed, range(cfg.output.num_samples), cfg.model.nz, t.z_dist)
    noise_rng = torch.Generator().manual_seed(seed_for(t.seed, 0, STREAM_TRAIN_NOISE))
    state = TrainState(g, d, opt_g, opt_d, fixed_z, noise_rng, ema=ema)
    state.rank, state.world = procs.rank, procs.world
    amp = Precision(t.precision, device.type)
    scalers = (amp.scaler(), amp.scaler())  # one per network: each has its own backward
    state.scalers = scalers if scalers[0] is not None else None
    state.runners = make_runners(g, d, t.compile, procs)
    return state


class Features(nn.Module):
    """D's `forward_features` as a module's forward: what DDP wraps and calls."""

    def __init__(self, discriminator: Discriminator):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.discriminator.forward_features(x)


def make_runners(g: Generator, d: Discriminator, compile: bool, procs: Processes):
    """TrainState.runners: G and D's features under DDP over several processes (D's G-update
    runner stays unwrapped) and torch.compile'd with --compile; None when neither applies."""
    if procs.world == 1 and not compile:
        return None
    run_g, run_d, frozen = procs.wrap(g), procs.wrap(Features(d)), d.forward_features
    if compile:
        # Separately: compiling the whole step breaks autograd (G's saved tensors are freed by
        # D's backward); each network alone compiles cleanly.
        run_g, run_d = torch.compile(run_g), torch.compile(run_d)
        frozen = run_d if procs.world == 1 else torch.compile(frozen)
    return run_g, run_d, frozen


# ---------------------------------------------------------------------------- checkpoints


def state_dict(state: TrainState, cfg: Config) -> dict[str, Any]:
    """The full resume state: weights, optimisers, step, preview noise and every RNG."""
    rng = {"torch": torch.get_rng_state(), "noise": state.noise_rng.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "config": to_dict(cfg),
        "step": state.step,
        "generator": state.generator.state_dict(),
        "discriminator": state.discriminator.state_dict(),
        "opt_g": state.opt_g.state_dict(),
        "opt_d": state.opt_d.state_dict(),
        "fixed_z": state.fixed_z,
        "rng": rng,
        "ema": None if state.ema is None else state.ema.state_dict(),
        "best_fid": state.best_fid,
        "scalers": None if state.scalers is None else [s.state_dict() for s in state.scalers],
        "rollbacks": state.rollbacks,
        "images_seen": state.images_seen,
        "world": state.world,  # processes that trained it; any number may resume it
    }


def load_optimizer(opt: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load `saved` into `opt` but keep how `opt` runs (fused or not): that is this machine's
    choice, and a checkpoint from another machine or version must not override it."""
    how = [{k: group[k] for k in ("fused", "foreach") if k in group} for group in opt.param_groups]
    groups = [{**group, **keep} for group, keep in zip(saved["param_groups"], how, strict=True)]
    opt.load_state_dict({**saved, "param_groups": groups})


def restore(state: TrainState, saved: dict[str, Any]) -> None:
    """Load a checkpoint produced by `state_dict` into `state`."""
    state.generator.load_state_dict(saved["generator"])
    state.discriminator.load_state_dict(saved["discriminator"])
    load_optimizer(state.opt_g, saved["opt_g"])
    load_optimizer(state.opt_d, saved["opt_d"])
    if state.ema is not None and saved.get("ema") is not None:
        state.ema.load_state_dict(saved["ema"])
    state.fixed_z = saved["fixed_z"]
    state.step = saved["step"]
    state.best_fid = saved.get("best_fid")
    state.rollbacks = saved.get("rollbacks", 0)
    t = saved["config"]["train"]
    state.images_seen = saved.get("images_seen", state.step * t["batch_size"] * t["d_steps"])
    state.ema_calibrated_at = None  # the average's statistics must be re-estimated
    if state.scalers is not None and saved.get("scalers"):
        for scaler, scaler_state in zip(state.scalers, saved["scalers"], strict=True):
            scaler.load_state_dict(scaler_state)
    state.noise_rng.set_state(saved["rng"]["noise"])
    torch.set_rng_state(saved["rng"]["torch"])
    if "cuda" in saved["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])


def write_checkpoint(run_dir: Path, state: TrainState, cfg: Config, keep: bool) -> Path:
    """Save `latest.pt` (and `step-NNNNNN.pt` when `keep`), then refresh the G export.

    Each file is complete or untouched (temp file, fsync, rename); `latest.pt` is written last,
    so after a failed write it still holds the previous good step.
    """
    ckpt_dir = run_dir / rundir.CHECKPOINT_DIR
    paths = [ckpt_dir / f"step-{state.step:06d}.pt"] if keep else []
    sampling = sampler(state, cfg)  # first, so the saved average has matching statistics
    meta = {"step": state.step, "z_dist": cfg.train.z_dist, "ema": cfg.train.ema}
    try:
        path = save_checkpoint(state_dict(state, cfg), *paths, rundir.latest_checkpoint(run_dir))
        export_generator(sampling, run_dir, meta)
    except OSError as e:
        raise CheckpointError(
            f"could not write the step {state.step} checkpoint in {ckpt_dir} "
            f"({e.strerror or e}); latest.pt still holds the previous one: free space, then "
            f"dcgan train --resume {run_dir}"
        ) from None
    return path


def sampler(state: TrainState, cfg: Config) -> Generator:
    """The generator previews, exports and evaluation use: the moving average (its BatchNorm
    statistics re-estimated for the averaged weights) when enabled, else G itself.

    The average only changes when a step ends, so a preview, an evaluation and a checkpoint
    at the same step share one re-estimation.
    """
    if state.ema is None:
        return state.generator
    if state.ema_calibrated_at != state.step:
        recalibrate_batchnorm(state.ema, cfg.model.nz, cfg.train.z_dist, cfg.train.seed)
        state.ema_calibrated_at = state.step
    return state.ema


def resume_config(run_dir: Path, requested: Config) -> Config:
    """The saved config with the requested safe changes; refuses any other difference."""
    saved = rundir.read_config(run_dir)
    changed = [
        (k, a, b) for k, a, b in diff(saved, requested) if k.split(".")[1] not in RESUMABLE_FIELDS
    ]
    if changed:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed)
        raise ConfigError(
            f"cannot resume {run_dir} with a different config ({shown}); only "
            f"{', '.join(sorted(RESUMABLE_FIELDS))} may change"
        )
    return requested


# ---------------------------------------------------------------------------- step helpers


class BatchSampler:
    """Real batch number b -> image indices; epoch e is a permutation seeded by (seed, e), so the
    order is reproducible from the step count alone and needs no saved state."""

    def __init__(self, num_images: int, batch_size: int, seed: int, per_epoch: int):
        self.n, self.batch_size, self.seed, self.per_epoch = num_images, batch_size, seed, per_epoch
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, batch_number: int) -> torch.Tensor:
        epoch, pos = divmod(batch_number, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(seed_for(self.seed, epoch, STREAM_EPOCHS))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]


def to_model_range(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, S, S) -> float (B, C, S, S) in [-1, 1]: data stays uint8 until it is used."""
    return batch.float().div_(127.5).sub_(1.0).contiguous(memory_format=torch.channels_last)


def clip(model: nn.Module, max_norm: float | None) -> None:
    if max_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)


def optimise(
    loss: torch.Tensor,
    opt: torch.optim.Optimizer,
    model: nn.Module,
    scaler: torch.amp.GradScaler | None,
    max_norm: float | None,
) -> None:
    """Backpropagate `loss` into `model` and take an optimiser step (loss-scaled for fp16)."""
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        clip(model, max_norm)
        opt.step()
        return
    scaler.scale(loss).backward()
    if max_norm is not None:
        scaler.unscale_(opt)  # the norm is meant for the true gradients
        clip(model, max_norm)
    scaler.step(opt)
    scaler.update()


def d_update(
    state: TrainState,
    loss: GANLoss,
    real: torch.Tensor,
    z: torch.Tensor,
    cfg: Config,
    amp: Precision,
):
    """One D step on a real batch and G(z).

    Returns (losses on real and fake (2,), mean D(x) and D(G(z)) (2,), the fakes (B, C, S, S)
    with G's graph, which the G update reuses).
    """
    t = cfg.train
    with amp.autocast():
        fake = state.run_g(z)
        real_logits, fake_logits = state.run_d(real)[0], state.run_d(fake.detach())[0]
    loss_real, loss_fake = loss.d(real_logits, fake_logits, t.real_label)
    scaler = state.scalers[0] if state.scalers else None
    optimise(loss_real + loss_fake, state.opt_d, state.discriminator, scaler, t.grad_clip)
    probs = torch.stack(
        [
            real_logits.detach().float().sigmoid().mean(),
            fake_logits.detach().float().sigmoid().mean(),
        ]
    )
    return torch.stack([loss_real.detach(), loss_fake.detach()]), probs, fake


def g_update(
    state: TrainState,
    loss: GANLoss,
    fake: torch.Tensor,
    real: torch.Tensor,
    fm_weight: float,
    cfg: Config,
    amp: Precision,
):
    """One G step on `fake` (B, C, S, S) with its graph; D's weights get no gradients here."""
    d = state.discriminator
    d.requires_grad_(False)  # skips D's weight gradients: only G is updated
    with amp.autocast():
        logits, fake_feats = state.run_d_frozen(fake)
    loss_g = loss.g(logits)
    loss_fm = torch.zeros((), device=fake.device)
    if fm_weight > 0:
        with torch.no_grad(), amp.autocast():
            _, real_feats = state.run_d_frozen(real)
        loss_fm = feature_matching(real_feats, fake_feats)
        loss_g = loss_g + fm_weight * loss_fm
    scaler = state.scalers[1] if state.scalers else None
    try:
        optimise(loss_g, state.opt_g, state.generator, scaler, cfg.train.grad_clip)
    finally:
        d.requires_grad_(True)
    return torch.stack([loss_g.detach(), loss_fm.detach()])


class RealBatches:
    """Real batch number b -> images (B, C, S, S) in [-1, 1] on the device, channels-last.

    Over `world` processes, batch b is one global batch of world * B images, reshuffled each
    epoch; process `rank` takes its slice, so the processes see disjoint images and the global
    batch is the one a single process with batch world * B would see.
    """

    def __init__(
        self, data: ImageSet, cfg: Config, device: torch.device, rank: int = 0, world: int = 1
    ):
        self.data, self.flip, self.seed, self.device = data, cfg.data.flip, cfg.train.seed, device
        per_epoch = steps_per_epoch(cfg, len(data), world)
        size = cfg.train.batch_size
        self.sampler = BatchSampler(len(data), size * world, cfg.train.seed, per_epoch)
        self.part = slice(rank * size, (rank + 1) * size)

    def __call__(self, number: int) -> torch.Tensor:
        index = self.sampler.indices(number)
        return real_batch(self.data, index, self.flip, self.seed, number, self.device, self.part)


def draw_z(state: TrainState, batch: int, cfg: Config) -> torch.Tensor:
    """This process's (batch, nz) share of a global batch of training noise: every process
    draws the same global noise (so the run does not depend on their number) and keeps its
    slice."""
    z = sample_z(batch * state.world, cfg.model.nz, cfg.train.z_dist, state.noise_rng)
    return z[state.rank * batch : (state.rank + 1) * batch]


def train_step(
    state: TrainState, reals: RealBatches, loss: GANLoss, amp: Precision, cfg: Config
) -> torch.Tensor:
    """One training step: `d_steps` D updates, each on a fresh real batch, then `g_steps` G
    updates (the first reuses D's fakes, later ones draw new z), then the moving average.

    Returns the step's STAT_KEYS values (6,) on the device: reading them would wait for it.
    """
    t = cfg.train
    for k in range(t.d_steps):
        real = reals(state.step * t.d_steps + k)
        z = draw_z(state, len(real), cfg).to(real.device)
        d_losses, d_probs, fake = d_update(state, loss, real, z, cfg, amp)
    fm_weight = fm_weight_at(cfg, state.step)
    for k in range(t.g_steps):
        if k > 0:
            z = draw_z(state, len(real), cfg).to(real.device)
            with amp.autocast():
                fake = state.run_g(z)
        g_losses = g_update(state, loss, fake, real, fm_weight, cfg, amp)
    if state.ema is not None:
        update_ema(state.ema, state.generator, decay_at(t.ema, state.step))
    state.step += 1
    state.images_seen += len(real) * state.world * t.d_steps
    return torch.cat([d_losses, g_losses[:1], d_probs, g_losses[1:]])


def fm_weight_at(cfg: Config, step: int) -> float:
    """Feature-matching weight, decayed linearly from its initial value to 0."""
    t = cfg.train
    return t.feature_matching * max(0.0, 1.0 - step / t.feature_matching_steps)


# ---------------------------------------------------------------------------- periodic work


def write_sample(run_dir: Path, state: TrainState, cfg: Config) -> Path:
    """Preview grid from the fixed noise, G (or its average) in eval mode without gradients."""
    images = render(sampler(state, cfg), state.fixed_z)
    return save_png(make_grid(images), run_dir / rundir.SAMPLES_DIR / f"step-{state.step:06d}.png")


def make_record(state: TrainState, cfg: Config, acc: Accumulator, per_epoch: int) -> dict[str, Any]:
    """One stats.jsonl row from the accumulated means (the only host sync of a log interval)."""
    steps_done = acc.count
    means, seconds = acc.pop()
    t = cfg.train
    global_batch = t.batch_size * state.world
    images = steps_done * global_batch * t.d_steps
    rec = {
        "step": state.step,
        "epoch": round(state.step / per_epoch, 4),
        "images_seen": state.images_seen,
        "global_batch": global_batch,
        **{k: round(v, 6) for k, v in means.items()},
        "loss_d": round(means["loss_d_real"] + means["loss_d_fake"], 6),
        "lr_g": state.opt_g.param_groups[0]["lr"],
        "lr_d": state.opt_d.param_groups[0]["lr"],
        "images_per_s": round(images / max(seconds, 1e-9), 1),
    }
    return rec


def evaluate_fid(run_dir: Path, state: TrainState, cfg: Config, tracker, log: RunLogger) -> None:
    """Record the sampling generator's FID; export it as `generator-best` when it improves."""
    generator = sampler(state, cfg)
    try:
        value = tracker(generator)
    except ValueError as e:  # an ill-conditioned FID: too few samples for its 2048 features
        raise ConfigError(f"eval_samples: {e}; raise --eval-samples") from None
    if state.best_fid is None or value < state.best_fid:
        state.best_fid = value
        meta = {"step": state.step, "z_dist": cfg.train.z_dist, "fid": value}
        export_generator(generator, run_dir, meta, name="generator-best")
    log.metric({"step": state.step, "fid": round(value, 4), "best_fid": round(state.best_fid, 4)})


def periodic(
    run_dir: Path,
    state: TrainState,
    cfg: Config,
    acc: Accumulator,
    log: RunLogger,
    per_epoch: int,
    last: bool,
    watch: DivergenceWatch,
    procs: Processes,
    tracker=None,
) -> None:
    """Stats, preview grids, FID and checkpoints, each on its own interval (all at the end);
    nothing is written before the divergence check passes, and only rank 0 writes."""
    o, step = cfg.output, state.step
    log.advance()
    due_log = acc.count and (step % o.log_every == 0 or last)
    due_sample = step % o.sample_every == 0 or last
    due_eval = o.eval_every > 0 and (step % o.eval_every == 0 or last)
    due_ckpt = step % o.checkpoint_every == 0 or last
    if not (due_log or due_sample or due_eval or due_ckpt):
        return
    check_finite(state, watch, procs)
    record = make_record(state, cfg, acc, per_epoch) if due_log else None  # every rank's mean

    def write() -> None:
        if record is not None:
            log.record(record)
        if due_sample:
            write_sample(run_dir, state, cfg)
        if due_eval:
            evaluate_fid(run_dir, state, cfg, tracker, log)  # before the checkpoint saves best_fid
        if due_ckpt:
            write_checkpoint(run_dir, state, cfg, keep=step % o.checkpoint_every == 0)

    procs.on_main(write)


def check_finite(state: TrainState, watch: DivergenceWatch, procs: Processes) -> None:
    """Raise Diverged on every rank when any rank saw a non-finite statistic or weight."""
    nets = {"generator": state.generator, "discriminator": state.discriminator}
    try:
        watch.check(state.step, nets)
        problem = None
    except Diverged as e:
        problem = str(e)
    problems = [p for p in procs.gather(problem) if p is not None]
    if problems:
        raise Diverged(problems[0])


def roll_back(
    run_dir: Path,
    state: TrainState,
    cfg: Config,
    error: Diverged,
    log: RunLogger,
    procs: Processes,
) -> None:
    """--on-nan rollback: reload the last good checkpoint with both learning rates lowered;
    re-raise `error` (with what to do) when stopping is asked for or the rollbacks are spent."""
    t, latest = cfg.train, rundir.latest_checkpoint(run_dir)
    if t.on_nan != "rollback" or state.rollbacks >= t.max_rollbacks:
        spent = f"{state.rollbacks} rollbacks spent; " if t.on_nan == "rollback" else ""
        raise Diverged(
            f"{error}; nothing was saved after it: {latest} holds the last good step. "
            f"{spent}Resume with --on-nan rollback (it lowers the learning rates), or start "
            f"again with a lower --lr"
        ) from None
    optimisers = (state.opt_g, state.opt_d)
    lowered = [g["lr"] * t.rollback_lr_factor for opt in optimisers for g in opt.param_groups]
    count = state.rollbacks + 1
    restore(state, load_checkpoint(latest))  # replaces the optimisers' parameter groups
    procs.seed(t.seed, state.step)
    groups = [g for opt in optimisers for g in opt.param_groups]
    for group, lr in zip(groups, lowered, strict=True):
        group["lr"] = lr
    state.rollbacks = count
    procs.on_main(rundir.truncate_stats, run_dir, state.step)
    log.info(
        f"{error}; rolled back to step {state.step} with learning rates x{t.rollback_lr_factor} "
        f"(rollback {count} of {t.max_rollbacks})"
    )


def stop_early(run_dir: Path, state: TrainState, cfg: Config, signal: str, log: RunLogger) -> None:
    """After SIGINT/SIGTERM: checkpoint the finished step (unless just done); say how to go on."""
    latest = rundir.latest_checkpoint(run_dir)
    if state.step % cfg.output.checkpoint_every != 0:
        write_checkpoint(run_dir, state, cfg, keep=False)
    log.info(f"stopped by {signal} at step {state.step}; checkpoint {latest}")
    log.info(f"resume with: dcgan train --resume {run_dir}")


def make_tracker(cfg: Config, device: torch.device, log: RunLogger):
    """The FID evaluator for --eval-every (its reference features computed or loaded now)."""
    if cfg.output.eval_every == 0:
        return None
    from dcgan.evaluation import FIDTracker

    log.info(f"FID every {cfg.output.eval_every} steps on {cfg.output.eval_samples} images")
    return FIDTracker(cfg, device)


def finish(run_dir: Path, log: RunLogger) -> None:
    """The run's summary figures: progress.gif from the preview grids and losses.png."""
    from dcgan.plots import plot_losses

    frames = sorted((run_dir / rundir.SAMPLES_DIR).glob("step-*.png"))
    if frames:
        save_gif(frames, run_dir / "progress.gif")
    records = rundir.read_stats(run_dir)
    if records:
        plot_losses(records, run_dir / "losses.png")
    log.info(f"samples: {run_dir / rundir.SAMPLES_DIR}  (latest grid: {frames[-1].name})")


# ---------------------------------------------------------------------------- the loop


def train(
    cfg: Config,
    images: Any | None = None,
    *,
    resume: str | Path | None = None,
    models: tuple[Generator, Discriminator] | None = None,
) -> TrainResult:
    """Train a DCGAN as `cfg` says and return the run directory and the trained networks.

    images: optional training images (uint8 or float in [-1, 1], (N, C, H, W)) instead of
    `cfg.data`; resume: a run directory to continue; models: networks to start from.
    Under torchrun, this process joins the group and trains its share of each global batch.
    """
    with distributed.start(pick_device(cfg.train.device)) as procs:
        return train_on(procs, cfg, images, resume=resume, models=models)


def train_on(
    procs: Processes,
    cfg: Config,
    images: Any | None = None,
    *,
    resume: str | Path | None = None,
    models: tuple[Generator, Discriminator] | None = None,
) -> TrainResult:
    """The training loop of `train`, run by each of `procs`' processes (one without torchrun)."""
    # --- set-up: determinism, and the run to continue: the one asked for, or after torchrun
    # restarted the worker group, the run its first attempt started
    device = procs.device
    set_determinism(cfg.train.deterministic)
    if resume is None:
        resume = procs.on_main(distributed.restarted_run, cfg.output.out, share=True)
    if resume is not None:
        cfg = resume_config(Path(resume), cfg)
    cfg = with_precision(cfg, device)

    # --- data: decoded once (rank 0 first, filling the cache), kept as uint8 on the device,
    # normalised per batch; each process takes its slice of every global batch
    data = procs.main_first(lambda: place_data(prepare_images(cfg, images), device))
    per_epoch = steps_per_epoch(cfg, len(data), procs.world)
    n_steps = total_steps(cfg, len(data), procs.world)
    reals = RealBatches(data, cfg, device, procs.rank, procs.world)

    # --- model and optimiser state, fresh or restored; the run directory only once all is valid
    state = build_state(cfg, device, models, procs)
    if resume is not None:
        run_dir = Path(resume)
        resume_state(run_dir, state, procs)
    else:
        run_dir = procs.on_main(new_run_dir, cfg, share=True)
    procs.seed(cfg.train.seed, state.step)
    procs.on_main(rundir.write_config, run_dir, cfg)
    loss = LOSSES[cfg.train.loss]
    log = RunLogger(run_dir, n_steps, state.step) if procs.main else QuietLogger()
    log.info(
        f"run {run_dir}: {len(data)} images, {per_epoch} steps/epoch, "
        f"steps {state.step}->{n_steps}, device {device}, precision {cfg.train.precision}"
    )
    report_processes(log, cfg, procs)
    report_data(log, data)
    if state.step == 0:
        procs.on_main(write_start, run_dir, state, cfg)
    acc, watch = Accumulator(reduce=procs.mean), DivergenceWatch(STAT_KEYS)
    amp = Precision(cfg.train.precision, device.type)
    tracker = procs.on_main(make_tracker, cfg, device, log)

    stopped = None
    with GracefulStop() as stop:
        try:
            while state.step < n_steps:
                # --- a signal to any process stops them all, at the same step
                stopped = procs.any_signal(stop.signal)
                if stopped is not None:
                    break
                # --- the updates: D, G and the average, statistics kept on the device
                stats = train_step(state, reals, loss, amp, cfg)
                acc.add(stats)
                watch.add(state.step, stats)
                # --- bookkeeping: logs, samples, FID and checkpoints, each on its interval
                last = state.step == n_steps
                try:
                    periodic(run_dir, state, cfg, acc, log, per_epoch, last, watch, procs, tracker)
                except Diverged as e:
                    roll_back(run_dir, state, cfg, e, log, procs)
                    acc.reset()
                    watch.reset()
            # --- the end: the summary figures, or a checkpoint and how to resume after a signal
            if stopped is None:
                procs.on_main(finish, run_dir, log)
                procs.on_main(distributed.forget_run, cfg.output.out)
            else:
                check_finite(state, watch, procs)
                procs.on_main(stop_early, run_dir, state, cfg, stopped, log)
        finally:
            log.close()
    result = TrainResult(run_dir, state.generator, state.discriminator, state.step, state.ema)
    result.stopped_by = stopped
    return result


def new_run_dir(cfg: Config) -> Path:
    """A fresh numbered run directory, recorded for a torchrun restart to find."""
    run_dir = rundir.create_run_dir(cfg)
    distributed.remember_run(cfg.output.out, run_dir)
    return run_dir


def report_processes(log: RunLogger, cfg: Config, procs: Processes) -> None:
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


def write_start(run_dir: Path, state: TrainState, cfg: Config) -> None:
    """A fresh run's step-0 preview and checkpoint: a start to resume or roll back to."""
    write_sample(run_dir, state, cfg)
    write_checkpoint(run_dir, state, cfg, keep=False)


def resume_state(run_dir: Path, state: TrainState, procs: Processes) -> None:
    """Load the run's latest checkpoint into `state`; a run killed before its first checkpoint
    has nothing to lose and starts again from step 0."""
    latest = rundir.latest_checkpoint(run_dir)
    if latest.exists() or rundir.read_stats(run_dir):
        restore(state, load_checkpoint(latest))
    procs.on_main(rundir.truncate_stats, run_dir, state.step)
