"""The DCGAN generator and discriminator (Radford et al. 2015), sized from a ModelConfig.

Both are plain modules: no losses, optimisers or devices inside. D returns logits.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn

from dcgan.config import ModelConfig
from dcgan.nn.kernels import Conv2d, ConvTranspose2d


def _widths(base: int, cfg: ModelConfig) -> list[int]:
    """Feature widths from the 4x4 layer outwards: base * 2^k, capped at base * max_mult.

    For 64 px and base 64 this gives [512, 256, 128, 64], the paper's widths.
    """
    n = int(math.log2(cfg.image_size)) - 2  # stride-2 layers between 4x4 and image_size
    return [base * min(2 ** (n - 1 - i), cfg.max_mult) for i in range(n)]


class Generator(nn.Module):
    """z (B, nz) or (B, nz, 1, 1) -> images (B, channels, image_size, image_size) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        widths = _widths(cfg.ngf, cfg)
        layers: list[nn.Module] = [
            ConvTranspose2d(cfg.nz, widths[0], 4, 1, 0, bias=False),  # 1x1 -> 4x4
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for w_in, w_out in pairwise(widths):
            layers += [
                ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(w_out),
                nn.ReLU(True),
            ]
        layers += [ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], self.cfg.nz, 1, 1))


class Discriminator(nn.Module):
    """images (B, channels, S, S) -> logits (B,); `features` exposes each block's output."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        widths = _widths(cfg.ndf, cfg)[::-1]  # ndf at full resolution, widest at 4x4
        blocks = [self._block(cfg.channels, widths[0], batch_norm=False)]
        blocks += [self._block(a, b, batch_norm=True) for a, b in pairwise(widths)]
        self.blocks = nn.ModuleList(blocks)
        self.head = Conv2d(widths[-1], 1, 4, 1, 0, bias=False)  # 4x4 -> 1x1 logit
        init_weights(self)

    def _block(self, w_in: int, w_out: int, batch_norm: bool) -> nn.Sequential:
        # The paper puts no BatchNorm on D's input layer; bias is redundant before BatchNorm.
        layers: list[nn.Module] = [Conv2d(w_in, w_out, 4, 2, 1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(w_out))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        if self.cfg.d_dropout > 0:
            layers.append(nn.Dropout(self.cfg.d_dropout))
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, C, S, S) -> (logits (B,), [block outputs (B, C_k, S/2^k, S/2^k)])."""
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.head(x).flatten(), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


def init_weights(module: nn.Module) -> None:
    """The paper's init: convs N(0, 0.02); BatchNorm scale N(1, 0.02), shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def layer_table(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str, tuple, int]]:
    """Run `example` through `model`; one row per leaf layer: (name, type, output shape, params)."""
    rows: list[tuple[str, str, tuple, int]] = []

    def hook(name: str):
        def record(mod: nn.Module, _inp, out) -> None:
            params = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append((name, type(mod).__name__, tuple(out.shape), params))

        return record

    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows


def summary(generator: Generator, discriminator: Discriminator) -> str:
    """A printable table of each layer's output shape and parameter count for both networks."""
    cfg = generator.cfg
    device = next(generator.parameters()).device
    z = torch.zeros(1, cfg.nz, device=device)
    x = torch.zeros(1, cfg.channels, cfg.image_size, cfg.image_size, device=device)
    parts = []
    for title, model, example in (("Generator", generator, z), ("Discriminator", discriminator, x)):
        parts.append(_format_table(title, layer_table(model, example), example.shape))
    return "\n\n".join(parts)


def _format_table(title: str, rows: list, input_shape: torch.Size) -> str:
    lines = [title, f"{'layer':<14}{'type':<18}{'output shape':<22}{'params':>12}"]
    lines.append(f"{'input':<14}{'':<18}{tuple(input_shape)!s:<22}{'':>12}")
    for name, kind, shape, params in rows:
        lines.append(f"{name:<14}{kind:<18}{shape!s:<22}{params:>12,}")
    lines.append(f"{'total':<54}{sum(r[3] for r in rows):>12,}")
    return "\n".join(lines)
