"""Evaluation the way papers report it: FID, KID and precision/recall of a generator against a
reference set of real images, with the reference statistics cached.

Generated image i comes from seed (seed, i), so the same generator, N and seed give the same
numbers. The reference side lives in `dcgan.evaluation.reference`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dcgan.config import Config, DataConfig
from dcgan.errors import ConfigError, require_positive
from dcgan.evaluation import features
from dcgan.evaluation.conditional import reference_labels
from dcgan.evaluation.reference import (
    Reference,
    load_reference,
    real_images,
    reference_features,
)
from dcgan.evaluation.registry import CLASS_METRICS, METRICS, Features, scores
from dcgan.sampling import balanced_labels, generate

DEFAULT_METRICS = ("fid", "kid", "pr")


# ---------------------------------------------------------------------------- generated images


def fake_images(
    generator: nn.Module, count: int, seed: int, z_dist: str, batch_size: int = 250
) -> torch.Tensor:
    """Images 0..count-1 of `seed` from `generator`: uint8 (count, C, S, S) on the CPU; a
    conditional G's are class-balanced (`fake_classes`)."""
    labels = fake_classes(generator, count)
    batches = generate(generator, range(count), seed, batch_size, z_dist, labels)
    return torch.cat([images for _, images in batches])


def fake_classes(generator: nn.Module, count: int) -> list[int] | None:
    """The classes of a conditional G's images 0..count-1 (image i is class i mod K)."""
    cfg = generator.cfg
    return balanced_labels(count, cfg.num_classes) if getattr(cfg, "conditional", False) else None


# ---------------------------------------------------------------------------- counts


FEATURES = 2048


def check_counts(
    metrics: tuple[str, ...],
    counts: dict[str, int],
    fix: str = "raise --num-samples and --num-real",
) -> None:
    """Refuse image counts (by the flag or file that set them) too small for `metrics`, before
    any image is generated: one line saying what N is needed."""
    for where, n in counts.items():
        for m in metrics:
            if n < METRICS[m].min_images:
                fid_note = (
                    f"; a well-conditioned covariance of the {FEATURES} Inception features "
                    f"needs more images than features (N > {FEATURES}), and published FIDs use "
                    "10,000 or 50,000"
                    if m == "fid"
                    else ""
                )
                raise ConfigError(
                    f"{where}: {n} images are too few for {m}, which needs at least "
                    f"{METRICS[m].min_images}{fid_note}; {fix}"
                )


def parse_metrics(text: str) -> tuple[str, ...]:
    """The metric names of `--metrics` ("fid,kid"), checked."""
    return known_metrics(tuple(m.strip() for m in text.split(",") if m.strip()), "--metrics")


def known_metrics(names: tuple[str, ...], label: str = "metrics") -> tuple[str, ...]:
    """`names` when every one is in the registry (and there is one); else the one-line error,
    naming the setting or flag `label`."""
    if not names or any(m not in METRICS for m in names):
        raise ConfigError(f"{label}: {','.join(names)!r}; choose from {','.join(METRICS)}")
    return names


def evaluate(
    generator: nn.Module,
    z_dist: str,
    ref: Reference,
    extractor,
    num_samples: int,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    seed: int = 0,
    labelled: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Score `num_samples` images of `generator` against `ref`; a JSON-ready record.
    A conditional G's class metrics need `labelled`: real features (n, 2048) and classes (n,)."""
    start = time.perf_counter()
    where = f"the reference ({ref.identity.get('dataset', 'real images')})"
    check_counts(metrics, {"--num-samples": num_samples, where: len(ref.feats)})
    stale = f"{where}: its features come from another network than {extractor.sha256[:12]}"
    if ref.identity.get("network_sha256", extractor.sha256) != extractor.sha256:
        raise ConfigError(f"{stale}; recompute it with dcgan ref-stats")
    feats = extractor(fake_images(generator, num_samples, seed, z_dist))
    if feats.shape[1:] != ref.feats.shape[1:]:
        raise ConfigError(f"{stale} ({ref.feats.shape[1]} features, not {feats.shape[1]})")
    classes = fake_classes(generator, num_samples)
    found = Features(
        ref=ref,
        fake=feats,
        seed=seed,
        fake_classes=None if classes is None else np.asarray(classes),
        labelled=labelled,
        num_classes=getattr(generator.cfg, "num_classes", 0),
    )
    try:
        values = scores(metrics, found)
    except ValueError as e:  # an FID whose covariances are too ill-conditioned for a square root
        raise ConfigError(f"--num-samples: {' '.join(str(e).split())}") from None
    return {
        "metrics": {k: _rounded(v) for k, v in values.items()},
        "num_samples": num_samples,
        "seed": seed,
        "feature_network_sha256": extractor.sha256,
        "resize": extractor.resize,
        "reference": ref.identity,
        "seconds": round(time.perf_counter() - start, 1),
    }


@dataclass(frozen=True)
class Request:
    """What to measure: `metrics` of `num_samples` generated images (seeds (seed, i)) against
    `num_real` real images (default: as many) of the data's `reference` part ("auto": the
    images the run held out, else its training images), or against the statistics file
    `ref_stats`."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    num_samples: int = 1000
    num_real: int | None = None
    reference: str = "auto"
    ref_stats: Path | None = None
    seed: int = 0


def check_request(request: Request) -> Request:
    """Refuse counts too small for the metrics, before anything is loaded or generated."""
    r = request
    known_metrics(r.metrics)
    require_positive({"num_samples": r.num_samples, "num_real": r.num_real})
    counts = {"--num-samples": r.num_samples}
    if r.ref_stats is None:
        counts["--num-real"] = r.num_real or r.num_samples
    check_counts(r.metrics, counts)
    return r


def measure(
    generator: nn.Module,
    z_dist: str,
    data: DataConfig | None,
    request: Request,
    device: torch.device,
) -> dict[str, Any]:
    """The whole evaluation of `dcgan evaluate` and `DCGAN.evaluate`: counts checked first,
    then the reference (a statistics file, or the real images of `data` through the cache),
    then the generated images; a JSON-ready record (see `evaluate`). `data` may be None with
    `ref_stats` (no real image is read then)."""
    r = check_request(request)
    wanted = [m for m in r.metrics if m in CLASS_METRICS]
    if wanted and not generator.cfg.conditional:
        raise ConfigError(
            f"--metrics: {','.join(wanted)} score a conditional model's classes; this model "
            "was trained without --conditional"
        )
    ref = None
    if r.ref_stats is not None:  # read first: a damaged file stops before the network loads
        ref = load_reference(r.ref_stats)
        fix = "recompute it with dcgan ref-stats --num-real N"
        check_counts(r.metrics, {str(r.ref_stats): len(ref.feats)}, fix)
    if data is None and (ref is None or wanted):
        raise ConfigError("--dataset: required when the source is not a run directory")
    extractor = features.InceptionFeatures(device=device)
    cfg = generator.cfg
    drawn = (data, cfg.image_size, cfg.channels, r.reference, r.num_real or r.num_samples)
    if ref is None:
        ref = reference_features(extractor, *drawn)
    labelled = None
    if wanted:  # the reference's own images, with their labels: no second feature pass
        feats = ref.feats if r.ref_stats is None else extractor(real_images(*drawn)[0])
        labelled = (feats, reference_labels(*drawn))
    return evaluate(
        generator.to(device), z_dist, ref, extractor, r.num_samples, r.metrics, r.seed, labelled
    )


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    return value if isinstance(value, int) else round(float(value), 6)


def format_table(record: dict[str, Any]) -> str:
    """A small text table of an `evaluate` record."""
    ref = record["reference"]
    lines = [f"{'metric':12} value"]
    lines += [
        f"{k:12} {_shown(v)}" for k, v in record["metrics"].items() if not isinstance(v, dict)
    ]
    for key, per_class in record["metrics"].items():
        if isinstance(per_class, dict):  # a class metric's values by class
            name = key.removesuffix("_per_class")
            shown = ", ".join(
                f"{c}: {v:.{1 if name == 'ifid' else 2}f}" for c, v in per_class.items()
            )
            lines.append(f"{name} by class {shown}")
    lines.append(
        f"N {record['num_samples']} generated (seed {record['seed']}) vs {ref['count']} "
        f"real from {ref['dataset']}; Inception {record['feature_network_sha256'][:12]}, "
        f"{record['resize']}"
    )
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4f}"


class FIDTracker:
    """FID of a generator during training, against a reference computed (or loaded) once."""

    def __init__(self, cfg: Config, device: torch.device):
        o, m = cfg.output, cfg.model
        self.extractor = features.InceptionFeatures(device=device)
        self.ref = reference_features(
            self.extractor, cfg.data, m.image_size, m.channels, o.eval_reference, o.eval_samples
        )
        self.num, self.seed, self.z_dist = o.eval_samples, cfg.train.seed, cfg.train.z_dist

    def __call__(self, generator: nn.Module) -> float:
        """FID of images 0..N-1 of the run seed."""
        feats = self.extractor(fake_images(generator, self.num, self.seed, self.z_dist))
        return float(scores(("fid",), Features(self.ref, feats))["fid"])
