"""`dcgan.latent`: the z-space maths (pure functions), the experiments on a G, the API."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dcgan import DCGAN
from dcgan.config import ModelConfig
from dcgan.errors import ConfigError
from dcgan.latent import (
    Latents,
    arithmetic,
    arithmetic_sheet,
    check_dims,
    interpolate,
    interpolation_sheet,
    resolve_method,
    sweep,
    sweep_sheet,
    there_and_back,
    walk,
)
from dcgan.nn.models import Generator
from dcgan.sampling import render
from dcgan.seeding import z_for_indices
from dcgan.zspace import (
    angle,
    dimension_sweep,
    group_mean,
    lerp,
    segment_frames,
    slerp,
    vector_arithmetic,
    walk_path,
)

# --- slerp and lerp -------------------------------------------------------------------------------


def _pair(nz: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = z_for_indices(seed, [0, 1], nz)
    return a, b * (a.norm() / b.norm())  # equal norms


def test_slerp_keeps_the_norm_of_equal_norm_endpoints_and_lerp_does_not() -> None:
    a, b = _pair()
    t = torch.linspace(0, 1, 11)
    path = slerp(a, b, t)
    assert path.shape == (11, 64) and path.dtype == torch.float32
    torch.testing.assert_close(path.norm(dim=-1), a.norm().expand(11), rtol=1e-5, atol=0)
    mid = lerp(a, b, 0.5)
    assert mid.shape == a.shape
    # two random directions in 64-d are about 90 degrees apart: lerp's midpoint ~ 0.71 |a|
    assert mid.norm() < 0.85 * a.norm()


def test_slerp_moves_at_constant_angular_speed() -> None:
    a, b = _pair()
    path = slerp(a, b, torch.linspace(0, 1, 9))
    steps = angle(path[:-1], path[1:])
    torch.testing.assert_close(steps, angle(a, b).expand(8) / 8, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("interp", [slerp, lerp])
def test_endpoints_are_exact(interp) -> None:
    a, b = z_for_indices(3, [5, 9], 100)
    path = interp(a, b, torch.arange(7) / 6)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    assert torch.equal(interp(a, b, 0.0), a) and torch.equal(interp(a, b, 1.0), b)


def test_slerp_batches_over_pairs_and_t() -> None:
    z = z_for_indices(0, range(6), 16).view(3, 2, 16)
    path = slerp(z[:, 0], z[:, 1], [0.0, 0.25, 1.0])
    assert path.shape == (3, 3, 16)
    for p in range(3):
        torch.testing.assert_close(path[1, p], slerp(z[p, 0], z[p, 1], 0.25))


def test_slerp_falls_back_to_lerp_when_parallel_or_zero() -> None:
    a = torch.ones(8)
    for b in (2 * a, a.clone(), -a, torch.zeros(8)):
        path = slerp(a, b, torch.linspace(0, 1, 5))
        assert torch.isfinite(path).all()
        torch.testing.assert_close(path, lerp(a, b, torch.linspace(0, 1, 5)))
    nearly = a + 1e-9 * torch.arange(8.0)
    assert torch.isfinite(slerp(a, nearly, torch.linspace(0, 1, 5))).all()


def test_lerp_is_linear() -> None:
    a, b = torch.zeros(4), torch.full((4,), 2.0)
    assert torch.equal(lerp(a, b, [0.0, 0.5, 1.0])[:, 0], torch.tensor([0.0, 1.0, 2.0]))


def test_resolve_method() -> None:
    assert resolve_method(None, "normal") == "slerp"
    assert resolve_method(None, "uniform") == "lerp"
    assert resolve_method("lerp", "normal") == "lerp"
    with pytest.raises(ConfigError, match="'cubic' is not one of slerp, lerp"):
        resolve_method("cubic", "normal")


# --- group means, arithmetic, walk path, sweep ----------------------------------------------------


def test_group_mean_and_arithmetic() -> None:
    z = z_for_indices(0, range(3), 10)
    torch.testing.assert_close(group_mean(z), z.mean(0))
    m_a, m_b = group_mean(z[:2]), group_mean(z[1:])
    assert torch.equal(vector_arithmetic(m_a, m_b, m_b), m_a)  # B = C gives A bitwise
    torch.testing.assert_close(vector_arithmetic(m_a, m_b, z[0]), m_a - m_b + z[0])
    with pytest.raises(ValueError, match="non-empty"):
        group_mean(torch.empty(0, 10))


def test_segment_frames() -> None:
    assert segment_frames([1.0, 1.0, 1.0], 9) == [3, 3, 3]
    assert segment_frames([1.0, 2.0, 1.0], 8) == [2, 4, 2]
    assert segment_frames([0.0, 0.0], 5) in ([3, 2], [2, 3])  # identical keys: equal shares
    counts = segment_frames([0.01, 5.0, 5.0], 4)
    assert sum(counts) == 4 and min(counts) == 1
    with pytest.raises(ValueError, match="at least one frame per segment"):
        segment_frames([1.0, 1.0, 1.0], 2)


@pytest.mark.parametrize(("frames", "keys"), [(120, 6), (13, 4), (2, 2)])
def test_walk_path_loops_through_its_keys_without_a_jump(frames: int, keys: int) -> None:
    key_z = z_for_indices(7, range(keys), 100)
    path = walk_path(key_z, frames)
    assert path.shape == (frames, 100)
    assert torch.equal(path[0], key_z[0])
    hits = [any(torch.equal(row, k) for row in path) for k in key_z]
    assert all(hits), "every key is a frame"
    steps = (path.roll(-1, dims=0) - path).norm(dim=-1)  # the last entry: last frame -> first
    assert steps.max() < 1.5 * steps.min(), steps
    last_to_first, others = steps[-1], steps[:-1]
    assert 0.7 * others.median() < last_to_first < 1.4 * others.median()


def test_walk_path_lerp_and_bad_keys() -> None:
    key_z = z_for_indices(0, range(3), 8)
    path = walk_path(key_z, 9, method="lerp")
    torch.testing.assert_close(path[1], key_z[0] + (key_z[1] - key_z[0]) / 3)
    with pytest.raises(ValueError, match="at least 2 keys"):
        walk_path(key_z[:1], 4)


def test_dimension_sweep() -> None:
    z = torch.arange(5.0)
    out = dimension_sweep(z, [1, 3], torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64))
    assert out.shape == (2, 3, 5) and out.dtype == torch.float32
    assert out[0, :, 1].tolist() == [-1.0, 0.0, 1.0] and out[1, :, 3].tolist() == [-1.0, 0.0, 1.0]
    assert torch.equal(out[0, :, [0, 2, 3, 4]], z[[0, 2, 3, 4]].expand(3, 4))
    assert check_dims([0, 4], 5) == [0, 4]
    for bad in ([], [5], [-1]):
        with pytest.raises(ConfigError, match="dims"):
            check_dims(bad, 5)


# --- experiments on a generator -------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(0)
    return Generator(ModelConfig(image_size=16, channels=3, nz=12, ngf=8)).eval()


def test_interpolate_shape_endpoints_and_layouts(generator: Generator) -> None:
    images = interpolate(Latents(generator, seed=2, batch_size=4), [(3, 17), (5, 5)], steps=6)
    assert images.shape == (2, 6, 3, 16, 16) and images.dtype == torch.uint8
    ends = render(generator, z_for_indices(2, [3, 17], 12))
    assert torch.equal(images[0, 0], ends[0]) and torch.equal(images[0, -1], ends[1])
    assert all(torch.equal(images[1, k], images[1, 0]) for k in range(6))  # 5 -> 5 stands still
    sheet = interpolation_sheet(images, [(3, 17), (5, 5)])
    assert sheet.shape[:2] == (3, 2 * 18 + 2) and sheet.shape[2] > 6 * 18 + 2
    frames = there_and_back(images)
    assert len(frames) == 10 and frames[0].shape == (3, 18 + 2, 2 * 18 + 2)
    assert torch.equal(frames[1], frames[-1])  # step 1 on the way there and on the way back
    assert there_and_back(images[:1])[0].shape == (3, 16, 16)  # one pair: the bare image


def test_arithmetic_with_b_equal_c_gives_the_mean_of_a(generator: Generator) -> None:
    record = arithmetic(generator, [3, 17, 22], [5, 9, 40], [40, 5, 9], variations=4)
    assert [tuple(x.shape) for x in record.exemplars] == [(3, 3, 16, 16)] * 3
    assert record.means.shape == (3, 3, 16, 16) and record.variations.shape == (4, 3, 16, 16)
    mean_a = render(generator, group_mean(z_for_indices(0, [3, 17, 22], 12))[None])[0]
    assert torch.equal(record.result, mean_a) and torch.equal(record.means[0], mean_a)
    assert not torch.equal(record.variations[0], record.result)
    again = arithmetic(generator, [3, 17, 22], [5, 9, 40], [40, 5, 9], variations=4)
    assert torch.equal(again.variations, record.variations)  # seeded
    none = arithmetic(generator, [1], [2], [3], variations=0)
    assert none.variations.shape == (0, 3, 16, 16)
    sheet = arithmetic_sheet(record, [[3, 17, 22], [5, 9, 40], [40, 5, 9]])
    assert sheet.shape[0] == 3 and sheet.shape[1] > 4 * 18


def test_walk_and_sweep(generator: Generator) -> None:
    frames = walk(Latents(generator, seed=1), frames=12, keys=3)
    assert frames.shape == (12, 3, 16, 16)
    assert torch.equal(frames[0], render(generator, z_for_indices(1, [0], 12))[0])
    images = sweep(generator, 4, [0, 11], span=(0.0, 0.0), steps=5)
    assert images.shape == (2, 5, 3, 16, 16)
    assert all(torch.equal(images[r, k], images[r, 0]) for r in range(2) for k in range(5))
    varied = sweep(generator, 4, [0], span=(-3.0, 3.0), steps=3)
    assert not torch.equal(varied[0, 0], varied[0, 2])
    assert sweep_sheet(images, [0, 11]).shape[1] == 2 * 18 + 2


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda g: interpolate(g, [(3, -1)]), "index: -1 is not an image index"),
        (lambda g: interpolate(g, [(3, 1)], steps=1), "steps: 1 must be an integer of at least 2"),
        (lambda g: interpolate(g, []), "at least one pair"),
        (lambda g: interpolate(g, [(0, 1)], method="cubic"), "'cubic' is not one of"),
        (lambda g: arithmetic(g, [], [1], [2]), "a: the group is empty"),
        (lambda g: arithmetic(g, [1], [2], [3], noise=-1.0), "noise: -1.0 must be >= 0"),
        (lambda g: walk(g, frames=2, keys=3), "frames: 2 is fewer than the 3 keys"),
        (lambda g: sweep(g, 0, [12]), "dims: 12 is not a z dimension; this G has 0..11"),
        (lambda g: sweep(g, 1.5, [0]), "index: 1.5 is not an image index"),
        (lambda g: sweep(g, 0, [0], span=(math.inf, 3.0)), "low: inf must be a finite number"),
    ],
)
def test_experiments_check_their_arguments(generator: Generator, call, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        call(generator)


# --- the Python API -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gan(tmp_path_factory: pytest.TempPathFactory) -> DCGAN:
    out = tmp_path_factory.mktemp("api")
    model = {"image_size": 16, "ngf": 8, "ndf": 8, "nz": 16}
    gan = DCGAN(
        {"model": model, "data": {"dataset": "fake"}},
        batch_size=8,
        device="cpu",
        out=str(out / "runs"),
        log_every=1,
        sample_every=10,
    )
    gan.train(steps=2)
    return gan


@pytest.mark.slow
def test_api_interpolate_ends_are_generate_image(gan: DCGAN) -> None:
    images = gan.interpolate(3, 17, steps=5, seed=2)
    assert images.shape == (5, 1, 16, 16) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert torch.equal(images[0], gan.generate_image(2, 3))
    assert torch.equal(images[-1], gan.generate_image(2, 17))
    assert torch.equal(gan.interpolate(3, 17, 5, "lerp", 2)[-1], images[-1])


def test_api_arithmetic_walk_sweep(gan: DCGAN, tmp_path: Path) -> None:
    record = gan.arithmetic([1, 2], [3, 4], [4, 3], variations=2, noise=0.5)
    assert torch.equal(record.result, record.means[0])
    assert record.variations.shape == (2, 1, 16, 16) and record.result.max() <= 1
    assert gan.walk(8, keys=4).shape == (8, 1, 16, 16)
    swept = gan.sweep(0, [0, 1, 2], low=-2, high=2, steps=4)
    assert swept.shape == (3, 4, 1, 16, 16)
    assert torch.equal(swept[0, 0], gan.sweep(0, [0], -2, 2, 4)[0, 0])
