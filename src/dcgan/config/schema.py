"""The settings' schema: the typed dataclass tree, each field with its default and its flag's
help, the allowed choices, and lookups over the tree."""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field, fields
from typing import Any

LOSS_NAMES = ("non-saturating", "minimax", "hinge", "least-squares")
Z_DISTRIBUTIONS = ("normal", "uniform")
SPLITS = ("train", "test", "all")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COND_G = ("cbn", "concat")
COND_D = ("projection", "concat")
AUGMENT_POLICIES = ("translation", "cutout", "color")  # DiffAugment's, in the order applied
CUTOUT_RATIO = 0.5  # DiffAugment's cutout: a square of half the image side
MAX_CLASSES = 100_000  # a conditional model's class tables stay a sensible size
# Every dataset `data.dataset` may name: the built-in ones, then those read from files (each has
# a reader in `dcgan.data`; a test keeps the two lists equal).
BUILT_IN_DATASETS = ("mnist-sample", "fake")
FILE_DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "svhn", "celeba", "lsun")
FILE_DATASETS += ("folder", "hdf5", "npz")
DATASET_NAMES = BUILT_IN_DATASETS + FILE_DATASETS


def setting(default: Any, help: str) -> Any:
    """A config field with its flag's help text, written once beside the field."""
    return field(default=default, metadata={"help": help})


@dataclass
class ModelConfig:
    """Architecture of G and D (all that inference needs, together with the weights)."""

    image_size: int = setting(32, "image side in pixels: a power of two from 16 to 512")
    channels: int = setting(1, "image channels (1 grey, 3 colour)")
    nz: int = setting(100, "length of the latent vector z")
    ngf: int = setting(64, "G's width: channels of its last hidden layer")
    ndf: int = setting(64, "D's width: channels of its first layer")
    # widths stop growing so that 256-512 px stay trainable
    max_mult: int = setting(8, "widths stop growing at ngf (ndf) times this")
    d_dropout: float = setting(0.0, "dropout probability after each of D's blocks")
    mbstd_group: int = setting(
        0,
        "D's minibatch standard deviation: one more 4x4 feature, the spread within groups of "
        "this many images (0: off; 4 is ProGAN's)",
    )
    spectral_norm: bool | None = setting(
        None,
        "spectral normalisation of D's layers (Miyato et al. 2018) in place of its BatchNorm "
        "(default: on for a conditional model with a projection D, the pairing as published; "
        "off otherwise)",
    )
    conditional: bool = setting(False, "class-conditional G and D, classes from the data's labels")
    cond_g: str = setting(
        "cbn", "how G takes the class: cbn (per-class BatchNorm scale and shift) or concat (to z)"
    )
    cond_d: str = setting(
        "projection", "how D takes the class: projection (added to the logit) or concat (as maps)"
    )
    num_classes: int = setting(
        0, "classes of a conditional model (0: the dataset's count, recorded in the run)"
    )

    @property
    def d_spectral_norm(self) -> bool:
        """Whether D is spectrally normalised: `spectral_norm`, or when unset (None) the
        published pairing's choice, on for a conditional model with a projection D (with
        BatchNorm there G ignored the class; docs/conditional.md)."""
        if self.spectral_norm is not None:
            return self.spectral_norm
        return self.conditional and self.cond_d == "projection"


@dataclass
class DataConfig:
    """Where training images come from."""

    dataset: str = setting("mnist-sample", "dataset name (`dcgan datasets` lists them)")
    data_root: str = setting(
        "data", "directory holding the dataset files (or the folder/.zip/file itself)"
    )
    split: str = setting("train", "official split: train, test or all")
    lsun_classes: str = setting(
        "bedroom_train", "comma-separated LSUN LMDB names, e.g. bedroom_train,church_outdoor_train"
    )
    flip: bool = setting(False, "randomly mirror half of each real batch")
    holdout: int = setting(
        0, "images kept out of training (the last N after a fixed shuffle), e.g. for evaluation"
    )
    cache_dir: str | None = setting(
        None, "where decoded images are cached (default $XDG_CACHE_HOME/dcgan)"
    )
    workers: int | None = setting(
        None, "decoding processes for image files (0: none; default: by dataset size)"
    )
    max_bad_fraction: float = setting(
        0.01, "fail when more than this fraction of image files are unreadable"
    )


@dataclass
class TrainConfig:
    """Optimisation, schedule and the DCGAN training tricks (all tricks off by default)."""

    # 16 epochs of batch 64 (the paper used 128) give clear digits on the bundled sample in
    # about 5 minutes on two CPU cores: twice the updates per image seen.
    epochs: int = setting(16, "passes over the data (ignored when --steps is given)")
    steps: int | None = setting(None, "training steps (overrides --epochs)")
    max_minutes: float = setting(
        0.0,
        "stop at the first step after this many minutes of training, with a checkpoint, "
        "samples and export; --resume goes on to --steps (0: no limit)",
    )
    batch_size: int = setting(
        64, "images per batch in each process (under torchrun: global batch / processes)"
    )
    loss: str = setting("non-saturating", "non-saturating, minimax, hinge or least-squares")
    lr: float = setting(2e-4, "Adam learning rate of both networks")
    lr_g: float | None = setting(None, "G's learning rate (default: --lr)")
    lr_d: float | None = setting(None, "D's learning rate (default: --lr)")
    lr_decay: float = setting(
        0.0, "fraction of the run, at its end, over which both learning rates fall linearly to 0"
    )
    beta1: float = setting(0.5, "Adam's beta1 for both networks")
    beta2: float = setting(0.999, "Adam's beta2 for both networks")
    betas_g: tuple[float, float] | None = setting(None, "G's Adam betas (default: --beta1 --beta2)")
    betas_d: tuple[float, float] | None = setting(None, "D's Adam betas (default: --beta1 --beta2)")
    g_steps: int = setting(1, "G updates per step")
    d_steps: int = setting(1, "D updates per step, each on its own real batch")
    real_label: float = setting(1.0, "target for real images; 0.9 is one-sided label smoothing")
    grad_clip: float | None = setting(None, "clip each network's gradient norm to this value")
    r1_gamma: float = setting(
        0.0, "R1: D's loss gains gamma/2 x |grad of D at its real images|^2 (0: off)"
    )
    r1_every: int = setting(
        16, "R1 on every this many steps, scaled by it (lazy regularisation, as StyleGAN2)"
    )
    z_dist: str = setting("normal", "normal or uniform")
    feature_matching: float = setting(
        0.0, "initial weight of the auxiliary feature-matching loss on D's features"
    )
    feature_matching_steps: int = setting(
        1000, "steps over which that weight decays linearly to 0 (0: it never decays)"
    )
    ema: float = setting(
        0.999, "decay of the moving average of G's weights used for samples (0: off)"
    )
    joint_d_batch: bool = setting(
        False,
        "D sees each update's reals and fakes as one batch: BatchNorm statistics span both "
        "(minibatch-std groups stay within each)",
    )
    augment: str = setting(
        "none", "DiffAugment policies for every image D sees: translation,cutout,color or none"
    )
    augment_p: float = setting(1.0, "probability that each policy applies to an image")
    augment_cutout: float = setting(
        CUTOUT_RATIO,
        f"cutout's square side as a fraction of the image side (DiffAugment's: {CUTOUT_RATIO})",
    )
    ada_target: float | None = setting(
        None,
        "adaptive augmentation: steer p (from 0) to keep E[sign(D(real))] at this, e.g. 0.6 "
        "(none: a fixed --augment-p)",
    )
    ada_interval: int = setting(4, "steps between adjustments of the adaptive p")
    ada_kimg: float = setting(100.0, "thousands of real images over which p may go from 0 to 1")
    seed: int = setting(0, "seed of every random stream of the run")
    device: str = setting("auto", "auto, cpu, cuda or mps")
    deterministic: bool = setting(False, "bitwise-reproducible kernels (slower)")
    # the run's config.yaml records the precision used
    precision: str = setting("auto", "auto (bf16 where native, else fp32), fp32, bf16 or fp16")
    compile: bool = setting(False, "torch.compile G and D (slow to start; pays off on long runs)")
    sync_bn: bool = setting(
        False, "under torchrun: BatchNorm statistics over the global batch of all processes"
    )
    on_nan: str = setting(
        "stop", "when a loss or weight turns NaN/inf: stop, or rollback to the last checkpoint"
    )
    max_rollbacks: int = setting(3, "rollbacks allowed before the run stops")
    rollback_lr_factor: float = setting(0.5, "each rollback multiplies both learning rates by this")


@dataclass
class OutputConfig:
    """What a run writes and how often."""

    out: str = setting("runs", "root directory for numbered run directories")
    log_every: int = setting(50, "steps between stats.jsonl records")
    sample_every: int = setting(100, "steps between preview grids")
    checkpoint_every: int = setting(1000, "steps between kept checkpoints")
    num_samples: int = setting(64, "images in the fixed-noise preview grid")
    eval_every: int = setting(
        0, "compute FID every this many steps and keep the best generator (0: off)"
    )
    eval_samples: int = setting(1000, "generated and real images per FID evaluation")
    eval_reference: str = setting(
        "auto",
        "real images for FID: auto (held-out if any, else train), holdout, train, test or all",
    )
    tensorboard: bool = setting(
        False, "also log stats, FID, preview grids and settings to RUN/tensorboard/"
    )


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
    {
        "epochs",
        "steps",
        "max_minutes",
        "device",
        "out",
        "log_every",
        "sample_every",
        "checkpoint_every",
    }
    | {"precision", "compile", "sync_bn", "on_nan", "max_rollbacks", "rollback_lr_factor"}
    | {"data_root", "cache_dir", "workers", "eval_every", "eval_samples", "eval_reference"}
    | {"tensorboard"}
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


def to_dict(cfg: Config) -> dict[str, Any]:
    """Nested plain dict (tuples as lists) for YAML, JSON and checkpoints."""

    def plain(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v

    return {
        name: {k: plain(v) for k, v in dataclasses.asdict(sec).items()}
        for name, sec in sections(cfg).items()
    }


CONDITIONAL_FIELDS = ("conditional", "cond_g", "cond_d", "num_classes")


def model_dict(cfg: ModelConfig) -> dict[str, Any]:
    """A ModelConfig as a plain dict for exports: the conditional fields only for a conditional
    model and spectral_norm only when on, so other exports are byte for byte what they were
    before those fields existed."""
    out = dataclasses.asdict(cfg)
    if not cfg.conditional:
        for name in CONDITIONAL_FIELDS:
            out.pop(name)
    if not cfg.spectral_norm:  # D's alone: a G export is the same either way
        out.pop("spectral_norm")
    return out


def locked_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Settings a resume may not change (all but RESUMABLE_FIELDS) that differ between two
    configs as nested dicts (`to_dict`, or a checkpoint's saved copy): (section.name, old,
    new). A key either side lacks is left out (a checkpoint of an older schema)."""
    return [
        (f"{sec}.{k}", value, new[sec][k])
        for sec, values in old.items()
        if isinstance(values, dict) and isinstance(new.get(sec), dict)
        for k, value in values.items()
        if k in new[sec] and k not in RESUMABLE_FIELDS and value != new[sec][k]
    ]


def diff(old: Config, new: Config) -> list[tuple[str, Any, Any]]:
    """Leaf settings that differ: (section.name, old value, new value)."""
    a, b = to_dict(old), to_dict(new)
    return [
        (f"{sec}.{k}", a[sec][k], b[sec][k]) for sec in a for k in a[sec] if a[sec][k] != b[sec][k]
    ]
