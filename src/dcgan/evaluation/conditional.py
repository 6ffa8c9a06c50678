"""Class-aware scores of a conditional generator against labelled real images.

- `ifid`: FID within each class (generated class c against real class c), per class and their
  mean. With N images over K classes each FID sees N/K images a side, so it is biased well
  above the whole-set FID; compare it between runs at the same N, never with FID.
- `accuracy`: a linear classifier fitted on real labelled images (L2 logistic regression on the
  Inception features, its penalty chosen on a validation part) labels generated class c as c
  how often, beside its accuracy on real images it was not fitted on: the generator cannot be
  judged more legible than the classifier's own ceiling.
- `diversity`: within each class, the mean distance between two generated images' features
  over the same figure for the real images of that class, and the mean of that ratio over the
  classes. 1 is as varied as the real class; near copies score near 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from dcgan.config import DataConfig
from dcgan.data import open_images
from dcgan.evaluation.linear_probe import C_GRID, fit_grid
from dcgan.evaluation.metrics import fid_of_samples, mean_pairwise_distance
from dcgan.evaluation.reference import reference_part, reference_rows

# The real labelled images: half fit the classifier (its penalty chosen on a quarter of that
# half, then refitted on all of it), half measure it.
FIT_FRACTION, VALIDATION_FRACTION = 0.5, 0.25


def reference_labels(
    cfg: DataConfig, size: int, channels: int, reference: str, count: int
) -> np.ndarray:
    """Labels (n,) of the real images `reference.real_images` draws for the same arguments:
    the same rows in the same order, so they line up with the FID reference's features."""
    data_cfg, part = reference_part(cfg, reference)
    images = open_images(data_cfg, size, channels, part, labels=True)
    return images.take_labels(reference_rows(len(images), count)).numpy()


def intra_fid(
    real: tuple[np.ndarray, np.ndarray], fake: tuple[np.ndarray, np.ndarray], num_classes: int
) -> dict[int, float]:
    """{class: FID of its generated images against its real ones}."""
    return per_class(real, fake, num_classes, fid_of_samples)


def class_diversity(
    real: tuple[np.ndarray, np.ndarray], fake: tuple[np.ndarray, np.ndarray], num_classes: int
) -> dict[int, float]:
    """{class: mean pairwise distance of its generated features / that of its real ones}."""
    return per_class(real, fake, num_classes, _spread_ratio)


def _spread_ratio(fake: np.ndarray, real: np.ndarray) -> float:
    return mean_pairwise_distance(fake) / mean_pairwise_distance(real)


def per_class(
    real: tuple[np.ndarray, np.ndarray],
    fake: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    score: Callable[[np.ndarray, np.ndarray], float],
) -> dict[int, float]:
    """{class: score(its generated features, its real features)} for the classes with at least
    two images on both sides (a covariance or a pair needs two)."""
    out = {}
    for c in range(num_classes):
        r, f = real[0][real[1] == c], fake[0][fake[1] == c]
        if len(r) >= 2 and len(f) >= 2:
            out[c] = round(score(f, r), 4)
    if not out:
        raise ValueError("no class has two real and two generated images; raise --num-samples")
    return out


def classifier_accuracy(
    real: tuple[np.ndarray, np.ndarray], fake: tuple[np.ndarray, np.ndarray], seed: int = 0
) -> dict[str, float]:
    """{"accuracy": on generated images, "real_accuracy": on held-back real ones, ...}."""
    x, y = real
    order = np.random.default_rng(seed).permutation(len(y))
    n_fit = int(len(y) * FIT_FRACTION)
    n_val = int(n_fit * VALIDATION_FRACTION)
    val, tr, test = order[:n_val], order[n_val:n_fit], order[n_fit:]
    if len(np.unique(y[tr])) < 2 or len(test) == 0 or len(val) == 0:
        raise ValueError(
            f"{len(y)} labelled real images are too few to fit and test a classifier; raise "
            "--num-real"
        )
    # one BLAS thread: these matrices are small, and spinning threads slow a busy machine
    with threadpool_limits(limits=1):
        fits = fit_grid(x[tr], y[tr])
        scores = [f.accuracy(x[val], y[val]) for f in fits]
        chosen = C_GRID[scores.index(max(scores))]  # ties: the strongest penalty
        fit = np.concatenate([tr, val])
        best = fit_grid(x[fit], y[fit], (chosen,))[0]  # refitted on the whole fitting half
    return {
        "accuracy": best.accuracy(*fake),
        "real_accuracy": best.accuracy(x[test], y[test]),
        "classifier_fit_images": len(fit),
        "classifier_test_images": len(test),
    }
