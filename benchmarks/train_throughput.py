"""Training speed: the classic pytorch/examples DCGAN loop against the project's own step, side
by side in one process.

    .venv/bin/python benchmarks/train_throughput.py [--rounds 7] [--batch 128]

Reference: the eager loop of pytorch/examples `dcgan/main.py` written out below as it is there
(fp32, NCHW, Sigmoid + BCELoss, D backpropagated on real then on fake, G on the same fakes
with D's weight gradients computed too), on torch's own layer classes. Ours:
`dcgan.training.step.train_step` with the default settings (precision 'auto', channels-last, losses
on logits, uint8 data normalised per batch, the moving average of G, the bf16 CPU routes of
`dcgan.nn.kernels`); also timed with those routes off ("ours_torch_kernels"), to show what they
buy, and with every augmentation policy on ("ours_augmented", `--augment translation,cutout,color`),
to show what augmentation costs. All use the paper architecture (ngf = ndf = 64) at batch 128.

Rounds alternate the loops so that load from other processes hits them alike; the ratio
is taken per round and reported as min / median / max. Also printed: FLOPs per image per step
(counted by torch's FlopCounterMode), achieved GFLOP/s and its fraction of the convolution
peak this script measures, G's inference rate, the data path's rate, `dcgan train`'s own
stats.jsonl rate at 32x32x1, and the peak RSS of a 64x64 batch-128 `dcgan train` run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dcgan.config import Config, merge, validate
from dcgan.data import ImageSet
from dcgan.nn import kernels
from dcgan.nn.losses import LOSSES
from dcgan.nn.models import Discriminator, Generator
from dcgan.run.rundir import read_stats
from dcgan.sampling import render
from dcgan.training.batches import RealBatches, place_data
from dcgan.training.loop import train
from dcgan.training.precision import DTYPES, Precision
from dcgan.training.start import run_config
from dcgan.training.state import build_state
from dcgan.training.step import train_step

CPU = torch.device("cpu")
SHAPES = ((64, 3), (32, 1))  # (image size, channels)


def config(size: int, channels: int, batch: int, device: torch.device = CPU, **extra) -> Config:
    """The paper architecture at one shape with the project's defaults otherwise."""
    flat = {"image_size": size, "channels": channels, "ngf": 64, "ndf": 64, "batch_size": batch}
    flat["device"] = device.type
    return run_config(validate(merge(Config(), {**flat, **extra}, "bench")), None, device)


# ---------------------------------------------------------------------------- the two loops


class ScriptImages(torch.utils.data.Dataset):
    """The script's per-image path: uint8 image -> ToTensor -> Normalize((0.5,), (0.5,)), over
    an epoch of `length` images (the distinct ones repeat)."""

    def __init__(self, images: torch.Tensor, length: int):
        self.images, self.length = images, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return (self.images[i % len(self.images)].float() / 255 - 0.5) / 0.5, 0


def script_batches(cfg: Config) -> Callable[[], torch.Tensor]:
    """Real batches as the script's DataLoader gives them (shuffled, its default 2 workers).

    The epoch is MNIST's 60,000 images, as long as the script's shortest: each epoch forks new
    workers, and a fork makes the whole process pay copy-on-write page faults afterwards,
    whichever loop runs next. A short epoch would fork far more often than the script does.
    """
    b, s, c = cfg.train.batch_size, cfg.model.image_size, cfg.model.channels
    images = torch.randint(0, 256, (b * 32, c, s, s), dtype=torch.uint8)
    dataset = ScriptImages(images, length=60_000)
    loader = torch.utils.data.DataLoader(dataset, b, shuffle=True, num_workers=2)

    def epochs():
        while True:
            yield from loader

    stream = epochs()
    return lambda: next(stream)[0]


def torch_layers(model: nn.Module) -> nn.Module:
    """`model` with its convolutions in torch's own classes, as the script builds them."""
    for m in model.modules():
        if isinstance(m, kernels.Conv2d):
            m.__class__ = nn.Conv2d
        elif isinstance(m, kernels.ConvTranspose2d):
            m.__class__ = nn.ConvTranspose2d
    return model


def reference_loop(cfg: Config, loader: bool, device: torch.device = CPU) -> Callable[[], None]:
    """One step of pytorch/examples dcgan/main.py per call, untouched: the baseline. Without
    `loader` its real batch is made once (no data cost); with it, from the script's loader
    (moved to `device` each step, as the script does)."""
    b, nz, s, c = cfg.train.batch_size, cfg.model.nz, cfg.model.image_size, cfg.model.channels
    netG = torch_layers(Generator(cfg.model)).to(device)
    netD = nn.Sequential(torch_layers(Discriminator(cfg.model)), nn.Sigmoid()).to(device)
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    fixed = torch.rand(b, c, s, s, device=device) * 2 - 1
    batches = script_batches(cfg) if loader else None
    data = (lambda: batches().to(device)) if batches else lambda: fixed

    def step() -> None:
        netD.zero_grad()
        real_cpu = data()
        label = torch.full((b,), 1.0, dtype=real_cpu.dtype, device=device)
        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        output.mean().item()
        noise = torch.randn(b, nz, 1, 1, device=device)
        fake = netG(noise)
        label.fill_(0.0)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        output.mean().item()
        optimizerD.step()
        netG.zero_grad()
        label.fill_(1.0)
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        output.mean().item()
        optimizerG.step()

    return step


def project_loop(cfg: Config, device: torch.device = CPU) -> tuple[Callable[[], None], RealBatches]:
    """One `train_step` per call, as `dcgan train` runs it (stats stay on the device)."""
    state = build_state(cfg, device)
    images = torch.randint(
        0,
        256,
        (cfg.train.batch_size * 8, cfg.model.channels) + (cfg.model.image_size,) * 2,
        dtype=torch.uint8,
    )
    reals = RealBatches(place_data(ImageSet(images, source="random"), device), cfg, device)
    loss, amp = LOSSES[cfg.train.loss], Precision(cfg.train.precision, device.type)
    return (lambda: train_step(state, reals, loss, amp, cfg)), reals


def with_augmentation(cfg: Config) -> Config:
    """`cfg` with every DiffAugment policy on every image D sees (p = 1)."""
    return validate(merge(cfg, {"augment": "translation,cutout,color"}, "bench"))


def without_routes(step: Callable[[], None]) -> Callable[[], None]:
    """`step` with dcgan.nn.kernels' routes off: torch's own kernels throughout."""

    def run() -> None:
        with kernels.disabled():
            step()

    return run


def flops_per_image(step: Callable[[], None], batch: int) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / batch


def rate(step: Callable[[], None], steps: int, batch: int) -> float:
    """Images per second over `steps` calls (a GPU's queue drained at both ends)."""
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return steps * batch / (time.perf_counter() - start)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def side_by_side(size: int, channels: int, args) -> dict:
    cfg = config(size, channels, args.batch)
    ours, reals = project_loop(cfg)
    loops = {
        "reference": reference_loop(cfg, loader=False),
        "reference_with_loader": reference_loop(cfg, loader=True),
        "ours": ours,
        "ours_torch_kernels": without_routes(project_loop(cfg)[0]),
        "ours_augmented": project_loop(with_augmentation(cfg))[0],
    }
    flops = {name: flops_per_image(step, args.batch) for name, step in loops.items()}
    for step in loops.values():
        rate(step, 2, args.batch)  # warm-up: oneDNN primitive creation, allocator, workers
    steps = max(1, round(args.seconds * (60 if size == 64 else 350) / args.batch))
    rounds: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, step in loops.items():
            rounds[name].append(rate(step, steps, args.batch))
    out = {"shape": f"{size}x{size}x{channels}", "batch": args.batch}
    out["precision"] = cfg.train.precision
    for name, rates in rounds.items():
        out[name] = summary(rates)
        out[name]["gflop_per_image"] = round(flops[name] / 1e9, 3)
        out[name]["gflop_per_s"] = round(statistics.median(rates) * flops[name] / 1e9, 1)
    for ref in ("reference", "reference_with_loader"):
        ratios = [o / r for o, r in zip(rounds["ours"], rounds[ref], strict=True)]
        out[f"ratio_to_{ref}"] = summary(ratios, digits=2)
    ratios = [o / r for o, r in zip(rounds["ours_torch_kernels"], rounds["reference"], strict=True)]
    out["ratio_to_reference_without_routes"] = summary(ratios, digits=2)
    ratios = [a / o for a, o in zip(rounds["ours_augmented"], rounds["ours"], strict=True)]
    out["augmented_to_ours"] = summary(ratios, digits=3)
    out["data_images_per_s"] = round(rate(lambda: reals(0), 20, args.batch))
    out["inference_images_per_s"] = round(inference_rate(cfg, args.batch))
    return out


def summary(values: list[float], digits: int = 1) -> dict:
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def inference_rate(cfg: Config, batch: int) -> float:
    """G's images/s as `dcgan generate` runs it (eval mode, no gradients, fp32)."""
    g = Generator(cfg.model).to(memory_format=torch.channels_last)
    z = torch.randn(batch, cfg.model.nz)
    render(g, z)
    return rate(lambda: render(g, z), 5, batch)


# ---------------------------------------------------------------------------- peaks and runs


def conv_peak(dtype: torch.dtype | None, seconds: float = 2.0) -> float:
    """GFLOP/s of DCGAN's widest stride-2 convolutions (forward, channels-last, batch 256):
    the practical peak this machine reaches on these shapes in `dtype` (None: fp32)."""
    best = 0.0
    for c_in, c_out, size in ((128, 256, 8), (256, 512, 8), (64, 128, 32)):
        conv = nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False).to(memory_format=torch.channels_last)
        x = torch.randn(256, c_in, size, size).contiguous(memory_format=torch.channels_last)
        with (
            torch.no_grad(),
            torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            with FlopCounterMode(display=False) as counter:
                conv(x)
            per_call = counter.get_total_flops()
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds / 3:
                conv(x)
                n += 1
        best = max(best, n * per_call / (time.perf_counter() - start) / 1e9)
    return best


def train_rate(steps: int, batch: int) -> float:
    """images/s that `dcgan train` itself logs in stats.jsonl: the bundled MNIST digits at
    32x32x1, paper widths, batch `batch`, everything else default (the last log interval)."""
    with tempfile.TemporaryDirectory() as tmp:
        every = {"log_every": steps // 2, "sample_every": steps, "checkpoint_every": steps}
        cfg = config(32, 1, batch, dataset="mnist-sample", steps=steps, out=tmp, **every)
        return read_stats(train(cfg).run_dir)[-1]["images_per_s"]


def peak_rss_mib(batch: int) -> float:
    """Peak resident memory of a `dcgan train` child process: 64x64x3, batch `batch`, 3 steps."""
    with tempfile.TemporaryDirectory() as tmp:
        flags = [
            "--dataset",
            "fake",
            "--image-size",
            "64",
            "--channels",
            "3",
            "--batch-size",
            str(batch),
        ]
        flags += ["--steps", "3", "--out", tmp, "--device", "cpu"]
        subprocess.run(
            [sys.executable, "-m", "dcgan", "train", *flags], check=True, capture_output=True
        )
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per shape")
    parser.add_argument("--seconds", type=float, default=3.0, help="~reference seconds per round")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--train-steps", type=int, default=40, help="steps of the dcgan train run")
    args = parser.parse_args()
    torch.manual_seed(0)
    precision = config(32, 1, args.batch).train.precision
    peaks = {"fp32": conv_peak(None)}
    if precision != "fp32":
        peaks[precision] = conv_peak(DTYPES[precision])
    report = {
        "threads": torch.get_num_threads(),
        "peak_gflop_per_s": {k: round(v, 1) for k, v in peaks.items()},
    }
    report["shapes"] = []
    for size, channels in SHAPES:
        row = side_by_side(size, channels, args)
        for ref in ("reference", "reference_with_loader"):
            row[ref]["fraction_of_peak"] = round(row[ref]["gflop_per_s"] / peaks["fp32"], 3)
        for ours in ("ours", "ours_torch_kernels", "ours_augmented"):
            row[ours]["fraction_of_peak"] = round(row[ours]["gflop_per_s"] / peaks[precision], 3)
        report["shapes"].append(row)
        print(json.dumps(row), flush=True)
    report["dcgan_train_32x32x1_images_per_s"] = train_rate(args.train_steps, args.batch)
    report["peak_rss_mib_64x64x3_batch"] = {str(args.batch): round(peak_rss_mib(args.batch))}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
