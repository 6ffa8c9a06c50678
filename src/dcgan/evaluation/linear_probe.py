"""The DCGAN paper's representation test (sec. 5.1): a linear classifier on D's features.

Every conv block's output is max-pooled to a 4x4 grid, flattened and concatenated. A
multinomial logistic regression with an L2 penalty (the paper used an L2-SVM; both are
L2-regularised linear classifiers) is trained on K labelled images per class, its penalty
chosen on a disjoint K per class, and scored on a test set, over several label draws. The same
probe on a freshly initialised D of the same shape is the baseline a trained D must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from dcgan.nn.models import Discriminator
from dcgan.progress import bar
from dcgan.seeding import STREAM_PROBE_DRAWS, STREAM_PROBE_SPLIT, seed_for

# Inverse L2 strengths tried on the validation draw. With ~1k standardised examples, 1e-5
# underfits and 10 is all but unregularised, so the best C lies inside.
C_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
MAX_ITER = 1000  # lbfgs needs about 150 at most on the grid above; this is headroom
POOLED = 4  # each block is max-pooled to POOLED x POOLED, as in the paper


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracy of the linear probe for each draw of the labelled examples."""

    accuracies: tuple[float, ...]
    mean: float
    std: float
    chosen_c: tuple[float, ...]  # the validation-chosen C of each draw
    labels_per_class: int
    feature_dim: int
    n_test: int


# ---------------------------------------------------------------------------- features


def d_features(
    discriminator: Discriminator, images: torch.Tensor, batch_size: int = 256
) -> np.ndarray:
    """uint8 images (N, C, S, S) -> float32 features (N, F), F = sum_k C_k * 4 * 4.

    D runs in eval mode (BatchNorm's running statistics, no dropout) on its own device.
    """
    _check_images(discriminator, images)
    device = next(discriminator.parameters()).device
    was_training = discriminator.training
    discriminator.eval()
    try:
        with torch.inference_mode():
            batches = bar(images.split(batch_size), desc="D features", unit="batch")
            parts = [_pooled(discriminator, b.to(device)) for b in batches]
    finally:
        discriminator.train(was_training)
    return torch.cat(parts).numpy()


def _pooled(discriminator: Discriminator, batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, S, S) -> float32 (B, F) on the CPU."""
    x = batch.float().div_(127.5).sub_(1.0)  # [-1, 1], as D saw real images in training
    labels = None
    if discriminator.cfg.conditional:  # a projection D: only its logit sees the class
        labels = torch.zeros(len(x), dtype=torch.long, device=x.device)
    _, blocks = discriminator.forward_features(x, labels)
    # A block already at 4x4 or smaller has nothing to pool.
    pooled = [F.adaptive_max_pool2d(b, POOLED) if b.shape[-1] > POOLED else b for b in blocks]
    return torch.cat([p.flatten(1) for p in pooled], 1).float().cpu()


def _check_images(discriminator: Discriminator, images: torch.Tensor) -> None:
    cfg = discriminator.cfg
    expected = (cfg.channels, cfg.image_size, cfg.image_size)
    wanted = f"(N, {', '.join(map(str, expected))}) with N > 0"
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise ValueError(f"d_features takes uint8 image tensors {wanted}")
    if images.ndim != 4 or tuple(images.shape[1:]) != expected or len(images) == 0:
        raise ValueError(f"images have shape {tuple(images.shape)}; D expects {wanted}")


# ---------------------------------------------------------------------------- label draws


def draw_per_class(labels: np.ndarray, k: int, rng: np.random.Generator) -> tuple:
    """Two disjoint index arrays with k examples of each class: (train, validation)."""
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2 * k:
            raise ValueError(
                f"class {c} has {len(idx)} labelled examples; {k} labels per class need "
                f"{2 * k} ({k} to train on, {k} to choose the regularisation)"
            )
        picked = rng.permutation(idx)[: 2 * k]
        train.append(picked[:k])
        val.append(picked[k:])
    return np.concatenate(train), np.concatenate(val)


def label_draws(labels: np.ndarray, k: int, draws: int, seed: int) -> list[tuple]:
    """(train index, validation index) of each draw; draw d depends only on (seed, d)."""
    if k < 1 or draws < 1:
        raise ValueError(f"labels_per_class ({k}) and draws ({draws}) must be at least 1")
    rngs = [np.random.default_rng(seed_for(seed, d, STREAM_PROBE_DRAWS)) for d in range(draws)]
    return [draw_per_class(labels, k, rng) for rng in rngs]


# ---------------------------------------------------------------------------- the classifier


@dataclass(frozen=True)
class _Linear:
    """A fitted linear classifier on raw features x (n, F): it standardises x with the
    training draw's mean and scale, then picks classes[argmax(z @ w.T + b)]."""

    w: np.ndarray  # float32 (n_classes, F), or (1, F) for two classes as sklearn fits them
    b: np.ndarray
    classes: np.ndarray
    mean: np.ndarray  # float32 (F,)
    scale: np.ndarray

    def accuracy(self, x: np.ndarray, y: np.ndarray, chunk: int = 4096) -> float:
        # In chunks: a standardised copy of a whole 10k x 7k test set would be 300 MB.
        hits = sum(
            int(np.sum(self.predict(x[i : i + chunk]) == y[i : i + chunk]))
            for i in range(0, len(x), chunk)
        )
        return hits / len(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        scores = ((x - self.mean) / self.scale) @ self.w.T + self.b
        picked = (scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else scores.argmax(1)
        return self.classes[picked]


def row_basis(x: np.ndarray) -> np.ndarray | None:
    """(r, F) orthonormal basis of the row space of x (n, F), or None when n >= F.

    An L2-penalised linear model's weights lie in the span of its training rows, so fitting
    on the r <= n coordinates x @ basis.T and mapping the weights back by @ basis gives the
    same optimum as fitting on all F features: with ~1k examples of ~7k features, 7x cheaper.
    """
    n, dim = x.shape
    if n >= dim:
        return None
    eigvals, eigvecs = np.linalg.eigh(x @ x.T)
    if eigvals[-1] <= 0:  # all rows zero: nothing to reduce
        return None
    keep = eigvals > eigvals[-1] * 1e-10  # drop the null space (centring, duplicate rows)
    return (eigvecs[:, keep] / np.sqrt(eigvals[keep])).T @ x


def fit_grid(x: np.ndarray, y: np.ndarray, grid: tuple[float, ...] = C_GRID) -> list[_Linear]:
    """One L2 logistic regression per C in `grid` on raw training features x (n, F)."""
    scaler = StandardScaler().fit(x)  # fitted on the training draw only
    z = scaler.transform(x).astype(np.float64)
    basis = row_basis(z)
    z = z if basis is None else z @ basis.T
    mean, scale = scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32)
    fits = []
    for c in grid:
        model = LogisticRegression(C=c, max_iter=MAX_ITER).fit(z, y)
        w = model.coef_ if basis is None else model.coef_ @ basis
        b = model.intercept_.astype(np.float32)
        fits.append(_Linear(w.astype(np.float32), b, model.classes_, mean, scale))
    return fits


def one_draw(train_x, train_y, test_x, test_y, draw: tuple) -> tuple[float, float]:
    """(test accuracy, chosen C) for one (train index, validation index) draw."""
    tr, va = draw
    fits = fit_grid(train_x[tr], train_y[tr])
    scores = [f.accuracy(train_x[va], train_y[va]) for f in fits]
    best = int(np.argmax(scores))  # ties go to the strongest regularisation
    # The chosen model was fitted on exactly the training draw: refitting would repeat it.
    return fits[best].accuracy(test_x, test_y), C_GRID[best]


def _probe(train_x, train_y, test_x, test_y, draws: list[tuple], k: int) -> ProbeResult:
    # BLAS threads buy nothing on these small matrices and, on a busy machine, their
    # spin-waiting made each fit 10-25x slower than one thread.
    with threadpool_limits(limits=1):
        shown = bar(draws, desc="linear probe", unit="draw")
        runs = [one_draw(train_x, train_y, test_x, test_y, d) for d in shown]
    acc = tuple(a for a, _ in runs)
    chosen = tuple(c for _, c in runs)
    return ProbeResult(
        acc, float(np.mean(acc)), float(np.std(acc)), chosen, k, train_x.shape[1], len(test_y)
    )


def linear_probe(
    train_feats: np.ndarray,
    train_labels: np.ndarray,
    test_feats: np.ndarray,
    test_labels: np.ndarray,
    labels_per_class: int,
    draws: int = 5,
    seed: int = 0,
) -> ProbeResult:
    """Probe features (N, F) of a labelled pool against test features (M, F), over `draws`
    draws of `labels_per_class` training and as many validation examples per class."""
    train_y, test_y = np.asarray(train_labels), np.asarray(test_labels)
    _check_rows(train_feats, train_y, test_feats, test_y)
    picks = label_draws(train_y, labels_per_class, draws, seed)
    return _probe(train_feats, train_y, test_feats, test_y, picks, labels_per_class)


def _check_rows(train_x, train_y, test_x, test_y) -> None:
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError(
            f"features and labels differ in length: {len(train_x)} vs {len(train_y)} (pool), "
            f"{len(test_x)} vs {len(test_y)} (test)"
        )
    if train_x.shape[1:] != test_x.shape[1:]:
        raise ValueError(f"pool and test features differ: {train_x.shape} vs {test_x.shape}")


# ---------------------------------------------------------------------------- whole probe


def probe_discriminator(
    discriminator: Discriminator,
    pool_images: torch.Tensor,
    pool_labels: np.ndarray,
    test_images: torch.Tensor,
    test_labels: np.ndarray,
    labels_per_class: int,
    draws: int = 5,
    seed: int = 0,
) -> ProbeResult:
    """`linear_probe` on D's features of uint8 pool (N, C, S, S) and test (M, C, S, S) images.

    Only the pool images some draw picks go through D, so a 60k pool costs what its
    draws * 2K per class examples cost; the result equals `linear_probe` on all features.
    """
    pool_y, test_y = np.asarray(pool_labels), np.asarray(test_labels)
    if len(pool_images) != len(pool_y):
        raise ValueError(f"{len(pool_images)} pool images but {len(pool_y)} labels")
    picks = label_draws(pool_y, labels_per_class, draws, seed)
    used = np.unique(np.concatenate([np.concatenate(p) for p in picks]))
    pool_x = d_features(discriminator, pool_images[torch.from_numpy(used)])
    local = [(np.searchsorted(used, tr), np.searchsorted(used, va)) for tr, va in picks]
    test_x = d_features(discriminator, test_images)
    _check_rows(pool_x, pool_y[used], test_x, test_y)
    return _probe(pool_x, pool_y[used], test_x, test_y, local, labels_per_class)


def random_discriminator_like(discriminator: Discriminator, seed: int) -> Discriminator:
    """A D of the same ModelConfig with the paper's initialisation under torch seed `seed`,
    on the same device; the global RNG state is left as it was."""
    device = next(discriminator.parameters()).device
    with torch.random.fork_rng(devices=[]):  # init runs on the CPU generator only
        torch.manual_seed(seed)
        fresh = Discriminator(discriminator.cfg)
    return fresh.to(device)


def split_pool_test(labels: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed stratified split for datasets without a test split: sorted (pool index, test
    index), the test set holding n_test examples in the classes' proportions."""
    labels = np.asarray(labels)
    if not 0 < n_test < len(labels):
        raise ValueError(f"n_test must be between 1 and {len(labels) - 1}, not {n_test}")
    classes, counts = np.unique(labels, return_counts=True)
    rng = np.random.default_rng(seed_for(seed, 0, STREAM_PROBE_SPLIT))
    quotas = _quotas(counts, n_test)
    test = [
        rng.permutation(np.flatnonzero(labels == c))[:q]
        for c, q in zip(classes, quotas, strict=True)
    ]
    test_index = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(labels)), test_index), test_index


def _quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Integer shares of `total` proportional to `counts` (largest remainders round up)."""
    exact = counts * total / counts.sum()
    quotas = np.floor(exact).astype(int)
    extra = np.argsort(-(exact - quotas), kind="stable")[: total - quotas.sum()]
    quotas[extra] += 1
    return quotas
