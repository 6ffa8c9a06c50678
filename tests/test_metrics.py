"""FID, KID and precision/recall as pure functions of features (synthetic Gaussians)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from dcgan.metrics import feature_stats, fid, kid, precision_recall


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
