"""The paper's linear probe: D's pooled features, the regularised classifier, the baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from dcgan.config import DataConfig, ModelConfig
from dcgan.data.sources import load_mnist_sample, mnist_sample_arrays
from dcgan.evaluation.linear_probe import (
    C_GRID,
    d_features,
    fit_grid,
    label_draws,
    linear_probe,
    probe_discriminator,
    random_discriminator_like,
    row_basis,
    split_pool_test,
)
from dcgan.nn.models import Discriminator


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Convs this tiny are all thread hand-off: on a shared two-core machine two threads ran
    d_features 40x slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_d(size: int = 16, channels: int = 1, seed: int = 0) -> Discriminator:
    torch.manual_seed(seed)
    return Discriminator(ModelConfig(image_size=size, channels=channels, ndf=8))


def uint8_images(n: int, size: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)


def blobs(n_per_class: int, dim: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around 10 class means: float32 (10 n, dim) and labels (10 n,)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, spread, (10, dim))
    y = np.repeat(np.arange(10), n_per_class)
    return (means[y] + rng.normal(0, 1, (len(y), dim))).astype(np.float32), y


# ---------------------------------------------------------------------------- features


@pytest.mark.parametrize(("size", "channels"), [(16, 1), (32, 1), (64, 3)])
def test_d_features_shape_is_sum_of_block_widths_times_16(size, channels):
    d = tiny_d(size, channels)
    x = uint8_images(5, size, channels)
    blocks = d.forward_features(x.float())[1]
    assert min(b.shape[-1] for b in blocks) == 4  # DCGAN sizes >= 16 end their blocks at 4x4
    feats = d_features(d, x, batch_size=2)
    assert feats.dtype == np.float32
    assert feats.shape == (5, sum(b.shape[1] * 16 for b in blocks))
    np.testing.assert_array_equal(feats, d_features(d, x))  # deterministic, batch-independent
    assert d.training  # the caller's mode is restored


def test_d_features_are_each_block_max_pooled_to_4x4_in_order():
    d = tiny_d(32)
    x = uint8_images(3, 32)
    d.eval()
    with torch.no_grad():
        blocks = d.forward_features(x.float() / 127.5 - 1)[1]
    expected = torch.cat([F.max_pool2d(b, b.shape[-1] // 4).flatten(1) for b in blocks], 1)
    np.testing.assert_allclose(d_features(d, x), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_d_features_uses_eval_mode_batchnorm():
    d = tiny_d(16)
    d.blocks[1][1].running_mean.fill_(5.0)  # only eval mode reads the running statistics
    x = uint8_images(4, 16)
    shifted = d_features(d, x)
    d.blocks[1][1].running_mean.zero_()
    assert not np.allclose(shifted, d_features(d, x))


def test_d_features_rejects_other_dtypes_and_shapes():
    d = tiny_d(16)
    with pytest.raises(ValueError, match="uint8"):
        d_features(d, uint8_images(2, 16).float())
    with pytest.raises(ValueError, match=r"shape \(2, 1, 32, 32\)"):
        d_features(d, uint8_images(2, 32))


# ---------------------------------------------------------------------------- linear probe


def test_linear_probe_separates_separable_features():
    x, y = blobs(30, 64, spread=3.0, seed=0)
    tx, ty = blobs(20, 64, spread=3.0, seed=0)  # same class means, fresh noise
    tx = tx + np.random.default_rng(1).normal(0, 0.01, tx.shape).astype(np.float32)
    result = linear_probe(x, y, tx, ty, labels_per_class=5, draws=3, seed=0)
    assert result.mean >= 0.98
    assert len(result.accuracies) == len(result.chosen_c) == 3
    assert set(result.chosen_c) <= set(C_GRID)
    assert (result.labels_per_class, result.feature_dim, result.n_test) == (5, 64, 200)
    assert result.std == pytest.approx(np.std(result.accuracies))


def test_linear_probe_on_random_labels_is_at_chance():
    rng = np.random.default_rng(0)
    x, tx = rng.normal(size=(600, 40)), rng.normal(size=(2000, 40))
    y, ty = rng.integers(0, 10, 600), rng.integers(0, 10, 2000)
    result = linear_probe(x.astype(np.float32), y, tx.astype(np.float32), ty, 20, draws=3)
    assert abs(result.mean - 0.1) < 0.04


def test_linear_probe_is_fixed_by_its_seed():
    x, y = blobs(40, 30, spread=0.4, seed=2)  # overlapping: draws give different accuracies
    tx, ty = blobs(40, 30, spread=0.4, seed=2)
    a = linear_probe(x, y, tx, ty, 10, draws=3, seed=7)
    assert a == linear_probe(x, y, tx, ty, 10, draws=3, seed=7)
    assert a.accuracies != linear_probe(x, y, tx, ty, 10, draws=3, seed=8).accuracies
    # Draw d depends only on (seed, d): more draws extend the list.
    assert linear_probe(x, y, tx, ty, 10, draws=2, seed=7).accuracies == a.accuracies[:2]


def test_label_draws_are_disjoint_and_balanced():
    y = np.repeat(np.arange(5), 9)
    for train, val in label_draws(y, 4, draws=3, seed=0):
        assert not set(train) & set(val)
        assert np.bincount(y[train]).tolist() == np.bincount(y[val]).tolist() == [4] * 5


def test_linear_probe_needs_two_k_per_class():
    x, y = blobs(10, 8, spread=3.0, seed=0)
    y[np.flatnonzero(y == 3)[:2]] = 4  # class 3 keeps 8 examples
    with pytest.raises(ValueError, match="class 3 has 8 labelled examples; 5 labels per class"):
        linear_probe(x, y, x, y, labels_per_class=5)
    with pytest.raises(ValueError, match="differ in length"):
        linear_probe(x, y[:-1], x, y, labels_per_class=2)


def test_fitting_in_the_row_space_equals_fitting_all_features():
    """Fewer examples than features: the weights lie in the span of the examples."""
    x, y = blobs(6, 300, spread=0.3, seed=4)
    z = StandardScaler().fit_transform(x).astype(np.float64)
    basis = row_basis(z)
    assert basis.shape == (59, 300)  # 60 centred rows span 59 dimensions
    np.testing.assert_allclose(basis @ basis.T, np.eye(59), atol=1e-8)
    for c in (1e-3, 1e-1, 10.0):
        tight = {"C": c, "max_iter": 10_000, "tol": 1e-10}
        full = LogisticRegression(**tight).fit(z, y)
        reduced = LogisticRegression(**tight).fit(z @ basis.T, y)
        scale = np.abs(full.coef_).max()
        np.testing.assert_allclose(reduced.coef_ @ basis, full.coef_, atol=1e-4 * scale)


def test_fit_grid_classifies_raw_features_as_sklearn_does():
    x, y = blobs(6, 300, spread=0.3, seed=4)
    z = StandardScaler().fit_transform(x)
    for c, fit in zip(C_GRID, fit_grid(x, y), strict=True):
        full = LogisticRegression(C=c, max_iter=1000).fit(z, y)
        assert np.mean(fit.predict(x) == full.predict(z)) >= 0.95


# ---------------------------------------------------------------------------- baseline, split


def test_random_discriminator_like_is_seeded_fresh_and_leaves_the_rng_alone():
    trained = tiny_d(32, seed=5)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    state = torch.get_rng_state()
    a = random_discriminator_like(trained, seed=1)
    assert torch.equal(state, torch.get_rng_state())
    b = random_discriminator_like(trained, seed=1)
    c = random_discriminator_like(trained, seed=2)
    assert a.cfg == trained.cfg
    for pa, pb, pt in zip(a.parameters(), b.parameters(), trained.parameters(), strict=True):
        assert pa.shape == pt.shape and torch.equal(pa, pb)
        assert not torch.equal(pa, pt)
    w = a.blocks[0][0].weight.detach()
    assert not torch.equal(w, c.blocks[0][0].weight)
    assert abs(float(w.std()) - 0.02) < 0.005  # the paper's N(0, 0.02) init


def test_split_pool_test_is_stratified_disjoint_and_fixed():
    labels = mnist_sample_arrays()[1]
    pool, test = split_pool_test(labels, 1000, seed=0)
    assert np.bincount(labels[test]).tolist() == [100] * 10
    assert len(pool) + len(test) == 5000 and not set(pool) & set(test)
    assert (np.diff(pool) > 0).all() and (np.diff(test) > 0).all()
    again = split_pool_test(labels, 1000, seed=0)
    assert np.array_equal(again[1], test)
    assert not np.array_equal(split_pool_test(labels, 1000, seed=1)[1], test)


def test_split_pool_test_keeps_proportions_of_unbalanced_classes():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    _, test = split_pool_test(labels, 15, seed=0)
    assert np.bincount(labels[test]).tolist() == [8, 4, 3]  # 7.5, 4.5, 3: largest remainders
    with pytest.raises(ValueError, match="n_test"):
        split_pool_test(labels, 100, seed=0)


# ---------------------------------------------------------------------------- end to end


def test_probe_of_a_random_d_on_real_digits_is_well_above_chance():
    images = load_mnist_sample(DataConfig(), 16, 1)
    labels = mnist_sample_arrays()[1]
    pool, test = split_pool_test(labels, 1000, seed=0)
    d = random_discriminator_like(tiny_d(16), seed=0)
    pool_x, test_x = images[torch.from_numpy(pool)], images[torch.from_numpy(test)]
    result = probe_discriminator(d, pool_x, labels[pool], test_x, labels[test], 10, draws=2)
    assert result.mean > 0.5  # chance is 0.1: random conv features already tell digits apart
    assert (result.feature_dim, result.n_test) == (8 * 16 + 16 * 16, 1000)


def test_probe_discriminator_equals_linear_probe_on_all_features():
    """Only the pool images that some draw picks go through D; the result is the same."""
    images = load_mnist_sample(DataConfig(), 16, 1)[::10]
    labels = mnist_sample_arrays()[1][::10]
    d = tiny_d(16)
    result = probe_discriminator(d, images[:300], labels[:300], images[300:], labels[300:], 5)
    feats = d_features(d, images)
    full = linear_probe(feats[:300], labels[:300], feats[300:], labels[300:], 5)
    np.testing.assert_allclose(result.accuracies, full.accuracies, atol=0.01)
