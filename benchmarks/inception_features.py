"""Inception feature extraction speed: the straightforward path against ours, in one run.

    .venv/bin/python benchmarks/inception_features.py [--images 32] [--batch 8]

Straightforward: the network as stored (`torch.jit.load`), NCHW input, batches of `--batch`
under `torch.no_grad`, all cores splitting each operation. Ours: `InceptionFeatures` (frozen
graph with BatchNorm folded and ReLU fused, channels-last input, one batch per core). Both
see the same MNIST digits after a warm-up, so TorchScript's profiling executor has optimised
each graph. Prints JSON: images/s of both, the speed-up, ours as a fraction of this machine's
measured fp32 matmul peak, and the largest feature difference (must stay under 1e-4).
Other processes competing for the cores lower both rates; the straightforward one the most.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch

from dcgan.data.sources import mnist_sample_arrays
from dcgan.evaluation.features import InceptionFeatures, load_network, prepare

# Inception-v3 at 299x299: 5.7 GFLOPs (2 x 2.85 G multiply-adds) per image.
GFLOP_PER_IMAGE = 5.7


def straightforward(batch_size: int) -> Callable[[torch.Tensor], np.ndarray]:
    """uint8 (N, C, H, W) -> features (N, 2048) with the network as stored."""
    network = load_network("cpu")

    @torch.no_grad()
    def extract(images: torch.Tensor) -> np.ndarray:
        parts = [network(prepare(b)).double() for b in images.split(batch_size)]
        return torch.cat(parts).numpy()

    return extract


def timed(extract: Callable[[torch.Tensor], np.ndarray], images: torch.Tensor, warm: int):
    """(images per second, features) of one pass, after `warm` images of warm-up."""
    extract(images[:warm])  # profiling runs and first-call allocations
    extract(images[:warm])
    start = time.perf_counter()
    feats = extract(images)
    return len(images) / (time.perf_counter() - start), feats


def peak_gflops(seconds: float = 1.0) -> float:
    """Measured fp32 matmul GFLOP/s of this machine (all threads): the practical peak."""
    a = torch.randn(1024, 1024)
    a @ a
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ a
        n += 1
    return n * 2 * 1024**3 / (time.perf_counter() - start) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8, help="straightforward path's batch size")
    args = ap.parse_args()
    digits, _ = mnist_sample_arrays()
    images = torch.from_numpy(digits[: args.images]).unsqueeze(1)
    ours = InceptionFeatures()
    warm = 2 * ours.batch_size * torch.get_num_threads()
    plain_rate, plain = timed(straightforward(args.batch), images, args.batch)
    fast_rate, fast = timed(ours, images, warm)
    peak = peak_gflops()
    result = {
        "images": args.images,
        "threads": torch.get_num_threads(),
        "straightforward_batch": args.batch,
        "ours_batch_per_thread": ours.batch_size,
        "straightforward_images_per_s": round(plain_rate, 2),
        "ours_images_per_s": round(fast_rate, 2),
        "speedup": round(fast_rate / plain_rate, 2),
        "matmul_peak_gflops": round(peak, 1),
        "ours_fraction_of_peak": round(fast_rate * GFLOP_PER_IMAGE / peak, 3),
        "max_abs_feature_difference": float(np.abs(fast - plain).max()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
