"""Evaluation the way papers report it: FID, KID and precision/recall of a generator against a
reference set of real images, with the reference statistics cached.

Generated image i comes from seed (seed, i), so the same generator, N and seed give the same
numbers. Reference features are cached as `.npz` under a hash of the exact reference images
(their bytes, hence dataset files, split, holdout and preprocessing), the feature network's
SHA-256, the resize method and N.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dcgan.config import Config, ConfigError, DataConfig
from dcgan.data import open_images
from dcgan.data.cache import cache_root
from dcgan.sampling import generate

METRICS = ("fid", "kid", "pr")
REFERENCES = ("auto", "holdout", "train", "test", "all")
# Real images are drawn in a fixed order that does not depend on the run's seed.
_REFERENCE_SEED = 1234


@dataclass(frozen=True)
class Reference:
    """Features of a set of real images and where they came from."""

    feats: np.ndarray  # float64 (N, 2048)
    mu: np.ndarray  # (2048,)
    sigma: np.ndarray  # (2048, 2048)
    identity: dict[str, Any]  # dataset, part, count, sha256 of the images, network, resize


# ---------------------------------------------------------------------------- real images


def reference_part(cfg: DataConfig, reference: str) -> tuple[DataConfig, str]:
    """(data config, part of it) for a reference name; 'auto' is the run's held-out images when
    it kept some, else the training images."""
    if reference not in REFERENCES:
        raise ConfigError(f"--reference: '{reference}' is not one of {', '.join(REFERENCES)}")
    if reference == "auto":
        reference = "holdout" if cfg.holdout > 0 else "train"
    if reference == "holdout":
        if cfg.holdout == 0:
            raise ConfigError("--reference holdout: the run kept no images out (--holdout 0)")
        return cfg, "holdout"
    if reference in ("test", "all"):
        return DataConfig(**{**vars(cfg), "split": reference, "holdout": 0}), "all"
    return cfg, "train"


def real_images(
    cfg: DataConfig, size: int, channels: int, reference: str, count: int
) -> tuple[torch.Tensor, str]:
    """Up to `count` real images uint8 (n, C, S, S) of the reference, in a fixed random order."""
    data_cfg, part = reference_part(cfg, reference)
    images = open_images(data_cfg, size, channels, part)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(_REFERENCE_SEED))
    picked = order[: min(count, len(images))].sort().values
    return images.take(picked), f"{data_cfg.dataset}:{data_cfg.split}:{part}"


def images_sha256(images: torch.Tensor) -> str:
    """Hash of uint8 images and their shape: identifies a reference set exactly."""
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(images.contiguous().numpy().tobytes())
    return h.hexdigest()


def reference_features(
    extractor, cfg: DataConfig, size: int, channels: int, reference: str, count: int
) -> Reference:
    """Reference features, from the cache when the same images and network were seen before."""
    images, name = real_images(cfg, size, channels, reference, count)
    identity = {
        "dataset": name,
        "count": len(images),
        "images_sha256": images_sha256(images),
        "network_sha256": extractor.sha256,
        "resize": extractor.resize,
        "image_size": size,
        "channels": channels,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_root(cfg) / "ref-stats" / f"{key}.npz"
    if path.is_file():
        return load_reference(path)
    feats = extractor(images)
    ref = make_reference(feats, identity)
    save_reference(ref, path)
    return ref


def make_reference(feats: np.ndarray, identity: dict[str, Any]) -> Reference:
    from dcgan.metrics import feature_stats

    mu, sigma = feature_stats(feats)
    return Reference(feats, mu, sigma, identity)


def save_reference(ref: Reference, path: Path) -> Path:
    """Write `ref` as a plain `.npz` (no pickles), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp.npz")
    np.savez(
        tmp,
        feats=ref.feats.astype(np.float32),
        mu=ref.mu,
        sigma=ref.sigma,
        identity=np.array(json.dumps(ref.identity)),
    )
    tmp.replace(path)
    return path


def load_reference(path: Path) -> Reference:
    """A reference written by `save_reference` (or `dcgan ref-stats`)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            feats, mu, sigma = z["feats"].astype(np.float64), z["mu"], z["sigma"]
            identity = json.loads(str(z["identity"]))
    except (OSError, KeyError, ValueError) as e:
        raise ConfigError(f"{path}: not a reference-statistics file from dcgan ({e})") from None
    return Reference(feats, mu, sigma, identity)


# ---------------------------------------------------------------------------- generated images


def fake_images(
    generator: nn.Module, count: int, seed: int, z_dist: str, batch_size: int = 250
) -> torch.Tensor:
    """Images 0..count-1 of `seed` from `generator`: uint8 (count, C, S, S) on the CPU."""
    parts = [images for _, images in generate(generator, range(count), seed, batch_size, z_dist)]
    return torch.cat(parts)


# ---------------------------------------------------------------------------- scores


def scores(ref: Reference, feats: np.ndarray, metrics: tuple[str, ...], seed: int) -> dict:
    """Each requested metric of generated `feats` (N, 2048) against the reference."""
    from dcgan.metrics import feature_stats, fid, kid, precision_recall

    out: dict[str, float] = {}
    if "fid" in metrics:
        out["fid"] = fid(*feature_stats(feats), ref.mu, ref.sigma)
    if "kid" in metrics:
        out["kid_mean"], out["kid_std"] = kid(ref.feats, feats, seed=seed)
    if "pr" in metrics:
        out["precision"], out["recall"] = precision_recall(ref.feats, feats, k=3)
    return out


def parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise ConfigError(f"--metrics: {text!r}; choose from {','.join(METRICS)}")
    return names


def evaluate(
    generator: nn.Module,
    z_dist: str,
    ref: Reference,
    extractor,
    num_samples: int,
    metrics: tuple[str, ...] = METRICS,
    seed: int = 0,
) -> dict[str, Any]:
    """Score `num_samples` images of `generator` against `ref`; a JSON-ready record."""
    start = time.perf_counter()
    feats = extractor(fake_images(generator, num_samples, seed, z_dist))
    return {
        "metrics": {k: round(float(v), 6) for k, v in scores(ref, feats, metrics, seed).items()},
        "num_samples": num_samples,
        "seed": seed,
        "feature_network_sha256": extractor.sha256,
        "resize": extractor.resize,
        "reference": ref.identity,
        "seconds": round(time.perf_counter() - start, 1),
    }


def format_table(record: dict[str, Any]) -> str:
    """A small text table of an `evaluate` record."""
    ref = record["reference"]
    lines = [f"{'metric':12} value"]
    lines += [f"{k:12} {v:.4f}" for k, v in record["metrics"].items()]
    lines.append(
        f"N {record['num_samples']} generated (seed {record['seed']}) vs {ref['count']} "
        f"real from {ref['dataset']}; Inception {record['feature_network_sha256'][:12]}, "
        f"{record['resize']}"
    )
    return "\n".join(lines)


class FIDTracker:
    """FID of a generator during training, against a reference computed (or loaded) once."""

    def __init__(self, cfg: Config, device: torch.device):
        from dcgan.inception import InceptionFeatures

        o, m = cfg.output, cfg.model
        self.extractor = InceptionFeatures(device=device)
        self.ref = reference_features(
            self.extractor, cfg.data, m.image_size, m.channels, o.eval_reference, o.eval_samples
        )
        self.num, self.seed, self.z_dist = o.eval_samples, cfg.train.seed, cfg.train.z_dist

    def __call__(self, generator: nn.Module) -> float:
        """FID of images 0..N-1 of the run seed."""
        feats = self.extractor(fake_images(generator, self.num, self.seed, self.z_dist))
        return float(scores(self.ref, feats, ("fid",), self.seed)["fid"])
