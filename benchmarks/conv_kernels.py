"""Per layer: DCGAN's convolutions in bf16 on the CPU, torch's own kernels against the routes of
`dcgan.nn.kernels`, forward and backward.

    .venv/bin/python benchmarks/conv_kernels.py [--calls 15] [--batch 128]

Each layer of the paper architecture (ngf = ndf = 64) at 64x64x3 and 32x32x1 runs forward and
backward under bf16 autocast, channels-last, at batch 128. Every input needs a gradient but
G's first (z): D's first layer is timed as G's update runs it, with its input gradient. Calls
alternate between the two paths so that load from other processes hits both alike. Prints one
JSON line per layer: median ms per call for each path, the ratio, and GFLOP/s (counted by
torch's FlopCounterMode).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dcgan.config import ModelConfig
from dcgan.nn import kernels
from dcgan.nn.models import Discriminator, Generator

CL = torch.channels_last


def layer_inputs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module, tuple]]:
    """(name, convolution, its input's shape) for each convolution of `model` on `example`."""
    found = []
    convs = [
        (n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    hooks = [
        m.register_forward_hook(lambda mod, inp, _out, n=n: found.append((n, mod, inp[0].shape)))
        for n, m in convs
    ]
    with torch.no_grad():
        model(example)
    for h in hooks:
        h.remove()
    return found


def call(layer: nn.Module, x: torch.Tensor, ours: bool) -> None:
    with contextlib.nullcontext() if ours else kernels.disabled():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
        y.backward(torch.ones_like(y))


def time_layer(layer: nn.Module, shape: tuple, needs_grad: bool, calls: int) -> dict:
    x = torch.randn(shape).contiguous(memory_format=CL).requires_grad_(needs_grad)
    with FlopCounterMode(display=False) as counter:
        call(layer, x, ours=False)
    times: dict[str, list[float]] = {"torch": [], "ours": []}
    for _ in range(2):  # warm-up: primitive creation
        call(layer, x, False), call(layer, x, True)
    for _ in range(calls):
        for path in times:
            start = time.perf_counter()
            call(layer, x, path == "ours")
            times[path].append(time.perf_counter() - start)
    out = {path: round(statistics.median(t) * 1e3, 2) for path, t in times.items()}
    out["speedup"] = round(out["torch"] / out["ours"], 2)
    flops = counter.get_total_flops()
    out["gflop_per_s"] = {p: round(flops / out[p] / 1e6) for p in times}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    total = {"torch": 0.0, "ours": 0.0}
    for size, channels in ((64, 3), (32, 1)):
        cfg = ModelConfig(image_size=size, channels=channels)
        nets = {
            "G": (Generator(cfg), torch.randn(args.batch, cfg.nz)),
            "D": (Discriminator(cfg), torch.randn(args.batch, channels, size, size)),
        }
        for net, (model, example) in nets.items():
            model.to(memory_format=CL)
            for i, (name, layer, shape) in enumerate(layer_inputs(model, example)):
                row = time_layer(
                    layer, tuple(shape), needs_grad=(net, i) != ("G", 0), calls=args.calls
                )
                for path in total:
                    total[path] += row[path]
                print(
                    json.dumps(
                        {
                            "shape": f"{size}x{size}x{channels}",
                            "layer": f"{net}.{name}",
                            "input": list(shape),
                            **row,
                        }
                    ),
                    flush=True,
                )
    print(json.dumps({"sum_over_layers_ms": {k: round(v, 1) for k, v in total.items()}}))


if __name__ == "__main__":
    main()
