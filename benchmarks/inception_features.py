"""Inception feature extraction speed: the straightforward path against ours, same run.

    .venv/bin/python benchmarks/inception_features.py [--images 32]

Straightforward: one image at a time, as a per-file loop would. Ours: `InceptionFeatures`,
batches of 8 under inference mode. Both run after a warm-up, so TorchScript's profiling
executor has optimised the graph for each. Prints images/s of both, the ratio, an estimate of
the fraction of this machine's fp32 peak, and the largest feature difference (must stay under
1e-4).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from dcgan.data.sources import mnist_sample_arrays
from dcgan.inception import InceptionFeatures

# Inception-v3 at 299x299: 5.7 GFLOPs (2 x 2.85 G multiply-adds) per image.
GFLOP_PER_IMAGE = 5.7


def timed(extractor: InceptionFeatures, images: torch.Tensor) -> tuple[float, object]:
    for _ in range(3):  # the profiling executor optimises after a couple of calls
        extractor(images[: extractor.batch_size])
    start = time.perf_counter()
    feats = extractor(images)
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
    args = ap.parse_args()
    digits, _ = mnist_sample_arrays()
    images = torch.from_numpy(digits[: args.images]).unsqueeze(1)
    plain_rate, plain = timed(InceptionFeatures(batch_size=1), images)
    fast_rate, fast = timed(InceptionFeatures(), images)
    peak = peak_gflops()
    result = {
        "images": args.images,
        "threads": torch.get_num_threads(),
        "straightforward_images_per_s": round(plain_rate, 2),
        "ours_images_per_s": round(fast_rate, 2),
        "speedup": round(fast_rate / plain_rate, 2),
        "matmul_peak_gflops": round(peak, 1),
        "fraction_of_peak": round(fast_rate * GFLOP_PER_IMAGE / peak, 3),
        "max_abs_feature_difference": float(abs(fast - plain).max()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
