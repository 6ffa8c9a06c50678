"""The augmentation ops alone: ours (`dcgan.nn.augment`) against kornia.augmentation's nearest
equivalents, forward and backward on one batch, alternating.

    .venv/bin/python benchmarks/augment_ops.py [--batch 64] [--rounds 4]

kornia is not a dependency: install it into a separate directory and put that first on
PYTHONPATH to include it (without it, only ours is timed). Kornia's pipeline: RandomAffine
(translation up to 1/8, reflection padding), RandomErasing (a quarter of the area, value 0) and
ColorJiggle (brightness, contrast, and saturation on colour images), all with p = 1.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from dcgan.nn.augment import POLICIES, augment, draw_params


def ours(x: torch.Tensor) -> Callable[[], torch.Tensor]:
    n, size = len(x), x.shape[-1]
    return lambda: augment(x, POLICIES, draw_params(n, size, 1.0, torch.Generator()))


def kornia_pipeline(x: torch.Tensor) -> Callable[[], torch.Tensor] | None:
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    saturation = 1.0 if x.shape[1] == 3 else 0.0  # kornia's saturation needs 3 channels
    pipeline = K.AugmentationSequential(
        K.RandomAffine(degrees=0, translate=(0.125, 0.125), p=1.0, padding_mode="reflection"),
        K.RandomErasing(scale=(0.25, 0.25), ratio=(1, 1), value=0.0, p=1.0),
        K.ColorJiggle(brightness=0.5, contrast=0.5, saturation=saturation, p=1.0),
    )
    return lambda: pipeline((x + 1) / 2) * 2 - 1  # kornia works in [0, 1]


def ms_per_call(fn: Callable[[], torch.Tensor], calls: int = 40) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn().sum().backward()
    return (time.perf_counter() - start) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    for channels, size in ((1, 32), (3, 64)):
        x = torch.rand(args.batch, channels, size, size) * 2 - 1
        x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
        fns = {"ours": ours(x), "kornia": kornia_pipeline(x)}
        fns = {k: f for k, f in fns.items() if f is not None}
        for f in fns.values():
            ms_per_call(f, 3)  # warm-up
        times = {k: [] for k in fns}
        for _ in range(args.rounds):
            for k, f in fns.items():
                times[k].append(ms_per_call(f))
        row = {"shape": f"{size}x{size}x{channels}", "batch": args.batch}
        row |= {f"{k}_ms": round(sorted(v)[len(v) // 2], 2) for k, v in times.items()}
        print(json.dumps(row))


if __name__ == "__main__":
    main()
