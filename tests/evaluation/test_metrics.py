"""FID, KID and precision/recall as pure functions of features (synthetic Gaussians)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from dcgan.evaluation import metrics
from dcgan.evaluation.metrics import feature_stats, fid, kid, precision_recall


def gaussian(n: int, d: int = 8, shift: float = 0.0, scale: float = 1.0, seed: int = 0):
    return np.random.default_rng(seed).normal(shift, scale, (n, d))


def test_fid_of_a_set_with_itself_is_zero() -> None:
    mu, sigma = feature_stats(gaussian(500))
    assert abs(fid(mu, sigma, mu, sigma)) < 1e-6


def test_fid_matches_the_closed_form() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = a @ a.T + np.eye(4), b @ b.T + np.eye(4)
    mu1, mu2 = np.arange(4.0), np.ones(4)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert fid(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert fid(mu1, s1, mu2, s2) == pytest.approx(fid(mu2, s2, mu1, s1), rel=1e-9)
    # equal covariances: only the means differ
    assert fid(mu1, s1, mu2, s1) == pytest.approx(((mu1 - mu2) ** 2).sum(), rel=1e-6)


def test_fid_of_diagonal_gaussians_is_analytic() -> None:
    # commuting covariances: sqrt(s1 s2) is elementwise, FID = |dmu|^2 + sum (sqrt a - sqrt b)^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([3.0, 1.0, 0.0])
    expected = 9.0 + 4.0 + (1 + 1 + 2.5**2)
    assert fid(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    assert fid(mu2, np.diag(b), mu1, np.diag(a)) == pytest.approx(expected, rel=1e-12)


def test_fid_with_fewer_samples_than_dimensions_is_the_exact_value() -> None:
    """Singular covariances: the matrix square root must still give the FID computed exactly
    from the samples (the singular values of the centred cross-product)."""
    a, b = gaussian(6, d=16, seed=11), gaussian(6, d=16)
    value = fid(*feature_stats(a), *feature_stats(b))
    assert value == pytest.approx(metrics.fid_of_samples(a, b), rel=1e-6)


def test_fid_grows_with_the_shift() -> None:
    ref = feature_stats(gaussian(400))
    near, far = (
        feature_stats(gaussian(400, shift=0.2, seed=2)),
        feature_stats(gaussian(400, 8, 2.0, seed=3)),
    )
    assert fid(*ref, *near) < fid(*ref, *far)


def test_fid_refuses_a_complex_square_root() -> None:
    s = np.diag([1.0, 1.0])
    bad = np.diag([-1.0, 1.0])  # not a covariance: the square root of -1 is imaginary
    with pytest.raises(ValueError, match="imaginary component"):
        fid(np.zeros(2), s, np.zeros(2), bad)


def test_fid_checks_shapes() -> None:
    with pytest.raises(ValueError, match="mismatched shapes"):
        fid(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_kid_of_one_distribution_is_within_two_std_of_zero() -> None:
    mean, std = kid(gaussian(600, seed=4), gaussian(600, seed=5), subset_size=200)
    assert abs(mean) < 2 * std
    shifted, shifted_std = kid(
        gaussian(600, seed=4), gaussian(600, shift=1.0, seed=6), subset_size=200
    )
    assert shifted > 10 * shifted_std > 0


def test_kid_estimator_matches_the_definition() -> None:
    x, y = gaussian(5, d=3, seed=12), gaussian(5, d=3, shift=0.5, seed=13)

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    pairs = [(i, j) for i in range(5) for j in range(5) if i != j]
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i, j in pairs) / len(pairs)
    across = sum(k(x[i], y[j]) for i in range(5) for j in range(5)) / 25
    assert metrics._polynomial_mmd(x, y) == pytest.approx(within - 2 * across, rel=1e-12)


def test_kid_is_repeatable_with_a_seed() -> None:
    a, b = gaussian(300, seed=7), gaussian(300, seed=8)
    assert kid(a, b, subset_size=100, seed=3) == kid(a, b, subset_size=100, seed=3)


def test_precision_recall() -> None:
    real = gaussian(400, d=2, seed=9)
    assert precision_recall(real, real.copy()) == (1.0, 1.0)
    mode = real[real[:, 0] > 1.0]  # fakes covering one corner of the real data only
    precision, recall = precision_recall(real, mode + 1e-3)
    assert precision > 0.95 and recall < 0.5
    far = gaussian(200, d=2, shift=10.0, seed=10)
    assert precision_recall(real, far) == (0.0, 0.0)


def test_precision_recall_by_hand() -> None:
    # k=1 radii: real 0,1,2,3 -> 1 and 10 -> 7; fake 0.5 and 5 -> 4.5, 20 -> 15
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    fake = np.array([[0.5], [20.0], [5.0]])
    assert precision_recall(real, fake, k=1) == pytest.approx((2 / 3, 1.0))


def test_precision_recall_do_not_depend_on_the_block_size(monkeypatch) -> None:
    real, fake = gaussian(300, seed=14), gaussian(200, shift=0.3, seed=15)
    whole = precision_recall(real, fake)
    monkeypatch.setattr(metrics, "DISTANCE_BLOCK", 7 * 300)  # 7 rows at a time, ragged end
    assert precision_recall(real, fake) == whole


def test_mean_pairwise_distance_is_exact_and_blocks_do_not_change_it(monkeypatch) -> None:
    from scipy.spatial.distance import pdist

    assert metrics.mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0]])) == 5.0
    assert metrics.mean_pairwise_distance(np.ones((50, 7))) == 0.0  # copies: exactly 0
    feats = np.random.default_rng(3).normal(size=(101, 6))
    whole = metrics.mean_pairwise_distance(feats)
    assert whole == pytest.approx(pdist(feats).mean(), rel=1e-12)
    monkeypatch.setattr(metrics, "DISTANCE_BLOCK", 7 * 101)  # blocks of 7 rows
    assert metrics.mean_pairwise_distance(feats) == pytest.approx(whole, rel=1e-12)
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.mean_pairwise_distance(feats[:1])
