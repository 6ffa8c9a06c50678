"""The metrics `dcgan evaluate` and `DCGAN.evaluate` know, by name: what each computes from the
features, the fewest images a side it is defined for, and whether it reads classes.

Adding a metric is one entry in `METRICS`: the flag's choices, the count check and the scores
all read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dcgan.evaluation.conditional import class_diversity, classifier_accuracy, intra_fid
from dcgan.evaluation.metrics import feature_stats, fid, kid, precision_recall
from dcgan.evaluation.reference import Reference


@dataclass(frozen=True)
class Features:
    """What a metric reads. `fake` (N, F) generated features; `fake_classes` (N,) their classes
    (a conditional G's, else None); `labelled` real features (n, F) and classes (n,) for the
    class metrics (else None); `num_classes` the model's K (0 without classes)."""

    ref: Reference
    fake: np.ndarray
    seed: int = 0
    fake_classes: np.ndarray | None = None
    labelled: tuple[np.ndarray, np.ndarray] | None = None
    num_classes: int = 0

    def classes(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Real and generated (features, classes) pairs, for a class metric."""
        if self.labelled is None or self.fake_classes is None:
            raise ValueError("a class metric needs a conditional model and labelled real images")
        return self.labelled, (self.fake, self.fake_classes)


@dataclass(frozen=True)
class Metric:
    """`score` maps the features to named values; `min_images` is the fewest images a side it
    is defined for; `classes` says it needs a conditional model and labelled real images."""

    score: Callable[[Features], dict[str, Any]]
    min_images: int
    classes: bool = False


def _fid(f: Features) -> dict[str, Any]:
    return {"fid": fid(*feature_stats(f.fake), f.ref.mu, f.ref.sigma)}


def _kid(f: Features) -> dict[str, Any]:
    mean, std = kid(f.ref.feats, f.fake, seed=f.seed)
    return {"kid_mean": mean, "kid_std": std}


def _pr(f: Features) -> dict[str, Any]:
    precision, recall = precision_recall(f.ref.feats, f.fake, k=3)
    return {"precision": precision, "recall": recall}


def _by_class(name: str, per_class: Callable) -> Callable[[Features], dict[str, Any]]:
    """A class metric reported as its mean over classes and per class."""

    def score(f: Features) -> dict[str, Any]:
        values = per_class(*f.classes(), f.num_classes)
        return {name: float(np.mean(list(values.values()))), f"{name}_per_class": values}

    return score


def _accuracy(f: Features) -> dict[str, Any]:
    return classifier_accuracy(*f.classes())


# The fewest images a side: a covariance needs 2, KID's unbiased estimate two subsets of 2,
# precision/recall and the classifier more than k = 3 neighbours, a distance a pair.
METRICS: dict[str, Metric] = {
    "fid": Metric(_fid, 2),
    "kid": Metric(_kid, 4),
    "pr": Metric(_pr, 4),
    "ifid": Metric(_by_class("ifid", intra_fid), 2, classes=True),
    "accuracy": Metric(_accuracy, 4, classes=True),
    "diversity": Metric(_by_class("diversity", class_diversity), 2, classes=True),
}
CLASS_METRICS = tuple(name for name, m in METRICS.items() if m.classes)


def scores(names: tuple[str, ...], features: Features) -> dict[str, Any]:
    """Each named metric of `features`, in the order asked."""
    out: dict[str, Any] = {}
    for name in names:
        out.update(METRICS[name].score(features))
    return out
