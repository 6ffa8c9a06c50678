"""Sample-quality metrics as pure functions of feature arrays (float64 NumPy).

- FID: Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017).
- KID: unbiased MMD^2 with the cubic polynomial kernel, over random subsets (Bińkowski et al.
  2018), reported as mean and standard deviation over the subsets.
- Precision and recall: k-NN manifold estimates (Kynkäänniemi et al. 2019).
- Spread: the mean distance between two different images of a set, the figure the diversity
  ratio compares between generated and real images.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
from scipy import linalg

IMAGINARY_TOLERANCE = 1e-3  # as the reference TTUR implementation
# Distances computed at once in precision/recall: 2^23 float64 (64 MiB) per block, whatever N.
DISTANCE_BLOCK = 1 << 23


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """feats (N, D) -> mean (D,) and covariance (D, D), in float64."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise ValueError(f"feature_stats needs (N >= 2, D) features, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def fid(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)) of means (D,) and
    covariances (D, D).

    When the product is too singular for a finite square root, eps * I is added to both
    covariances, as in the reference TTUR code; a square root with a significant imaginary
    part is an error, not silently dropped.
    """
    mu1, mu2 = (np.atleast_1d(m).astype(np.float64) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(s).astype(np.float64) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"fid: mismatched shapes {mu1.shape} {sigma1.shape} {mu2.shape}")
    covmean = _sqrtm_product(sigma1, sigma2, eps)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> np.ndarray:
    """Real sqrt(sigma1 @ sigma2) (D, D), or ValueError when it is not close to real."""
    with warnings.catch_warnings():
        # a singular product (fewer samples than dimensions) is handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        ridge = np.eye(len(sigma1)) * eps
        covmean = linalg.sqrtm((sigma1 + ridge) @ (sigma2 + ridge))
    if np.iscomplexobj(covmean):
        worst = np.abs(covmean.imag).max()
        if worst > IMAGINARY_TOLERANCE:
            raise ValueError(
                f"fid: the matrix square root has an imaginary component of {worst:.3g}; the "
                "covariances are ill-conditioned (use more samples than feature dimensions)"
            )
        covmean = covmean.real
    return covmean


def _polynomial_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 between equal-sized sets (m, d)."""
    m, d = x.shape
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    off_diagonal = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(off_diagonal - 2 * kxy.mean())


def fid_of_samples(a: np.ndarray, b: np.ndarray) -> float:
    """FID of feature samples a (n, D) and b (m, D), exact for any n and m: `fid` of their
    means and covariances, computed without the (D, D) square root.

    With fewer images than features the covariances are singular and a matrix square root of
    their product is ill-conditioned; but the nonzero eigenvalues of S_a S_b are the squared
    singular values of A B^T / sqrt((n-1)(m-1)) (A, B the centred samples), so
    Tr sqrt(S_a S_b) is the sum of those singular values: an (n, m) problem, not (D, D).
    """
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = a - mu_a, b - mu_b
    scale = np.sqrt((len(a) - 1) * (len(b) - 1))
    cross = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / scale
    traces = (ca * ca).sum() / (len(a) - 1) + (cb * cb).sum() / (len(b) - 1)
    diff = mu_a - mu_b
    return float(diff @ diff + traces - 2.0 * cross)


def kid(
    feats1: np.ndarray,
    feats2: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance of (N1, D) and (N2, D) features: (mean, std) over subsets.

    Subsets hold min(subset_size, N1 // 2, N2 // 2) samples: with subsets as large as a whole
    set, every subset would be the same and the spread would read a meaningless 0.
    """
    x, y = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    m = min(subset_size, len(x) // 2, len(y) // 2)
    if m < 2:
        raise ValueError("kid needs at least 4 samples in each set")
    rng = np.random.default_rng(seed)
    values = [
        _polynomial_mmd(
            x[rng.choice(len(x), m, replace=False)], y[rng.choice(len(y), m, replace=False)]
        )
        for _ in range(num_subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def _pairwise_sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows of a (n, D) and b (m, D): (n, m)."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(sq, 0.0)


def _row_slices(n_rows: int, n_cols: int) -> Iterator[slice]:
    """Row blocks whose (rows, n_cols) distance matrix holds about DISTANCE_BLOCK values."""
    step = max(1, DISTANCE_BLOCK // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, start + step)


def knn_radii(feats: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of feats (N, D) to its k-th nearest other row: (N,)."""
    out = np.empty(len(feats))
    for rows in _row_slices(len(feats), len(feats)):
        d = _pairwise_sq(feats[rows], feats)
        out[rows] = np.partition(d, k, axis=1)[:, k]  # index 0 is the row itself
    return out


def coverage(queries: np.ndarray, support: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of queries (M, D) inside at least one support (N, D) hypersphere, given the
    spheres' squared radii (N,)."""
    inside = 0
    for rows in _row_slices(len(queries), len(support)):
        d = _pairwise_sq(queries[rows], support)
        inside += int((d <= radii[None, :]).any(axis=1).sum())
    return inside / len(queries)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision (fake inside the real manifold) and recall (real inside the fake
    manifold) of (N, D) real and (M, D) fake features, manifolds from k-NN radii."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision_recall needs more than k={k} samples in each set")
    precision = coverage(fake, real, knn_radii(real, k))
    recall = coverage(real, fake, knn_radii(fake, k))
    return precision, recall


def mean_pairwise_distance(feats: np.ndarray) -> float:
    """Mean Euclidean distance between two different rows of feats (N >= 2, D): 0 for N copies
    of one image, larger the more the rows differ."""
    feats = np.asarray(feats, np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise ValueError(f"mean_pairwise_distance needs (N >= 2, D) features, got {feats.shape}")
    n, total = len(feats), 0.0
    for rows in _row_slices(n, n):
        d = np.sqrt(_pairwise_sq(feats[rows], feats))
        local = np.arange(len(d))
        d[local, local + rows.start] = 0.0  # a row's distance to itself, exactly (not rounding)
        total += float(d.sum())
    return total / (n * (n - 1))
