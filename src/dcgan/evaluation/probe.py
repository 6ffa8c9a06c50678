"""`dcgan probe`: the paper's linear probe of a run's discriminator against a random one.

Datasets with an official test split are probed train -> test; the others (the bundled
digits) get a fixed stratified test set, the rest being the labelled pool.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from dcgan.config import DataConfig
from dcgan.data.dataset import open_images
from dcgan.data.specs import SPECS
from dcgan.errors import ConfigError
from dcgan.evaluation.linear_probe import (
    probe_discriminator,
    random_discriminator_like,
    split_pool_test,
)
from dcgan.nn.models import Discriminator

N_TEST_WITHOUT_SPLIT = 1000


def labelled(cfg: DataConfig, size: int, channels: int) -> tuple[torch.Tensor, Any]:
    """All images (N, C, S, S) of `cfg`'s split and their labels (N,)."""
    data = open_images(cfg, size, channels, "all", labels=True)  # the same rows as the images
    return data.tensor(), data.tensor_labels().numpy()


def pool_and_test(cfg: DataConfig, size: int, channels: int, seed: int) -> tuple:
    """(pool images, pool labels, test images, test labels) for the probe."""
    if cfg.dataset in SPECS and SPECS[cfg.dataset].has_splits:
        pool = labelled(dataclasses.replace(cfg, split="train"), size, channels)
        test = labelled(dataclasses.replace(cfg, split="test"), size, channels)
        return (*pool, *test)
    images, labels = labelled(cfg, size, channels)
    # a fifth of a small set (the built-in fake one), so the pool keeps most of it
    n_test = min(N_TEST_WITHOUT_SPLIT, len(labels) // 5)
    pool_idx, test_idx = split_pool_test(labels, n_test, seed)
    pool_t, test_t = torch.from_numpy(pool_idx), torch.from_numpy(test_idx)
    return images[pool_t], labels[pool_idx], images[test_t], labels[test_idx]


def probe_run(
    discriminator: Discriminator,
    data: DataConfig,
    labels_per_class: int,
    draws: int,
    seed: int,
    device: torch.device,
) -> dict[str, Any]:
    """Probe a run's D and a freshly initialised D of the same shape; a JSON record."""
    m = discriminator.cfg
    if m.conditional and m.cond_d == "concat":
        raise ConfigError(
            "probe: this D takes the class as input maps, and the class is what the probe "
            "predicts; probe an unconditional run or one trained with --cond-d projection"
        )
    sets = pool_and_test(data, m.image_size, m.channels, seed)
    trained = discriminator.to(device)
    results = {
        "trained_d": probe_discriminator(trained, *sets, labels_per_class, draws, seed),
        "random_d": probe_discriminator(
            random_discriminator_like(trained, seed), *sets, labels_per_class, draws, seed
        ),
    }
    return {
        "dataset": f"{data.dataset}:{data.split}",
        "labels_per_class": labels_per_class,
        "draws": draws,
        "seed": seed,
        "n_pool": len(sets[0]),
        "n_test": len(sets[2]),
        **{name: _summary(r) for name, r in results.items()},
    }


def _summary(result) -> dict[str, Any]:
    return {
        "accuracy_mean": round(float(result.mean), 4),
        "accuracy_std": round(float(result.std), 4),
        "accuracies": [round(float(a), 4) for a in result.accuracies],
        "feature_dim": int(result.feature_dim),
    }


def format_probe(record: dict[str, Any]) -> str:
    """Two lines: trained D against the random-D baseline."""
    k = record["labels_per_class"]
    lines = [
        f"linear probe, {k} labels per class, {record['draws']} draws, "
        f"{record['n_test']} test images of {record['dataset']}:"
    ]
    for name in ("trained_d", "random_d"):
        r = record[name]
        label = "trained D" if name == "trained_d" else "random D "
        lines.append(
            f"  {label}  accuracy {r['accuracy_mean']:.4f} +- {r['accuracy_std']:.4f}"
            f"  ({r['feature_dim']} features)"
        )
    return "\n".join(lines)
