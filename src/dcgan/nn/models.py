"""The DCGAN generator and discriminator (Radford et al. 2015), sized from a ModelConfig.

Both are plain modules: no losses, optimisers or devices inside. D returns logits.

A conditional ModelConfig (`conditional`, `num_classes`) makes both take int64 class labels (B,):
- G, cond_g "cbn": every BatchNorm2d becomes a ConditionalBatchNorm2d (per-class scale and shift);
  "concat": a learned label embedding of concat_dim(nz) = min(nz, 50) values is appended to z.
- D, cond_d "projection" (Miyato & Koyama 2018): logit += <embed(y), sum over 4x4 of h>;
  "concat": one-hot label maps (B, num_classes, S, S) are extra input channels.
An unconditional config builds exactly the modules, state dict and init it always did.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn
from torch.nn.utils import spectral_norm

from dcgan.config import ModelConfig
from dcgan.device import memory_room
from dcgan.errors import ConfigError
from dcgan.nn.kernels import Conv2d, ConvTranspose2d


def _widths(base: int, cfg: ModelConfig) -> list[int]:
    """Feature widths from the 4x4 layer outwards: base * 2^k, capped at base * max_mult.

    For 64 px and base 64 this gives [512, 256, 128, 64], the paper's widths.
    """
    n = int(math.log2(cfg.image_size)) - 2  # stride-2 layers between 4x4 and image_size
    return [base * min(2 ** (n - 1 - i), cfg.max_mult) for i in range(n)]


def concat_dim(nz: int) -> int:
    """Length of G's label embedding under cond_g "concat": min(nz, 50). 50 values separate
    even 100 classes comfortably, and capping at nz keeps the label from outweighing z."""
    return min(nz, 50)


class ClassEmbedding(nn.Embedding):
    """A (num_classes, dim) table of per-class vectors; `init_weights` draws it from
    N(mean, std), so each use states its own init (std 0 gives the constant `mean`)."""

    def __init__(self, num_classes: int, dim: int, mean: float = 0.0, std: float = 0.02):
        super().__init__(num_classes, dim)
        self.init_mean, self.init_std = mean, std

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        """labels int64 (B,) -> rows (B, dim); or class weights float (B, num_classes) -> their
        weighted sums of rows (a blend of classes, for interpolating between them)."""
        if labels.is_floating_point():
            return labels.to(self.weight.dtype) @ self.weight
        return super().forward(labels)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d whose scale and shift are looked up per class (de Vries et al. 2017).

    x (B, C, H, W), labels (B,) -> (B, C, H, W). Normalisation and running statistics are
    BatchNorm2d(affine=False)'s (`bn`), so eval mode, EMA copies and BatchNorm recalibration
    treat it as any BatchNorm; `scale` and `shift` are (num_classes, C) tables, initialised
    like the paper's BatchNorm weight, N(1, 0.02), and bias, 0.
    """

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.scale = ClassEmbedding(num_classes, channels, mean=1.0, std=0.02)
        self.shift = ClassEmbedding(num_classes, channels, mean=0.0, std=0.0)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self.bn(x)
        # In x's dtype: under bf16 autocast fp32 tables would promote the activation to fp32.
        scale = self.scale(labels).to(x.dtype)[:, :, None, None]
        shift = self.shift(labels).to(x.dtype)[:, :, None, None]
        return torch.addcmul(shift, x, scale)  # one pass; keeps x's channels-last layout


def check_labels(cfg: ModelConfig, labels: torch.Tensor | None, batch: int) -> None:
    """Raise a one-line ValueError unless `labels` suit a batch of `batch` for `cfg`'s model:
    None for an unconditional model, else int64 (batch,) in [0, num_classes)."""
    k = cfg.num_classes
    if not cfg.conditional:
        if labels is not None:
            raise ValueError("labels: given, but the model is not conditional (pass none)")
        return
    valid = f"0..{k - 1} (the model's {k} classes)"
    if labels is None:
        raise ValueError(f"labels: none given; the model is conditional, pass int64 in {valid}")
    if isinstance(labels, torch.Tensor) and labels.is_floating_point():
        if tuple(labels.shape) != (batch, k):  # class weights: a blend per sample
            raise ValueError(f"labels: class weights of shape {tuple(labels.shape)}, expected "
                             f"({batch}, {k})")  # fmt: skip
        return
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
        kind = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels: {kind} given, expected a torch.int64 tensor of {valid}")
    if tuple(labels.shape) != (batch,):
        raise ValueError(
            f"labels: shape {tuple(labels.shape)}, expected ({batch},), one per sample"
        )
    if batch:
        lo, hi = (int(v) for v in torch.aminmax(labels))  # one reduction, one sync
        if lo < 0 or hi >= k:
            raise ValueError(f"labels: {lo if lo < 0 else hi} is outside {valid}")


def _check_config(cfg: ModelConfig) -> None:
    """A conditional model needs its class count (the trainer sets it from the data)."""
    if not cfg.conditional:
        return
    if cfg.num_classes < 1:
        raise ConfigError(
            f"num_classes: {cfg.num_classes}, but a conditional model needs at least 1 class"
        )
    if cfg.cond_g not in ("cbn", "concat") or cfg.cond_d not in ("projection", "concat"):
        raise ConfigError(
            f"cond_g/cond_d: {cfg.cond_g}/{cfg.cond_d}, expected cbn|concat / projection|concat"
        )


class Generator(nn.Module):
    """z (B, nz) or (B, nz, 1, 1) [, labels (B,) int64] -> images (B, channels, S, S) in [-1, 1].

    Labels are required by a conditional model and refused by an unconditional one.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        _check_config(cfg)
        self.cfg = cfg
        self.cbn = cfg.conditional and cfg.cond_g == "cbn"
        concat = cfg.conditional and cfg.cond_g == "concat"
        # z's label embedding, N(0, 1) like z itself so that neither dominates the first layer
        self.embed = (
            ClassEmbedding(cfg.num_classes, concat_dim(cfg.nz), std=1.0) if concat else None
        )
        widths = _widths(cfg.ngf, cfg)
        nz_in = cfg.nz + (concat_dim(cfg.nz) if concat else 0)
        layers: list[nn.Module] = [
            ConvTranspose2d(nz_in, widths[0], 4, 1, 0, bias=False),  # 1x1 -> 4x4
            self._norm(widths[0]),
            nn.ReLU(True),
        ]
        for w_in, w_out in pairwise(widths):
            layers += [
                ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),
                self._norm(w_out),
                nn.ReLU(True),
            ]
        layers += [ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_weights(self)

    def _norm(self, width: int) -> nn.Module:
        return (
            ConditionalBatchNorm2d(width, self.cfg.num_classes)
            if self.cbn
            else nn.BatchNorm2d(width)
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(self.cfg, labels, z.shape[0])
        if labels is None:
            return self.main(z.reshape(z.shape[0], self.cfg.nz, 1, 1))
        z = z.reshape(z.shape[0], self.cfg.nz)
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels).to(z.dtype)], 1)  # (B, nz + concat_dim)
        x = z[:, :, None, None]
        # nn.Sequential passes one argument; the conditional norms also need the labels.
        for layer in self.main:
            x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x


class Discriminator(nn.Module):
    """images (B, channels, S, S) [, labels (B,) int64] -> logits (B,); `forward_features`
    also returns each block's output. Labels: required if conditional, else refused."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        _check_config(cfg)
        self.cfg = cfg
        self.concat = cfg.conditional and cfg.cond_d == "concat"
        widths = _widths(cfg.ndf, cfg)[::-1]  # ndf at full resolution, widest at 4x4
        c_in = cfg.channels + (cfg.num_classes if self.concat else 0)  # + one-hot label maps
        blocks = [self._block(c_in, widths[0], batch_norm=False)]
        blocks += [self._block(a, b, batch_norm=True) for a, b in pairwise(widths)]
        self.blocks = nn.ModuleList(blocks)
        # 4x4 -> 1x1 logit, from the features and, with mbstd_group, their spread over a group
        self.head = Conv2d(widths[-1] + (cfg.mbstd_group > 0), 1, 4, 1, 0, bias=False)
        # Projection: N(0, 0.02) as the head's weights, so both terms start at the same scale.
        projection = cfg.conditional and cfg.cond_d == "projection"
        self.embed = ClassEmbedding(cfg.num_classes, widths[-1]) if projection else None
        init_weights(self)
        if cfg.d_spectral_norm:  # after the init, which it keeps as the weights to normalise
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    spectral_norm(m)

    def _block(self, w_in: int, w_out: int, batch_norm: bool) -> nn.Sequential:
        # The paper puts no BatchNorm on D's input layer; bias is redundant before BatchNorm.
        # Spectral normalisation bounds each layer's gain, the job BatchNorm did, so it replaces it.
        batch_norm = batch_norm and not self.cfg.d_spectral_norm
        layers: list[nn.Module] = [Conv2d(w_in, w_out, 4, 2, 1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(w_out))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        if self.cfg.d_dropout > 0:
            layers.append(nn.Dropout(self.cfg.d_dropout))
        return nn.Sequential(*layers)

    def forward_features(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, C, S, S), labels (B,) -> (logits (B,), [block outputs (B, C_k, S/2^k, S/2^k)])."""
        check_labels(self.cfg, labels, x.shape[0])
        if self.concat:
            x = torch.cat([x, _one_hot_maps(labels, self.cfg.num_classes, x)], 1)
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        head_in = minibatch_std(x, self.cfg.mbstd_group) if self.cfg.mbstd_group else x
        logits = self.head(head_in).flatten()
        if self.embed is not None:
            # <embed(y), sum_ij h_ij>: the class's direction in D's last features, summed in fp32
            pooled = x.float().sum((2, 3))  # (B, C)
            logits = logits + (self.embed(labels) * pooled).sum(1)
        return logits, feats

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_features(x, labels)[0]


# Bytes per weight while training: fp32 weights, gradients and Adam's two moments, plus G's
# moving average.
TRAINING_BYTES = {"G": 4 * 5, "D": 4 * 4}


def check_size(cfg: ModelConfig) -> None:
    """Refuse networks whose training state would not fit in the memory this process may use
    (`device.memory_room`), counted on the meta device (which allocates nothing) before
    anything is built: --image-size 512 with --ngf 8192 asks for 251 billion weights. One line
    naming the settings and the limit."""
    if cfg.conditional and cfg.num_classes < 1:  # the data sets the count; sized later
        return
    counts = {}
    for name, network in (("G", Generator), ("D", Discriminator)):
        with torch.device("meta"):
            counts[name] = sum(p.numel() for p in network(cfg).parameters())
    needed, room = sum(TRAINING_BYTES[k] * n for k, n in counts.items()), memory_room()
    if needed > room:
        big = max(counts, key=counts.__getitem__)
        raise ConfigError(
            f"image_size {cfg.image_size}, ngf {cfg.ngf}, ndf {cfg.ndf}, max_mult "
            f"{cfg.max_mult}: {big} would have {counts[big] / 1e9:.1f} billion weights; "
            f"training needs {needed / 2**30:.1f} GiB for the weights alone, more than the "
            f"{room / 2**30:.1f} GiB this process may use; lower the widths or max_mult"
        )


def mbstd_group_size(batch: int, group: int) -> int:
    """How many images `minibatch_std` puts in each group of a batch of `batch`: gcd(batch,
    group), `group` itself whenever it divides the batch. Image i belongs to group
    i mod (batch / size)."""
    return math.gcd(batch, group)


def minibatch_std(x: torch.Tensor, group: int) -> torch.Tensor:
    """x (B, C, H, W) with one more channel (B, C + 1, H, W): for each group of images, the
    standard deviation of every feature over the group, averaged over features and positions
    (Karras et al. 2018). D then sees how alike a batch's images are, which a G that collapses
    to a few outputs cannot hide. Groups as `mbstd_group_size` says. Computed in fp32."""
    b, c, h, w = x.shape
    g = mbstd_group_size(b, group)
    # Features last, as channels-last memory already holds them; the mean of squares written
    # out, as torch.var over the first dim ran about 8x slower here on the CPU.
    y = x.permute(0, 2, 3, 1).float().reshape(g, b // g, h * w * c)
    std = ((y - y.mean(0)).square().mean(0) + 1e-8).sqrt().mean(1)  # (B / g,)
    std = std.repeat(g)[:, None, None, None].expand(b, 1, h, w)
    return torch.cat([x, std.to(x.dtype)], 1)


def _one_hot_maps(labels: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """labels (B,) -> (B, num_classes, S, S) constant one-hot planes in `like`'s dtype and size."""
    if labels.is_floating_point():  # class weights (B, K): already a (soft) one-hot
        one_hot = labels.to(like.dtype)
    else:
        one_hot = nn.functional.one_hot(labels, num_classes).to(like.dtype)
    return one_hot[:, :, None, None].expand(-1, -1, *like.shape[-2:])


def init_weights(module: nn.Module) -> None:
    """The paper's init: convs N(0, 0.02); BatchNorm scale N(1, 0.02), shift 0 (also the
    per-class tables of ConditionalBatchNorm2d); other class tables as each one states."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, ClassEmbedding):
            nn.init.normal_(m.weight, m.init_mean, m.init_std)


def layer_table(
    model: nn.Module, example: torch.Tensor, labels: torch.Tensor | None = None
) -> list[tuple[str, str, tuple, int]]:
    """Run `example` (and `labels`, for a conditional model) through `model`; one row per leaf
    layer: (name, type, output shape, params)."""
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
            model(example) if labels is None else model(example, labels)
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
    labels = torch.zeros(1, dtype=torch.long, device=device) if cfg.conditional else None
    parts = []
    for title, model, example in (("Generator", generator, z), ("Discriminator", discriminator, x)):
        parts.append(_format_table(title, layer_table(model, example, labels), example.shape))
    return "\n\n".join(parts)


def _format_table(title: str, rows: list, input_shape: torch.Size) -> str:
    lines = [title, f"{'layer':<14}{'type':<18}{'output shape':<22}{'params':>12}"]
    lines.append(f"{'input':<14}{'':<18}{tuple(input_shape)!s:<22}{'':>12}")
    for name, kind, shape, params in rows:
        lines.append(f"{name:<14}{kind:<18}{shape!s:<22}{params:>12,}")
    lines.append(f"{'total':<54}{sum(r[3] for r in rows):>12,}")
    return "\n".join(lines)
