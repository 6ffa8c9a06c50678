"""DCGAN's convolutions under bf16 on the CPU, routed around oneDNN's slow shapes.

Under bf16 autocast on a CPU, oneDNN runs most of DCGAN's layers near the machine's matrix
multiply rate, but a few shapes run far below it:

- the weight gradient of a 4x4 stride-2 layer whose low-resolution side is 4x4 or 8x8 (G's
  second and third layers, D's last two strided layers): as one matrix multiply of the input's
  4x4 windows it runs at the matrix-multiply rate. At 16x16 (64x64 images) oneDNN does well and
  the windows would be large, so that side is left to oneDNN;
- a transposed convolution onto one channel (G's output layer on grey images, and the input
  gradient of D's first layer): a matrix multiply and `fold` are faster;
- G's first layer (1x1 -> 4x4) and D's head (4x4 -> 1x1) are dense layers written as
  convolutions, and faster as matrix multiplies.

docs/speed.md has the measured rates and times; `python benchmarks/conv_kernels.py`
times each layer forward and backward with torch's kernels and with these routes.

`Conv2d` and `ConvTranspose2d` below are torch's layers (same parameters and state dict) that
take those routes when they apply: on the CPU, under bf16 autocast, outside torch.compile.
Everywhere else, fp32 included, they run torch's own code. The routes compute the same sums in
a different order, and their results agree with oneDNN's to bf16 rounding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

CL = torch.channels_last
K, S, P = 4, 2, 1  # DCGAN's strided layers: 4x4 kernels, stride 2, padding 1
MATMUL_SIDE = 8  # a low-resolution side up to this: the weight gradient is one matmul

_enabled = True


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Within this block the layers run torch's own kernels (for comparisons)."""
    global _enabled
    was, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = was


def _applies(x: torch.Tensor) -> bool:
    """Whether the bf16 CPU routes apply to a layer called on `x`."""
    return (
        _enabled
        and x.device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
        and not torch.compiler.is_compiling()
    )


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) channels-last -> the same memory viewed as (B, H, W, C)."""
    return t.permute(0, 2, 3, 1)


_scratch: dict[tuple, torch.Tensor] = {}  # one backward at a time per process, as autograd runs
SCRATCH_TENSORS = 8


def _scratch_tensor(name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A tensor kept from call to call (contents undefined at first use). The windows below
    are rebuilt on every step, and a fresh allocation of their megabytes costs more in page
    faults than the copy itself."""
    key = (name, shape, like.dtype, like.device)
    if key not in _scratch:
        if len(_scratch) >= SCRATCH_TENSORS:
            del _scratch[next(iter(_scratch))]  # the oldest: shapes change only with the run
        _scratch[key] = like.new_zeros(shape)
    return _scratch[key]


def windows(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B * H/2 * W/2, K * K * C): each 4x4 stride-2 window of the 1-padded
    image as a row, in (kh, kw, c) order. The result is scratch memory, valid until the next
    call with the same shape."""
    b, c, h, w = t.shape
    padded = _scratch_tensor("padded", (b, h + 2 * P, w + 2 * P, c), t)  # border stays 0
    padded[:, P : P + h, P : P + w].copy_(_nhwc(t))
    sb, sh, sw, sc = padded.stride()
    shape = (b, h // S, w // S, K, K, c)
    view = padded.as_strided(shape, (sb, sh * S, sw * S, sh, sw, sc))
    return _scratch_tensor("windows", shape, t).copy_(view).view(-1, K * K * c)


def strided_weight_grad(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The weight gradient of a 4x4 stride-2 layer as one matrix multiply.

    low (B, Cl, h, w) and high (B, Ch, 2h, 2w) are the layer's two sides: for a convolution
    the output gradient and the input, for a transposed convolution the input and the output
    gradient. Returns (Cl, Ch, K, K), the weight's shape in both cases.
    """
    grad = _nhwc(low).reshape(-1, low.shape[1]).t() @ windows(high)  # (Cl, K*K*Ch)
    return grad.view(low.shape[1], K, K, high.shape[1]).permute(0, 3, 1, 2)


def spread(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A 4x4 stride-2 transposed convolution onto few channels, as a matrix multiply and fold.

    x (B, Cin, H, W), weight (Cin, Cout, K, K) -> (B, Cout, 2H, 2W) channels-last. The fold
    adds overlapping windows in fp32 so that the sum is rounded once.
    """
    b, c_in, h, w = x.shape
    cols = _nhwc(x).reshape(b, h * w, c_in) @ weight.reshape(c_in, -1)  # (B, H*W, Cout*K*K)
    out = F.fold(cols.transpose(1, 2).float(), (S * h, S * w), K, padding=P, stride=S)
    return out.to(x.dtype).contiguous(memory_format=CL)


def _conv(x, weight, bias, transposed: bool, mask: list[bool], grad=None):
    """torch's own 4x4 stride-2 kernels: forward (grad None) or the gradients in `mask`."""
    args = ([S, S], [P, P], [1, 1], transposed, [0, 0], 1)
    if grad is None:
        return torch.ops.aten.convolution(x, weight, bias, *args)
    sizes = None if bias is None else [bias.shape[0]]
    return torch.ops.aten.convolution_backward(grad, x, weight, sizes, *args, mask)


class _Strided(torch.autograd.Function):
    """A 4x4 stride-2 convolution or transposed convolution in bf16 with the routes above."""

    @staticmethod
    def forward(ctx, x, weight, bias, transposed: bool):
        ctx.save_for_backward(x, weight)
        ctx.transposed, ctx.has_bias = transposed, bias is not None
        if transposed and weight.shape[1] == 1:
            y = spread(x, weight)
            return y if bias is None else y + bias.view(1, -1, 1, 1)
        return _conv(x, weight, bias, transposed, []).contiguous(memory_format=CL)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        transposed, grad = ctx.transposed, grad.contiguous(memory_format=CL)
        low, high = (x, grad) if transposed else (grad, x)
        # A convolution's input gradient is a transposed convolution: onto one channel, spread.
        spread_x = ctx.needs_input_grad[0] and not transposed and weight.shape[1] == 1
        matmul_w = ctx.needs_input_grad[1] and low.shape[-1] <= MATMUL_SIDE
        # Whatever is left goes to oneDNN, in one call.
        mask = [ctx.needs_input_grad[0] and not spread_x, ctx.needs_input_grad[1] and not matmul_w]
        grad_x = grad_w = None
        if any(mask):
            grad_x, grad_w = _conv(x, weight, None, transposed, [*mask, False], grad)[:2]
        if spread_x:
            grad_x = spread(grad, weight)
        if matmul_w:
            grad_w = strided_weight_grad(low, high)
        grad_b = None
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))  # accumulated in fp32 by torch, rounded once
        return grad_x, grad_w, grad_b, None


def _strided(layer: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor, transposed: bool):
    bf16 = torch.bfloat16
    bias = None if layer.bias is None else layer.bias.to(bf16)
    x = x.to(bf16).contiguous(memory_format=CL)
    with torch.autocast("cpu", enabled=False):
        return _Strided.apply(x, layer.weight.to(bf16), bias, transposed)


def _strided_route_helps(layer: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor) -> bool:
    """Whether `layer` is a 4x4 stride-2 one that a route helps on input `x`: its
    low-resolution side is at most MATMUL_SIDE, or its high-resolution side has one channel."""
    shape = (layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.groups)
    if shape != ((K, K), (S, S), (P, P), (1, 1), 1):
        return False
    transposed = isinstance(layer, nn.ConvTranspose2d)
    low = x.shape[-1] if transposed else x.shape[-1] // S
    high_channels = layer.out_channels if transposed else layer.in_channels
    return low <= MATMUL_SIDE or high_channels == 1


def _is_dense(layer: nn.Conv2d | nn.ConvTranspose2d) -> bool:
    """Stride 1, no padding: on a 1x1 input (transposed) or a kernel-sized one (convolution),
    the layer is a fully connected one."""
    shape = (layer.stride, layer.padding, layer.dilation, layer.groups)
    return shape == ((1, 1), (0, 0), (1, 1), 1)


class Conv2d(nn.Conv2d):
    """torch's Conv2d; under bf16 on the CPU, DCGAN's slow shapes take faster routes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _applies(x) and self.padding_mode == "zeros":
            if _strided_route_helps(self, x):
                return _strided(self, x, transposed=False)
            if _is_dense(self) and x.shape[-2:] == self.weight.shape[-2:]:
                # D's head: (B, C, K, K) . (Cout, C, K, K) -> (B, Cout, 1, 1)
                weight = _nhwc(self.weight).reshape(len(self.weight), -1)  # (Cout, K*K*C)
                y = _nhwc(x).reshape(len(x), -1) @ weight.t()
                y = y if self.bias is None else y + self.bias
                return y.view(len(x), -1, 1, 1)
        return super().forward(x)


class ConvTranspose2d(nn.ConvTranspose2d):
    """torch's ConvTranspose2d; under bf16 on the CPU, DCGAN's slow shapes take faster routes."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if _applies(x) and output_size is None and self.output_padding == (0, 0):
            if _strided_route_helps(self, x):
                return _strided(self, x, transposed=True)
            if _is_dense(self) and x.shape[-2:] == (1, 1):
                # G's first layer: (B, Cin) . (Cin, Cout, K, K) -> (B, Cout, K, K)
                kh, kw = self.kernel_size
                y = x.reshape(len(x), -1) @ _nhwc(self.weight).reshape(len(self.weight), -1)
                y = y.view(len(x), kh, kw, -1).permute(0, 3, 1, 2)
                return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
        return super().forward(x, output_size)
