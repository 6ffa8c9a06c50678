"""The CUDA path: what only a GPU can show. Marked cuda: skipped with the reason where there is
none; `make gpu-check` runs them on one (benchmarks/gpu_check.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import with_settings
from dcgan.config import Config
from dcgan.evaluation.features import InceptionFeatures
from dcgan.run.checkpoint import load_export
from dcgan.sampling import render
from dcgan.seeding import z_for_indices
from dcgan.training.loop import train

pytestmark = pytest.mark.cuda


def test_a_run_trains_on_the_gpu_and_resumes_bitwise(tiny_config: Config) -> None:
    """--deterministic on the GPU: 3 + 3 steps equal 6 steps, weight for weight."""
    cfg = with_settings(tiny_config, device="cuda", deterministic=True, steps=6)
    straight = train(cfg)
    half = train(with_settings(cfg, steps=3))
    resumed = train(with_settings(cfg, steps=6), resume=half.run_dir)
    assert next(straight.generator.parameters()).is_cuda
    a = load_file(straight.run_dir / "generator.safetensors")
    b = load_file(resumed.run_dir / "generator.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_and_fp32_steps_agree_to_rounding(tiny_config: Config) -> None:
    """The first step's losses in bf16 autocast are fp32's to bf16 rounding."""
    losses = {}
    for precision in ("fp32", "bf16"):
        cfg = with_settings(tiny_config, device="cuda", precision=precision, steps=1, log_every=1)
        run = train(cfg).run_dir
        losses[precision] = json.loads((run / "stats.jsonl").read_text().splitlines()[0])
    assert losses["bf16"]["loss_d"] == pytest.approx(losses["fp32"]["loss_d"], rel=0.05)


def test_the_gpu_generates_the_cpus_images(tiny_config: Config) -> None:
    """Image i from seed i on either device: equal to a few 8-bit levels (kernels differ)."""
    run = train(with_settings(tiny_config, device="cpu")).run_dir
    generator, meta = load_export(run / "generator.safetensors")
    z = z_for_indices(0, range(16), meta["model"]["nz"])
    on_cpu = render(generator, z)
    on_gpu = render(generator.to("cuda"), z.to("cuda")).cpu()
    assert (on_cpu.float() - on_gpu.float()).abs().max() <= 3


def test_inception_features_on_the_gpu_match_the_cpu() -> None:
    """FID's features on the GPU within float rounding of the CPU's (fp32 both)."""
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (8, 3, 64, 64), np.uint8))
    cpu = InceptionFeatures(torch.device("cpu"))(images)
    gpu = InceptionFeatures(torch.device("cuda"))(images)
    assert np.allclose(cpu, gpu, rtol=1e-3, atol=1e-3)
