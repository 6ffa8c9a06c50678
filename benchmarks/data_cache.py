"""Data-path throughput: decoding a folder of JPEGs once, then reading the decoded cache.

    .venv/bin/python benchmarks/data_cache.py [--images 2000] [--size 64] [--workers 0 2]

Writes a CelebA-like folder (178x218 JPEGs cut from the photo matplotlib ships), then for each
worker count times `open_images` on an empty cache (decode) and again (cache hit), plus one
pass of random training batches over the result. Ratios are against the decode of the same
run, so they hold on any machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dcgan.config import DataConfig
from dcgan.data import open_images


def write_folder(folder: Path, n: int) -> None:
    """n distinct 178x218 JPEGs: random crops of a real photo, so the decoder does real work."""
    import matplotlib

    photo = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        x, y = rng.integers(0, photo.width - 178), rng.integers(0, photo.height - 218)
        photo.crop((x, y, x + 178, y + 218)).save(folder / f"{i:06d}.jpg", quality=90)


def timed_open(cfg: DataConfig, size: int) -> tuple[float, int, str]:
    start = time.perf_counter()
    data = open_images(cfg, size, 3)
    return time.perf_counter() - start, len(data), data.source


def batch_pass(cfg: DataConfig, size: int, batch: int = 64) -> float:
    """images/s of drawing every image once in shuffled batches of uint8 from the cache."""
    data = open_images(cfg, size, 3)
    order = torch.randperm(len(data))
    start = time.perf_counter()
    for i in range(0, len(data), batch):
        data.take(order[i : i + batch]).float()
    return len(data) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "img_align_celeba"
        write_folder(folder, args.images)
        results = []
        for workers in args.workers:
            cfg = DataConfig(
                dataset="folder",
                data_root=str(folder),
                cache_dir=f"{tmp}/cache{len(results)}",
                workers=workers,
            )
            decode_s, n, _ = timed_open(cfg, args.size)
            cached_s, _, source = timed_open(cfg, args.size)
            assert "cached" in source, source
            results.append(
                {
                    "workers": workers,
                    "images": n,
                    "decode_images_per_s": round(n / decode_s),
                    "cached_images_per_s": round(n / cached_s),
                    "cache_speedup": round(decode_s / cached_s, 1),
                    "batch_images_per_s": round(batch_pass(cfg, args.size)),
                }
            )
            print(json.dumps(results[-1]))
        base = results[0]["decode_images_per_s"]
        for r in results[1:]:
            print(
                f"workers {r['workers']}: decode {r['decode_images_per_s'] / base:.2f}x workers 0"
            )


if __name__ == "__main__":
    main()
