"""Reference statistics: the Inception features of a fixed set of real images, cached.

Reference features are cached as `.npz` under a hash of the exact reference images (their
bytes, hence dataset files, split, holdout and preprocessing), the feature network's SHA-256,
the resize method and N. Real images are drawn in a fixed order that does not depend on the
run's seed.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcgan.config import DataConfig
from dcgan.data import open_images
from dcgan.data.cache import cache_root
from dcgan.errors import ConfigError, Recovered, brief
from dcgan.evaluation.metrics import feature_stats
from dcgan.fsio import atomic_write, check_stored_zip
from dcgan.seeding import REFERENCE_SEED

REFERENCES = ("auto", "holdout", "train", "test", "all")


@dataclass(frozen=True)
class Reference:
    """Features of a set of real images and where they came from."""

    feats: np.ndarray  # float64 (N, 2048)
    mu: np.ndarray  # (2048,)
    sigma: np.ndarray  # (2048, 2048)
    identity: dict[str, Any]  # dataset, part, count, sha256 of the images, network, resize


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
    picked = reference_rows(len(images), count)
    return images.take(picked), f"{data_cfg.dataset}:{data_cfg.split}:{part}"


def reference_rows(n: int, count: int) -> torch.Tensor:
    """The rows (up to `count` of `n`, sorted) a reference draws: a fixed random choice."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(REFERENCE_SEED))
    return order[: min(count, n)].sort().values


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
    if len(images) < 2:
        raise ConfigError(
            f"{name}: holds {len(images)} image(s); reference statistics need at least 2"
        )
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_root(cfg) / "ref-stats" / f"{key}.npz"
    if path.is_file():
        try:
            cached = load_reference(path)
        except ConfigError as e:
            warnings.warn(f"{e}; computing the cached statistics again", Recovered, 2)
        else:
            if cached.identity == identity:
                return cached
            warnings.warn(f"{path}: cached for other images; computing it again", Recovered, 2)
    feats = extractor(images)
    ref = make_reference(feats, identity)
    save_reference(ref, path)
    return ref


def make_reference(feats: np.ndarray, identity: dict[str, Any]) -> Reference:
    mu, sigma = feature_stats(feats)
    return Reference(feats, mu, sigma, identity)


def save_reference(ref: Reference, path: Path) -> Path:
    """Write `ref` as a plain `.npz` (no pickles), atomically."""
    arrays = {
        "feats": ref.feats.astype(np.float32),
        "mu": ref.mu,
        "sigma": ref.sigma,
        "identity": np.array(json.dumps(ref.identity)),
    }
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_reference(path: Path) -> Reference:
    """A reference written by `save_reference` (or `dcgan ref-stats`); whatever its damage,
    a one-line error naming the file."""
    path = Path(path)
    fix = "recompute it with dcgan ref-stats"
    if not path.is_file():
        raise ConfigError(f"{path}: no such reference-statistics file; {fix}, or check the path")
    try:
        _check_members(path)
        with np.load(path, allow_pickle=False) as z:
            feats, mu, sigma = z["feats"].astype(np.float64), z["mu"], z["sigma"]
            identity = json.loads(str(z["identity"]))
    except OSError:
        raise
    except Exception as e:  # NumPy's, zipfile's and JSON's many errors for a damaged file
        raise ConfigError(
            f"{path}: not a reference-statistics file from dcgan, or damaged ({brief(e)}); {fix}"
        ) from None
    n, d = feats.shape if feats.ndim == 2 else (0, 0)
    if not (n and d and mu.shape == (d,) and sigma.shape == (d, d) and isinstance(identity, dict)):
        raise ConfigError(
            f"{path}: its arrays do not fit together (features {feats.shape}, mean {mu.shape}, "
            f"covariance {sigma.shape}); {fix}"
        )
    if not all(np.isfinite(a).all() for a in (feats, mu, sigma)):
        raise ConfigError(f"{path}: holds NaN or infinite statistics; {fix}")
    return Reference(feats, mu, sigma, identity)


def _check_members(path: Path) -> None:
    """ValueError unless `path` is a zip of intact stored `.npy` records (CRC-32 checked) whose
    headers claim no more data than the record holds, so nothing huge is ever allocated."""
    records = check_stored_zip(path)
    with zipfile.ZipFile(path) as archive:
        for record in records:
            with archive.open(record) as f:
                fmt = np.lib.format
                major = fmt.read_magic(f)[0]
                read_header = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
                shape, _, dtype = read_header(f)
                claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if claimed > record.file_size:
                    raise ValueError(f"{record.filename} claims {claimed} bytes")
