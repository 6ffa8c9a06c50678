"""The DCGAN paper's representation test (sec. 5.1): a linear classifier on D's features.

Every conv block's output is max-pooled to a 4x4 grid, flattened and concatenated; an
L2-regularised logistic regression is trained on K labelled images per class, its strength
chosen on another K per class, and scored on a test set. The same probe on a freshly
initialised D of the same shape is the baseline the trained D must beat.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from dcgan.models import Discriminator
from dcgan.sampling import seed_for

C_GRID = (1e-3, 1e-2, 1e-1, 1.0)  # inverse regularisation strengths tried on validation data
_STREAM_PROBE = 100


@dataclass(frozen=True)
class ProbeResult:
    accuracies: list[float]  # test accuracy of each label draw
    chosen_c: list[float]
    labels_per_class: int
    feature_dim: int
    n_test: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))


@torch.inference_mode()
def d_features(discriminator: Discriminator, images: torch.Tensor, batch_size: int = 256):
    """uint8 images (N, C, S, S) -> float32 features (N, sum_k C_k * 16), D in eval mode."""
    device = next(discriminator.parameters()).device
    was_training = discriminator.training
    discriminator.eval()
    parts = []
    try:
        for batch in images.split(batch_size):
            x = batch.to(device).float().div_(127.5).sub_(1.0)
            _, blocks = discriminator.forward_features(x)
            pooled = [F.adaptive_max_pool2d(b, 4).flatten(1) for b in blocks]
            parts.append(torch.cat(pooled, 1).float().cpu())
    finally:
        discriminator.train(was_training)
    return torch.cat(parts).numpy()


def draw_per_class(labels: np.ndarray, k: int, rng: np.random.Generator) -> tuple:
    """Two disjoint index sets with k examples of each class: (train, validation)."""
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2 * k:
            raise ValueError(f"class {c} has {len(idx)} examples; the probe needs {2 * k}")
        picked = rng.permutation(idx)[: 2 * k]
        train.append(picked[:k])
        val.append(picked[k:])
    return np.concatenate(train), np.concatenate(val)


def fit(x: np.ndarray, y: np.ndarray, c: float) -> LogisticRegression:
    with warnings.catch_warnings():
        # a few lbfgs iterations short of full convergence do not change the chosen C
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=c, max_iter=300).fit(x, y)


def one_draw(train_x, train_y, test_x, test_y, k: int, rng) -> tuple[float, float]:
    """(test accuracy, chosen C) for one draw of k labels per class."""
    tr, va = draw_per_class(train_y, k, rng)
    scaler = StandardScaler().fit(train_x[tr])
    xt, xv = scaler.transform(train_x[tr]), scaler.transform(train_x[va])
    scores = [fit(xt, train_y[tr], c).score(xv, train_y[va]) for c in C_GRID]
    best = C_GRID[int(np.argmax(scores))]
    model = fit(xt, train_y[tr], best)
    return float(model.score(scaler.transform(test_x), test_y)), best


def linear_probe(train_x, train_y, test_x, test_y, labels_per_class: int, draws=5, seed=0):
    """ProbeResult over `draws` label draws (each seeded by (seed, draw))."""
    runs = [
        one_draw(
            train_x,
            train_y,
            test_x,
            test_y,
            labels_per_class,
            np.random.default_rng(seed_for(seed, d, _STREAM_PROBE)),
        )
        for d in range(draws)
    ]
    return ProbeResult(
        [a for a, _ in runs],
        [c for _, c in runs],
        labels_per_class,
        train_x.shape[1],
        len(test_y),
    )


def probe_discriminator(
    discriminator,
    pool_images,
    pool_labels,
    test_images,
    test_labels,
    labels_per_class,
    draws=5,
    seed=0,
) -> ProbeResult:
    """Features of D on the pool and test images, then `linear_probe`."""
    train_x = d_features(discriminator, pool_images)
    test_x = d_features(discriminator, test_images)
    y_pool, y_test = np.asarray(pool_labels), np.asarray(test_labels)
    return linear_probe(train_x, y_pool, test_x, y_test, labels_per_class, draws, seed)


def random_discriminator_like(discriminator: Discriminator, seed: int) -> Discriminator:
    """A D of the same shape with the paper's initialisation, under a fixed seed."""
    devices = {p.device for p in discriminator.parameters()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = Discriminator(discriminator.cfg)
    return fresh.to(devices.pop())


def split_pool_test(labels: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed stratified split for datasets without a test split: (pool index, test index)."""
    rng = np.random.default_rng(seed_for(seed, 0, _STREAM_PROBE + 1))
    classes = np.unique(labels)
    per_class = n_test // len(classes)
    test = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]
    )
    pool = np.setdiff1d(np.arange(len(labels)), test)
    return pool, np.sort(test)
