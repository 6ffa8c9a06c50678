"""The real FID feature network on the CPU: a few dozen images in all, shared network."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dcgan.data.sources import mnist_sample_arrays
from dcgan.inception import (
    INPUT_SIZE,
    InceptionFeatures,
    feature_network_path,
    load_network,
    prepare,
    tf_bilinear_resize,
)
from dcgan.metrics import feature_stats, fid


@pytest.fixture(scope="module")
def extractor() -> InceptionFeatures:
    return InceptionFeatures()


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    images, _ = mnist_sample_arrays()
    order = np.random.default_rng(0).permutation(len(images))[:32]
    return torch.from_numpy(images[order]).unsqueeze(1)


def test_tf1_bilinear_matches_hand_computed_values() -> None:
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    expected = torch.tensor(
        [[0.0, 0.5, 1.0, 1.0], [1.0, 1.5, 2.0, 2.0], [2.0, 2.5, 3.0, 3.0], [2.0, 2.5, 3.0, 3.0]]
    )
    assert torch.allclose(tf_bilinear_resize(x, 4)[0, 0], expected)


def test_prepare_range_and_shape() -> None:
    x = prepare(torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 1, 2, 2))
    assert x.shape == (1, 3, INPUT_SIZE, INPUT_SIZE)
    assert x.min() == -1.0 and x.max() == 0.9921875


def test_features_shape_grey_equals_rgb_and_batching(extractor, digits) -> None:
    grey = extractor(digits[:4])
    assert grey.shape == (4, 2048) and grey.dtype == np.float64
    assert np.array_equal(grey, extractor(digits[:4].expand(-1, 3, -1, -1)))
    one_by_one = InceptionFeatures(batch_size=1)(digits[:4])  # the straightforward path
    assert np.abs(one_by_one - grey).max() < 1e-4
    assert np.array_equal(grey, extractor(digits[:4]))  # deterministic


def test_loading_hides_only_the_jit_deprecation() -> None:
    load_network.cache_clear()
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_network("cpu")
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert list(warnings.filters) == before
    assert feature_network_path().name == "default_1.pt"


def test_fid_separates_real_halves_from_noise(extractor, digits) -> None:
    a, b = extractor(digits[:16]), extractor(digits[16:])
    noise = torch.randint(0, 256, (16, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    n = extractor(noise.to(torch.uint8))
    real_vs_real = fid(*feature_stats(a), *feature_stats(b))
    real_vs_noise = fid(*feature_stats(a), *feature_stats(n))
    assert real_vs_noise > 3 * real_vs_real
