"""The one source of settings: a typed dataclass tree, merged defaults < YAML file < CLI flags.

Every leaf name is unique across sections, so each field is also a snake_case CLI flag
(`batch_size` -> `--batch-size`). Unknown keys, wrong types and impossible values raise
`ConfigError` with a one-line message that names the offending key and what would fix it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

LOSS_NAMES = ("non-saturating", "minimax", "hinge", "least-squares")
DEVICES = ("auto", "cpu", "cuda", "mps")
Z_DISTRIBUTIONS = ("normal", "uniform")
SPLITS = ("train", "test", "all")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class ConfigError(ValueError):
    """A setting is unknown, mistyped or impossible; the message is one line for the user."""


@dataclass
class ModelConfig:
    """Architecture of G and D (all that inference needs, together with the weights)."""

    image_size: int = 32
    channels: int = 1
    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    max_mult: int = 8  # widths stop growing at ngf*max_mult so 256-512 px stay trainable
    d_dropout: float = 0.0


@dataclass
class DataConfig:
    """Where training images come from."""

    dataset: str = "mnist-sample"
    data_root: str = "data"  # where dataset files live (`dcgan download` puts them here)
    split: str = "train"  # official split: train, test or all (mnist, fashion-mnist, cifar, svhn)
    lsun_classes: str = "bedroom_train"  # comma-separated LSUN LMDB names, without "_lmdb"
    flip: bool = False  # random horizontal flips of training batches
    holdout: int = 0  # images kept out of training (the last N after a fixed shuffle)
    cache_dir: str | None = None  # decoded-image cache; None: $XDG_CACHE_HOME/dcgan
    workers: int | None = None  # decoding processes for image files; None: by dataset size
    max_bad_fraction: float = 0.01  # fail when more of a folder's files than this are unreadable


@dataclass
class TrainConfig:
    """Optimisation, schedule and the DCGAN training tricks (all tricks off by default)."""

    # 16 epochs of batch 64 (the paper used 128) give clear digits on the bundled sample in
    # about 5 minutes on two CPU cores: twice the updates per image seen.
    epochs: int = 16
    steps: int | None = None  # when set, overrides epochs
    batch_size: int = 64
    loss: str = "non-saturating"
    lr: float = 2e-4
    lr_g: float | None = None  # None: use lr
    lr_d: float | None = None
    beta1: float = 0.5
    beta2: float = 0.999
    betas_g: tuple[float, float] | None = None  # None: use (beta1, beta2)
    betas_d: tuple[float, float] | None = None
    g_steps: int = 1  # G updates per training step
    d_steps: int = 1  # D updates per training step (each on its own real batch)
    real_label: float = 1.0  # one-sided label smoothing: e.g. 0.9
    grad_clip: float | None = None  # max global grad norm for both nets
    z_dist: str = "normal"
    feature_matching: float = 0.0  # initial weight of the auxiliary feature-matching loss
    feature_matching_steps: int = 1000  # weight decays linearly to 0 over this many steps
    ema: float = 0.999  # decay of the moving average of G that samples are drawn from; 0: off
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    # auto: bf16 where the CPU or GPU computes it natively, else fp32; the run's config.yaml
    # records the one used
    precision: str = "auto"
    compile: bool = False  # torch.compile G and D (each separately)
    sync_bn: bool = False  # under torchrun: BatchNorm statistics over the global batch
    on_nan: str = "stop"  # a NaN/inf loss or weight: stop, or rollback to the last checkpoint
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5  # each rollback multiplies both learning rates by this


@dataclass
class OutputConfig:
    """What a run writes and how often."""

    out: str = "runs"
    log_every: int = 50
    sample_every: int = 100
    checkpoint_every: int = 1000
    num_samples: int = 64  # size of the fixed-noise preview grid
    eval_every: int = 0  # steps between FID evaluations during training; 0: none
    eval_samples: int = 1000  # generated (and real) images per evaluation
    eval_reference: str = "auto"  # real images: auto (held-out if any, else train), holdout, ...


@dataclass
class Config:
    """The whole resolved configuration of a run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


# Fields a resumed run may change: they alter the schedule or the bookkeeping, not the maths
# of the steps already taken.
RESUMABLE_FIELDS = frozenset(
    {"epochs", "steps", "device", "out", "log_every", "sample_every", "checkpoint_every"}
    | {"precision", "compile", "sync_bn", "on_nan", "max_rollbacks", "rollback_lr_factor"}
    | {"data_root", "cache_dir", "workers", "eval_every", "eval_samples", "eval_reference"}
)


def sections(cfg: Config) -> dict[str, Any]:
    """Section name -> section dataclass instance."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}


@functools.cache
def leaf_fields() -> dict[str, tuple[str, dataclasses.Field]]:
    """Leaf name -> (section name, field); leaf names are unique across sections."""
    out: dict[str, tuple[str, dataclasses.Field]] = {}
    for sec in fields(Config):
        for f in fields(_hints(Config)[sec.name]):
            out[f.name] = (sec.name, f)
    return out


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def leaf_type(section: str, name: str) -> Any:
    """The annotated type of a leaf field."""
    return _hints(_hints(Config)[section])[name]


# ---------------------------------------------------------------------------- type coercion


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against annotation `tp`, converting only lossless cases (int -> float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} numbers, got {value!r}")
        return tuple(coerce(v, a, key) for v, a in zip(value, args, strict=True))
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if (tp is bool and isinstance(value, bool)) or (tp is str and isinstance(value, str)):
        return value
    if tp is int and is_number and isinstance(value, int):
        return value
    if tp is float and is_number:
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"{key}: {value} is too large for a number") from None
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def _type_name(tp: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


# ---------------------------------------------------------------------------- merging


def merge(cfg: Config, overrides: dict[str, Any], source: str) -> Config:
    """Return a copy of `cfg` with `overrides` applied.

    `overrides` is either nested ({"train": {"lr": 1e-3}}) as in YAML files, or flat by leaf
    name ({"lr": 1e-3}) as from CLI flags. `source` names where they came from for errors.
    """
    cfg = dataclasses.replace(cfg, **{k: dataclasses.replace(v) for k, v in sections(cfg).items()})
    secs = sections(cfg)
    leaves = leaf_fields()
    for key, value in overrides.items():
        if key in secs:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key!r} must be a mapping of settings")
            for sub, subval in value.items():
                _set_leaf(cfg, key, sub, subval, source)
        elif key in leaves:
            _set_leaf(cfg, leaves[key][0], key, value, source)
        else:
            raise ConfigError(f"{source}: unknown setting {key!r}{_suggest(key)}")
    return cfg


def _set_leaf(cfg: Config, section: str, name: str, value: Any, source: str) -> None:
    sec = getattr(cfg, section)
    if name not in {f.name for f in fields(sec)}:
        raise ConfigError(f"{source}: unknown setting {f'{section}.{name}'!r}{_suggest(name)}")
    setattr(sec, name, coerce(value, leaf_type(section, name), f"{source}: {section}.{name}"))


def _suggest(key: Any) -> str:
    import difflib

    if not isinstance(key, str):  # YAML keys may be null or numbers: nothing is close
        return ""
    names = list(leaf_fields()) + [s.name for s in fields(Config)]
    close = difflib.get_close_matches(key.replace("-", "_"), names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file with the safe loader; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def to_dict(cfg: Config) -> dict[str, Any]:
    """Nested plain dict (tuples as lists) for YAML, JSON and checkpoints."""

    def plain(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v

    return {
        name: {k: plain(v) for k, v in dataclasses.asdict(sec).items()}
        for name, sec in sections(cfg).items()
    }


def from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Build and validate a Config from a nested dict."""
    return validate(merge(Config(), data, source))


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def resolve(yaml_file: str | Path | None = None, flags: dict[str, Any] | None = None) -> Config:
    """defaults < YAML file < flags, validated."""
    cfg = Config()
    if yaml_file is not None:
        cfg = merge(cfg, load_yaml(yaml_file), str(yaml_file))
    if flags:
        cfg = merge(cfg, flags, "flag")
    return validate(cfg)


# ---------------------------------------------------------------------------- validation


def validate(cfg: Config) -> Config:
    """Raise ConfigError for impossible values; return cfg unchanged otherwise."""
    m, d, t, o = cfg.model, cfg.data, cfg.train, cfg.output
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
    _at_most(g_steps=(t.g_steps, 100), d_steps=(t.d_steps, 100), num_samples=(o.num_samples, 4096))
    _positive(log_every=o.log_every, sample_every=o.sample_every)
    _positive(checkpoint_every=o.checkpoint_every, num_samples=o.num_samples)
    _positive(feature_matching_steps=t.feature_matching_steps)
    if t.steps is None:
        _positive(epochs=t.epochs)
    else:
        _positive(steps=t.steps)
    for name in ("lr", "lr_g", "lr_d", "grad_clip"):
        value = getattr(t, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name}: {value} must be a positive number")
    betas = [("beta1", t.beta1), ("beta2", t.beta2)]
    betas += [(n, b) for n in ("betas_g", "betas_d") for b in (getattr(t, n) or ())]
    for name, b in betas:
        if not 0.0 <= b < 1.0:
            raise ConfigError(f"{name}: {b} must be in [0, 1)")
    _in_range(d_dropout=(m.d_dropout, 0.0, 1.0, True), real_label=(t.real_label, 0.0, 1.0, False))
    if not (math.isfinite(t.ema) and 0.0 <= t.ema < 1.0):
        raise ConfigError(f"ema: {t.ema} must be in [0, 1) (0 turns the average off)")
    if not (math.isfinite(t.feature_matching) and t.feature_matching >= 0):
        raise ConfigError(f"feature_matching: {t.feature_matching} must be >= 0")
    _choice("loss", t.loss, LOSS_NAMES)
    _choice("device", t.device, DEVICES)
    _choice("precision", t.precision, PRECISIONS)
    _choice("on_nan", t.on_nan, ("stop", "rollback"))
    if t.max_rollbacks < 0:
        raise ConfigError(f"max_rollbacks: {t.max_rollbacks} must be >= 0")
    _in_range(rollback_lr_factor=(t.rollback_lr_factor, 0.0, 1.0, False))
    _choice("z_dist", t.z_dist, Z_DISTRIBUTIONS)
    if t.seed < 0:
        raise ConfigError(f"seed: {t.seed} must be >= 0")
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
    from dcgan.data import dataset_names

    _choice("dataset", d.dataset, dataset_names())
    return cfg


def _positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ConfigError(f"{name}: {value} must be at least 1")


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
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")


def diff(old: Config, new: Config) -> list[tuple[str, Any, Any]]:
    """Leaf settings that differ: (section.name, old value, new value)."""
    a, b = to_dict(old), to_dict(new)
    return [
        (f"{sec}.{k}", a[sec][k], b[sec][k]) for sec in a for k in a[sec] if a[sec][k] != b[sec][k]
    ]
