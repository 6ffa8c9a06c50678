"""The bf16 CPU routes in dcgan.nn.kernels compute what torch's own kernels compute: outputs and
every gradient, for each route and the shapes around its edges; they are taken only where
they should be."""

import contextlib
import copy

import pytest
import torch
from torch import nn

from dcgan.config import ModelConfig
from dcgan.nn import kernels
from dcgan.nn.models import Discriminator, Generator

CL = torch.channels_last

# (transposed, in channels, out channels, input size, bias): every route and its neighbours
STRIDED = [
    (True, 32, 16, 4, False),  # G's second layer: weight gradient as a matrix multiply
    (True, 16, 8, 8, False),  # low side 8x8: matrix multiply too
    (True, 8, 4, 16, False),  # low side 16x16: torch's weight gradient
    (True, 8, 1, 8, False),  # onto one channel: spread forward
    (True, 8, 1, 4, True),  # ...with a bias, from a 4x4 side
    (True, 8, 3, 8, False),  # onto three channels: torch's
    (False, 1, 8, 16, True),  # D's first layer, grey: spread input gradient, bias
    (False, 3, 8, 16, True),  # D's first layer, colour
    (False, 16, 32, 8, False),  # D's last strided layer: low side 4x4
    (False, 8, 16, 16, False),  # low side 8x8
    (False, 4, 8, 32, False),  # low side 16x16: torch's
    (False, 16, 16, 6, True),  # odd low side (3x3), with bias
]


def _layer(transposed: bool, c_in: int, c_out: int, bias: bool, **shape) -> nn.Module:
    kind = kernels.ConvTranspose2d if transposed else kernels.Conv2d
    torch.manual_seed(0)
    return kind(c_in, c_out, bias=bias, **shape).to(memory_format=CL)


def _run(layer: nn.Module, x: torch.Tensor, ours: bool) -> list[torch.Tensor]:
    """Output and the gradients of x and of each parameter, under bf16 autocast, in fp32."""
    layer, x = copy.deepcopy(layer), x.detach().clone().requires_grad_()
    with kernels.disabled() if not ours else contextlib.nullcontext():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
        weights = torch.linspace(-1, 1, y.numel()).view(y.shape)
        (y.float() * weights).sum().backward()
    return [y.float(), x.grad, *(p.grad for p in layer.parameters())]


def _assert_same(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        # Both are bf16 sums in different orders: they agree to a few bf16 roundings.
        assert (a - b).norm() <= 1e-2 * b.norm() + 1e-6


@pytest.mark.parametrize(("transposed", "c_in", "c_out", "size", "bias"), STRIDED)
def test_strided_routes_match_torch(transposed, c_in, c_out, size, bias) -> None:
    layer = _layer(transposed, c_in, c_out, bias, kernel_size=4, stride=2, padding=1)
    x = torch.randn(6, c_in, size, size).contiguous(memory_format=CL)
    ours = _run(layer, x, ours=True)
    _assert_same(ours, _run(layer, x, ours=False))
    assert ours[0].is_contiguous(memory_format=CL)


@pytest.mark.parametrize("c_out", [1, 5])
def test_dense_routes_match_torch(c_out: int) -> None:
    g0 = _layer(True, 12, c_out * 4, False, kernel_size=4, stride=1, padding=0)
    z = torch.randn(6, 12, 1, 1)
    _assert_same(_run(g0, z, ours=True), _run(g0, z, ours=False))
    head = _layer(False, 12, c_out, True, kernel_size=4, stride=1, padding=0)
    x = torch.randn(6, 12, 4, 4).contiguous(memory_format=CL)
    _assert_same(_run(head, x, ours=True), _run(head, x, ours=False))


def _grad_fns(model: nn.Module, x: torch.Tensor, **autocast) -> set[str]:
    with torch.autocast("cpu", **autocast):
        y = model(x)
    seen, todo = set(), [y.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and fn not in seen:
            seen.add(fn)
            todo += [f for f, _ in fn.next_functions]
    return {type(fn).__name__ for fn in seen}


def test_routes_apply_only_under_bf16_autocast_on_the_cpu() -> None:
    g = Generator(ModelConfig(image_size=16, channels=1, ngf=8, nz=8)).to(memory_format=CL)
    z = torch.randn(4, 8)
    bf16 = _grad_fns(g, z, dtype=torch.bfloat16)
    assert {"_StridedBackward", "MmBackward0"} <= bf16
    assert "ConvolutionBackward0" not in bf16
    for off in ({"enabled": False}, {"dtype": torch.float16}):
        assert "_StridedBackward" not in _grad_fns(g, z, **off)
    with kernels.disabled():
        assert "_StridedBackward" not in _grad_fns(g, z, dtype=torch.bfloat16)


def test_fp32_is_torchs_own_to_the_bit() -> None:
    layer = _layer(True, 16, 8, False, kernel_size=4, stride=2, padding=1)
    plain = nn.ConvTranspose2d(16, 8, 4, 2, 1, bias=False)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(3, 16, 4, 4)
    assert torch.equal(layer(x), plain(x))


@pytest.mark.parametrize(("size", "channels"), [(16, 1), (32, 3)])
@pytest.mark.slow
def test_whole_networks_match_torch_in_bf16(size: int, channels: int) -> None:
    cfg = ModelConfig(image_size=size, channels=channels, ngf=8, ndf=8, nz=8)
    torch.manual_seed(0)
    g, d = Generator(cfg), Discriminator(cfg)
    pair = nn.Sequential(g, d).to(memory_format=CL)
    z = torch.randn(16, 8)
    ours, theirs = _run(pair, z, ours=True), _run(pair, z, ours=False)
    # BatchNorm over 16 images amplifies bf16 rounding in the gradients; the logits stay close
    assert (ours[0] - theirs[0]).norm() <= 2e-2 * theirs[0].norm()
    for a, b in zip(ours[2:], theirs[2:], strict=True):
        assert (a - b).norm() <= 0.1 * b.norm() + 1e-6


def test_each_route_is_taken_on_its_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for name in ("strided_weight_grad", "spread"):
        route = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _r=route, _n=name: calls.append(_n) or _r(*a))
    cfg = ModelConfig(image_size=32, channels=1, ngf=8, ndf=8, nz=8)
    pair = nn.Sequential(Generator(cfg), Discriminator(cfg)).to(memory_format=CL)
    _run(pair, torch.randn(4, 8), ours=True)
    # G: 4x4 -> 8x8 and 8x8 -> 16x16 weight gradients, spread onto 1 channel (its 16x16 weight
    # gradient is torch's). D: spread input gradient of its first layer (weight gradient:
    # torch's), 16x16 -> 8x8 and 8x8 -> 4x4 weight gradients.
    assert sorted(calls) == ["spread"] * 2 + ["strided_weight_grad"] * 4


def test_scratch_memory_is_bounded_and_windows_stay_right() -> None:
    sizes = [*range(2, 2 + 2 * kernels.SCRATCH_TENSORS, 2), 8, 8]  # evictions, then reuse
    for size in sizes:
        x = torch.randn(2, 3, size, size).contiguous(memory_format=CL)
        rows = kernels.windows(x)
        expected = nn.functional.unfold(x, 4, padding=1, stride=2)  # (B, C*K*K, L), (c, kh, kw)
        expected = expected.view(2, 3, 4, 4, -1).permute(0, 4, 2, 3, 1).reshape(rows.shape)
        assert torch.equal(rows, expected)
    assert len(kernels._scratch) <= kernels.SCRATCH_TENSORS
