"""One training step: `d_steps` discriminator updates (each on its own real batch), then
`g_steps` generator updates, then the moving average of G.

Nothing here waits for the device: the statistics come back as tensors on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

from dcgan.config import Config
from dcgan.nn.ema import decay_at, update_ema
from dcgan.nn.losses import GANLoss, feature_matching, r1_penalty
from dcgan.nn.models import mbstd_group_size
from dcgan.seeding import STREAM_FAKE_LABELS, sample_z, seed_for, update_number
from dcgan.training.precision import Precision
from dcgan.training.state import TrainState

if TYPE_CHECKING:
    from dcgan.training.batches import RealBatches


@dataclass
class StepStats:
    """One step's statistics: 0-dim tensors on the device (reading them waits for it)."""

    loss_d_real: torch.Tensor
    loss_d_fake: torch.Tensor
    loss_g: torch.Tensor
    d_real: torch.Tensor  # mean sigmoid(D(x)) over the real batch
    d_fake: torch.Tensor  # mean sigmoid(D(G(z))) over the fakes
    loss_fm: torch.Tensor  # the feature-matching term (0 when off)
    rt: torch.Tensor  # mean sign(D(x)) over the real batch: ADA's overfitting signal

    def stacked(self) -> torch.Tensor:
        """(len(STAT_KEYS),) in STAT_KEYS order: one tensor to sum and check on the device."""
        return torch.stack([getattr(self, key) for key in STAT_KEYS])


STAT_KEYS = tuple(f.name for f in fields(StepStats))


@dataclass
class DUpdate:
    """What D's update leaves for G's: its losses and outputs, and the fakes with G's graph."""

    loss_real: torch.Tensor
    loss_fake: torch.Tensor
    d_real: torch.Tensor
    d_fake: torch.Tensor
    rt: torch.Tensor
    fake: torch.Tensor  # (B, C, S, S)
    fake_labels: torch.Tensor | None  # (B,) the fakes' classes in a conditional run


@dataclass(frozen=True)
class Updates:
    """What every update of one step reads: the training state, the loss, the precision and
    the settings."""

    state: TrainState
    loss: GANLoss
    amp: Precision
    cfg: Config


class Classes(NamedTuple):
    """The classes (B,) of one update's real and fake images; None for unconditional runs."""

    real: torch.Tensor | None = None
    fake: torch.Tensor | None = None


def train_step(
    state: TrainState,
    reals: RealBatches,
    loss: GANLoss,
    amp: Precision,
    cfg: Config,
) -> StepStats:
    """One step: `d_steps` D updates, each on a fresh real batch (`reals(number)`), then
    `g_steps` G updates (the first reuses D's fakes, later ones draw new z), then the average.
    With --augment, every image D sees goes through the augmenter first. A conditional run's
    real classes come from `reals.labels(number)`, its fakes' classes from a seeded stream."""
    t, updates = cfg.train, Updates(state, loss, amp, cfg)
    for k in range(t.d_steps):
        number, update = state.step * t.d_steps + k, update_number(state.step, k)
        real = reals(number)
        z = draw_z(state, len(real), cfg).to(real.device)
        fakes = draw_labels(state, len(real), cfg, update)
        classes = Classes(real_labels(reals, number, cfg), fakes)
        d = d_update(updates, real, z, update, classes)
    fake, fm_weight = d.fake, fm_weight_at(cfg, state.step)
    for k in range(t.g_steps):
        update = update_number(state.step, t.d_steps + k)
        if k > 0:
            z = draw_z(state, len(real), cfg).to(real.device)
            classes = Classes(classes.real, draw_labels(state, len(real), cfg, update))
            with amp.autocast():
                fake = state.runners.g(z, classes.fake)
        loss_g, loss_fm = g_update(updates, fake, real, fm_weight, update, classes)
    if state.ema is not None:
        update_ema(state.ema, state.generator, decay_at(t.ema, state.step))
    if state.ada is not None:
        state.ada.add(d.rt)
    state.step += 1
    state.images_seen += len(real) * state.world * t.d_steps
    return StepStats(
        loss_d_real=d.loss_real,
        loss_d_fake=d.loss_fake,
        loss_g=loss_g,
        d_real=d.d_real,
        d_fake=d.d_fake,
        loss_fm=loss_fm,
        rt=d.rt,
    )


def real_labels(reals: RealBatches, number: int, cfg: Config) -> torch.Tensor | None:
    """The classes (B,) of real batch `number` in a conditional run, on the batch's device."""
    return reals.labels(number) if cfg.model.conditional else None


def draw_labels(state: TrainState, batch: int, cfg: Config, update: int) -> torch.Tensor | None:
    """This process's (batch,) share of uniformly drawn classes for the fakes of training
    update `update` (`seeding.update_number`; None when unconditional). Drawn from (seed,
    update) for the global batch, so resumes and process counts never change them."""
    if not cfg.model.conditional:
        return None
    g = torch.Generator().manual_seed(seed_for(cfg.train.seed, update, STREAM_FAKE_LABELS))
    labels = torch.randint(cfg.model.num_classes, (batch * state.world,), generator=g)
    device = next(state.generator.parameters()).device
    return labels[state.rank * batch : (state.rank + 1) * batch].to(device)


UNCONDITIONAL = Classes()


def augmented(state: TrainState, x: torch.Tensor, update: int, call: int) -> torch.Tensor:
    """x (B, C, S, S) as D sees it: through the augmenter (call `call` of training update
    `update`) if any."""
    return x if state.augmenter is None else state.augmenter(x, update, call)


def draw_z(state: TrainState, batch: int, cfg: Config) -> torch.Tensor:
    """This process's (batch, nz) share of a global batch of training noise: every process
    draws the same global noise (so the run does not depend on their number) and keeps its
    slice."""
    z = sample_z(batch * state.world, cfg.model.nz, cfg.train.z_dist, state.noise_rng)
    return z[state.rank * batch : (state.rank + 1) * batch]


def fm_weight_at(cfg: Config, step: int) -> float:
    """Feature-matching weight: decayed linearly from its initial value to 0 over
    `feature_matching_steps`, or held for the whole run when that is 0."""
    t = cfg.train
    if t.feature_matching_steps == 0:
        return t.feature_matching
    return t.feature_matching * max(0.0, 1.0 - step / t.feature_matching_steps)


def lr_scale_at(decay: float, step: int, total: int) -> float:
    """The learning rates' multiplier at `step` of `total`: 1, then over the last `decay`
    fraction of the run a straight line that would reach 0 at `total` (the last update keeps a
    small positive rate)."""
    span = decay * total
    return 1.0 if span <= 0 else min(1.0, (total - step) / span)


def scale_learning_rates(state: TrainState, scale: float) -> None:
    """Set each optimiser group's rate to `scale` times its base rate (`initial_lr`, which is
    saved with the optimiser, so a resumed run continues the same schedule)."""
    for opt in (state.opt_g, state.opt_d):
        for group in opt.param_groups:
            group["lr"] = group.setdefault("initial_lr", group["lr"]) * scale


def d_update(
    updates: Updates,
    real: torch.Tensor,
    z: torch.Tensor,
    update: int,
    classes: Classes = UNCONDITIONAL,
) -> DUpdate:
    """One D step on a real batch (B, C, S, S) and G(z), z (B, nz), conditioned on `classes`
    in a conditional run, as training update `update` (`seeding.update_number`). With
    --r1-gamma, every `r1_every` steps D's loss gains the R1 penalty at the (augmented) reals."""
    state, t = updates.state, updates.cfg.train
    r1 = t.r1_gamma > 0 and state.step % t.r1_every == 0
    # R1 differentiates D twice: the plain module, as torch.compile'd graphs cannot
    run_d = state.discriminator.forward_features if r1 else state.runners.d
    with updates.amp.autocast():
        fake = state.runners.g(z, classes.fake)
        seen = augmented(state, real, update, 0)
        if r1:
            seen = seen.detach().requires_grad_(True)
        fake_seen = augmented(state, fake.detach(), update, 1)
        mbstd = updates.cfg.model.mbstd_group
        pair = d_pair(run_d, seen, fake_seen, classes, t.joint_d_batch, mbstd, features=False)
        real_logits, fake_logits = pair.real_logits, pair.fake_logits
    loss_real, loss_fake = updates.loss.d(real_logits, fake_logits, t.real_label)
    loss = loss_real + loss_fake
    if r1:  # lazy: every r1_every steps, weighted by it (StyleGAN2)
        loss = loss + r1_penalty(real_logits, seen) * (t.r1_gamma / 2 * t.r1_every)
    scaler = state.scalers.d if state.scalers else None
    optimise(loss, state.opt_d, state.discriminator, scaler, t.grad_clip)
    real_logits, fake_logits = real_logits.detach().float(), fake_logits.detach().float()
    return DUpdate(
        loss_real=loss_real.detach(),
        loss_fake=loss_fake.detach(),
        d_real=real_logits.sigmoid().mean(),
        d_fake=fake_logits.sigmoid().mean(),
        rt=real_logits.sign().mean(),
        fake=fake,
        fake_labels=classes.fake,
    )


class DPair(NamedTuple):
    """D's outputs on a batch of reals and a batch of fakes."""

    real_logits: torch.Tensor  # (B,)
    fake_logits: torch.Tensor  # (B,)
    feats: list[torch.Tensor]  # each block's output (2B, C, H, W), reals and fakes as rows
    fake_rows: torch.Tensor  # bool (2B,): the rows of `feats` that are fakes


def d_pair(
    run_d: Callable,
    real: torch.Tensor,
    fake: torch.Tensor,
    classes: Classes,
    joint: bool,
    mbstd_group: int = 0,
    features: bool = True,
) -> DPair:
    """D (`run_d`, returning logits and block features) on reals and fakes, both (B, C, S, S):
    as two batches, or with `joint` as one batch of both, so that D's BatchNorm statistics
    span them (--joint-d-batch). The joint batch is laid out so that D's minibatch-std groups
    of `mbstd_group` (`minibatch_std`: image i in group i mod (2B / g)) are the groups each
    half would form alone, reals with reals and fakes with fakes (see `joint_layout`).

    Without `features` the feature list is empty: D's update has no use for it. Joint, the
    features are the batch D saw, rows in the layout's order, not parted into reals and fakes:
    parting them would cost a copy, and its gradient a slow path (`feature_matching`).
    """
    if not joint:
        real_logits, real_feats = run_d(real, classes.real)
        fake_logits, fake_feats = run_d(fake, classes.fake)
        if not features:
            real_feats = fake_feats = []
        return DPair(real_logits, fake_logits, *stacked_rows(real_feats, fake_feats, fake))
    run = joint_layout(len(real), mbstd_group)
    labels = None if classes.real is None else run.join(classes.real, classes.fake)
    logits, feats = run_d(run.join(real, fake), labels)
    real_logits, fake_logits = run.split(logits)
    return DPair(real_logits, fake_logits, feats if features else [], run.fake_rows(real.device))


def stacked_rows(
    real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor], fake: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """D's block outputs on B reals and on B fakes `fake`, run apart (each (B, C, H, W)), as
    one list of (2B, C, H, W), reals first (the joint layout of one run), and the bool (2B,)
    marking the fakes' rows."""
    stacked = JointLayout(len(fake), len(fake))
    feats = [stacked.join(r, f) for r, f in zip(real_feats, fake_feats, strict=True)]
    return feats, stacked.fake_rows(fake.device)


class JointLayout(NamedTuple):
    """How B reals and B fakes interleave into one batch of 2B: runs of `run` reals then `run`
    fakes (run = B: all reals, then all fakes)."""

    batch: int
    run: int

    def join(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """real, fake (B, ...) -> (2B, ...) in runs of `run`; cat keeps a channels-last layout."""
        runs = zip(real.split(self.run), fake.split(self.run), strict=True)
        return torch.cat([part for pair in runs for part in pair])

    def fake_rows(self, device: torch.device | None = None) -> torch.Tensor:
        """bool (2B,): which rows of a joined batch are fakes."""
        real = torch.zeros(self.batch, dtype=torch.bool, device=device)
        return self.join(real, torch.ones_like(real))

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(2B, ...) laid out by `join` -> (real part (B, ...), fake part (B, ...))."""
        if self.run == self.batch:
            return x[: self.batch], x[self.batch :]
        runs = x.split(self.run)
        return torch.cat(runs[0::2]), torch.cat(runs[1::2])


def joint_layout(batch: int, mbstd_group: int) -> JointLayout:
    """The joint batch's layout for B = `batch` and D's minibatch-std `mbstd_group`.

    Alone, B images form groups of g = `mbstd_group_size`(B), image i in group i mod (B / g);
    together, 2B images form groups of g2 = `mbstd_group_size`(2B). When g2 = g, runs of B / g
    reals and B / g fakes put every real i in group i mod (B / g) with the same reals as alone,
    and every group holds only reals or only fakes. Otherwise (2B splits into larger groups
    than B, as for B = 6 and group 4) no layout keeps them apart, and the halves are simply
    stacked."""
    if mbstd_group > 0:
        g = mbstd_group_size(batch, mbstd_group)
        if mbstd_group_size(2 * batch, mbstd_group) == g:
            return JointLayout(batch, batch // g)
    return JointLayout(batch, batch)


def g_update(
    updates: Updates,
    fake: torch.Tensor,
    real: torch.Tensor,
    fm_weight: float,
    update: int,
    classes: Classes = UNCONDITIONAL,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One G step on `fake` (B, C, S, S) with its graph, as training update `update`; D's
    weights get no gradients here. Augmentation: call 0 the fakes, call 1 the reals (which
    D sees only for feature matching or, with --joint-d-batch, in the same batch as the fakes).

    Returns G's loss and the feature-matching term, detached.
    """
    state, amp, cfg = updates.state, updates.amp, updates.cfg
    joint, d = cfg.train.joint_d_batch, state.discriminator
    d.requires_grad_(False)  # skips D's weight gradients: only G is updated
    with amp.autocast():
        seen = augmented(state, fake, update, 0)
        if joint:  # the reals only set D's batch statistics here: no gradient through them
            real_seen = augmented(state, real, update, 1).detach()
            pair = d_pair(
                state.runners.d_frozen,
                real_seen,
                seen,
                classes,
                joint=True,
                mbstd_group=cfg.model.mbstd_group,
                features=fm_weight > 0,
            )
            logits, feats, fake_rows = pair.fake_logits, pair.feats, pair.fake_rows
        else:
            logits, fake_feats = state.runners.d_frozen(seen, classes.fake)
    loss_g = updates.loss.g(logits)
    loss_fm = torch.zeros((), device=fake.device)
    if fm_weight > 0:
        if not joint:
            with torch.no_grad(), amp.autocast():
                real_seen = augmented(state, real, update, 1)
                _, real_feats = state.runners.d_frozen(real_seen, classes.real)
            feats, fake_rows = stacked_rows(real_feats, fake_feats, fake)
        loss_fm = feature_matching(feats, fake_rows)
        loss_g = loss_g + fm_weight * loss_fm
    scaler = state.scalers.g if state.scalers else None
    try:
        optimise(loss_g, state.opt_g, state.generator, scaler, cfg.train.grad_clip)
    finally:
        d.requires_grad_(True)
    return loss_g.detach(), loss_fm.detach()


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


def clip(model: nn.Module, max_norm: float | None) -> None:
    """Clip the global gradient norm of `model`'s parameters to `max_norm` (None: no clip)."""
    if max_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
