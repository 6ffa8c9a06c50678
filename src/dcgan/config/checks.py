"""Impossible values: each check names the setting and the range or choices that would work."""

from __future__ import annotations

import math

from dcgan.config.schema import (
    AUGMENT_POLICIES,
    COND_D,
    COND_G,
    DATASET_NAMES,
    LOSS_NAMES,
    MAX_CLASSES,
    PRECISIONS,
    SPLITS,
    Z_DISTRIBUTIONS,
    Config,
    TrainConfig,
)
from dcgan.device import DEVICES
from dcgan.errors import ConfigError, require_positive, shown
from dcgan.seeding import MAX_SEED

MAX_MINUTES = 525_600.0  # a year: beyond it a typo, not a plan
MAX_R1_GAMMA = 1e6  # papers use 0.01-100; beyond this a typo


def validate(cfg: Config) -> Config:
    """Raise ConfigError for impossible values; return cfg unchanged otherwise."""
    m, t, o = cfg.model, cfg.train, cfg.output
    size = m.image_size
    if size < 16 or size > 512 or size & (size - 1):
        raise ConfigError(
            f"image_size: {size} is not supported; use a power of two from 16 to 512 "
            "(16, 32, 64, 128, 256, 512)"
        )
    _positive(channels=m.channels, nz=m.nz, ngf=m.ngf, ndf=m.ndf, max_mult=m.max_mult)
    _positive(batch_size=t.batch_size, g_steps=t.g_steps, d_steps=t.d_steps)
    # Far beyond any real use: a typo here would otherwise surface as an allocation failure.
    _at_most(channels=(m.channels, 64), nz=(m.nz, 8192), ngf=(m.ngf, 8192), ndf=(m.ndf, 8192))
    _at_most(max_mult=(m.max_mult, 64), batch_size=(t.batch_size, 65536))
    if not 0 <= m.mbstd_group <= 1024:
        raise ConfigError(f"mbstd_group: {m.mbstd_group} must be in [0, 1024] (0 turns it off)")
    _at_most(g_steps=(t.g_steps, 100), d_steps=(t.d_steps, 100), num_samples=(o.num_samples, 4096))
    _positive(log_every=o.log_every, sample_every=o.sample_every)
    _positive(checkpoint_every=o.checkpoint_every, num_samples=o.num_samples)
    if t.steps is None:
        _positive(epochs=t.epochs)
    else:
        _positive(steps=t.steps)
    _check_rates(t)
    betas = [("beta1", t.beta1), ("beta2", t.beta2)]
    betas += [(n, b) for n in ("betas_g", "betas_d") for b in (getattr(t, n) or ())]
    for name, b in betas:
        if not 0.0 <= b < 1.0:
            raise ConfigError(f"{name}: {b} must be in [0, 1)")
    _in_range(d_dropout=(m.d_dropout, 0.0, 1.0, True), real_label=(t.real_label, 0.0, 1.0, False))
    if not (math.isfinite(t.ema) and 0.0 <= t.ema < 1.0):
        raise ConfigError(f"ema: {t.ema} must be in [0, 1) (0 turns the average off)")
    _check_feature_matching(t)
    if not (math.isfinite(t.r1_gamma) and 0.0 <= t.r1_gamma <= MAX_R1_GAMMA):
        raise ConfigError(f"r1_gamma: {t.r1_gamma} must be in [0, {MAX_R1_GAMMA}] (0: off)")
    _positive(r1_every=t.r1_every)
    _choice("cond_g", m.cond_g, COND_G)
    _choice("cond_d", m.cond_d, COND_D)
    if m.num_classes < 0 or m.num_classes > MAX_CLASSES:
        raise ConfigError(
            f"num_classes: {m.num_classes} must be in [0, {MAX_CLASSES}] (0: the dataset's)"
        )
    if m.num_classes and not m.conditional:
        raise ConfigError(f"num_classes: {m.num_classes} is set but the model is not --conditional")
    _choice("loss", t.loss, LOSS_NAMES)
    _choice("device", t.device, DEVICES)
    _choice("precision", t.precision, PRECISIONS)
    _choice("on_nan", t.on_nan, ("stop", "rollback"))
    if t.max_rollbacks < 0:
        raise ConfigError(f"max_rollbacks: {t.max_rollbacks} must be >= 0")
    _in_range(rollback_lr_factor=(t.rollback_lr_factor, 0.0, 1.0, False))
    _choice("z_dist", t.z_dist, Z_DISTRIBUTIONS)
    _check_augmentation(cfg)
    if not 0 <= t.seed <= MAX_SEED:
        raise ConfigError(f"seed: {t.seed} must be in [0, 2**63 - 1]")
    _check_data_and_output(cfg)
    return cfg


def _check_data_and_output(cfg: Config) -> None:
    d, o = cfg.data, cfg.output
    if d.holdout < 0:
        raise ConfigError(f"holdout: {d.holdout} must be >= 0")
    if d.workers is not None and d.workers < 0:
        raise ConfigError(f"workers: {d.workers} must be >= 0 (0 decodes in this process)")
    if not (math.isfinite(d.max_bad_fraction) and 0.0 <= d.max_bad_fraction < 1.0):
        raise ConfigError(f"max_bad_fraction: {d.max_bad_fraction} must be in [0, 1)")
    _choice("split", d.split, SPLITS)
    if o.eval_every < 0:
        raise ConfigError(f"eval_every: {o.eval_every} must be >= 0 (0 turns evaluation off)")
    if o.eval_samples < 2:
        raise ConfigError(f"eval_samples: {o.eval_samples} must be at least 2 (FID needs a spread)")
    _choice("eval_reference", o.eval_reference, ("auto", "holdout", "train", "test", "all"))
    _choice("dataset", d.dataset, DATASET_NAMES)


def augment_policies(text: str) -> tuple[str, ...]:
    """'cutout,translation' -> ('translation', 'cutout'), in the order they are applied;
    'none' -> (). An unknown name is a ConfigError naming it."""
    names = {p.strip() for p in text.split(",") if p.strip()} - {"none"}
    if unknown := sorted(names - set(AUGMENT_POLICIES)):
        raise ConfigError(
            f"augment: {', '.join(unknown)} is not one of {', '.join(AUGMENT_POLICIES)} or none"
        )
    return tuple(p for p in AUGMENT_POLICIES if p in names)


def _check_augmentation(cfg: Config) -> None:
    t = cfg.train
    policies = augment_policies(t.augment)
    if not (math.isfinite(t.augment_p) and 0.0 <= t.augment_p <= 1.0):
        raise ConfigError(f"augment_p: {t.augment_p} must be in [0, 1]")
    if not (math.isfinite(t.augment_cutout) and 0.0 < t.augment_cutout <= 1.0):
        raise ConfigError(f"augment_cutout: {t.augment_cutout} must be in (0, 1], e.g. 0.25")
    if t.ada_target is not None:
        _in_range(ada_target=(t.ada_target, 0.0, 1.0, True))
        if not policies:
            raise ConfigError(
                "ada_target: adaptive augmentation needs --augment policies; with --augment "
                "none, also pass --ada-target none"
            )
    _positive(ada_interval=t.ada_interval)
    if not (math.isfinite(t.ada_kimg) and t.ada_kimg > 0):
        raise ConfigError(f"ada_kimg: {t.ada_kimg} must be a positive number")


def _check_rates(t: TrainConfig) -> None:
    """Learning rates, their decay, gradient clipping and the time budget."""
    for name in ("lr", "lr_g", "lr_d", "grad_clip"):
        value = getattr(t, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name}: {value} must be a positive number")
    if not (math.isfinite(t.max_minutes) and 0.0 <= t.max_minutes <= MAX_MINUTES):
        raise ConfigError(
            f"max_minutes: {t.max_minutes} must be in [0, {MAX_MINUTES}] (0: no time limit)"
        )
    if not (math.isfinite(t.lr_decay) and 0.0 <= t.lr_decay <= 1.0):
        raise ConfigError(f"lr_decay: {t.lr_decay} must be in [0, 1] (0 keeps the rates constant)")


def _check_feature_matching(t: TrainConfig) -> None:
    if not (math.isfinite(t.feature_matching) and t.feature_matching >= 0):
        raise ConfigError(f"feature_matching: {t.feature_matching} must be >= 0")
    if t.feature_matching_steps < 0:
        raise ConfigError(
            f"feature_matching_steps: {t.feature_matching_steps} must be >= 0 (0 holds the "
            "weight for the whole run)"
        )


def _positive(**values: int) -> None:
    require_positive(values)


def _at_most(**limits: tuple[int, int]) -> None:
    for name, (value, limit) in limits.items():
        if value > limit:
            raise ConfigError(f"{name}: {value} is more than the supported {limit}")


def _in_range(**specs: tuple[float, float, float, bool]) -> None:
    """name=(value, low, high, high_exclusive)."""
    for name, (value, low, high, exclusive) in specs.items():
        ok = low <= value < high if exclusive else low < value <= high
        if not (math.isfinite(value) and ok):
            bracket = f"[{low}, {high})" if exclusive else f"({low}, {high}]"
            raise ConfigError(f"{name}: {value} must be in {bracket}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: {shown(value)} is not one of {', '.join(allowed)}")
