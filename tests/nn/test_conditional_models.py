"""Class-conditional G and D: every cond_g x cond_d pairing trains a step, the class tables
learn, labels change outputs, and unconditional models are exactly what they were."""

import copy
import itertools

import pytest
import torch

from dcgan.config import ModelConfig
from dcgan.errors import ConfigError
from dcgan.nn.losses import LOSSES
from dcgan.nn.models import (
    ClassEmbedding,
    ConditionalBatchNorm2d,
    Discriminator,
    Generator,
    concat_dim,
    layer_table,
    summary,
)

K = 10
PAIRS = list(itertools.product(["cbn", "concat"], ["projection", "concat"]))


def cond_cfg(cond_g="cbn", cond_d="projection", size=16, channels=1, **kw) -> ModelConfig:
    return ModelConfig(
        image_size=size, channels=channels, nz=16, ngf=8, ndf=8, conditional=True,
        cond_g=cond_g, cond_d=cond_d, num_classes=K, **kw,
    )  # fmt: skip


def labels_for(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, K, (batch,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.slow
@pytest.mark.parametrize(("cond_g", "cond_d"), PAIRS)
@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_one_training_step(cond_g, cond_d, size, channels) -> None:
    torch.manual_seed(0)
    cfg = cond_cfg(cond_g, cond_d, size, channels)
    g, d = Generator(cfg), Discriminator(cfg)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    loss = LOSSES["non-saturating"]
    b = 6
    z, y = torch.randn(b, cfg.nz), labels_for(b)
    real = torch.rand(b, channels, size, size) * 2 - 1
    fake = g(z, y)
    assert fake.shape == (b, channels, size, size) and fake.abs().max() <= 1
    logits, feats = d.forward_features(real, y)
    assert logits.shape == (b,) and feats[-1].shape[-2:] == (4, 4)

    loss_real, loss_fake = loss.d(logits, d(fake.detach(), y), 1.0)
    opt_d.zero_grad()
    (loss_real + loss_fake).backward()
    opt_d.step()
    loss_g = loss.g(d(g(z, y), y))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    assert torch.isfinite(loss_g)
    for model in (g, d):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(("cond_g", "cond_d"), PAIRS)
@pytest.mark.slow
def test_gradients_reach_the_class_tables(cond_g, cond_d) -> None:
    cfg = cond_cfg(cond_g, cond_d)
    g, d = Generator(cfg), Discriminator(cfg)
    y = torch.tensor([1, 1, 4, 7])
    d(g(torch.randn(4, cfg.nz), y), y).sum().backward()
    tables = [m for m in g.modules() if isinstance(m, ClassEmbedding)]
    assert tables and all(t.weight.grad.abs().sum() > 0 for t in tables)
    # only the rows of classes in the batch are touched
    for t in tables:
        assert t.weight.grad[[0, 2, 3, 5, 6, 8, 9]].abs().sum() == 0
    if cond_d == "projection":
        assert d.embed.weight.grad[[1, 4, 7]].abs().sum() > 0
    else:  # the label planes' input weights of D's first conv
        assert d.blocks[0][0].weight.grad[:, cfg.channels + 1].abs().sum() > 0


@pytest.mark.parametrize(("cond_g", "cond_d"), PAIRS)
@pytest.mark.slow
def test_labels_change_outputs_and_eval_mode_works(cond_g, cond_d) -> None:
    torch.manual_seed(0)
    cfg = cond_cfg(cond_g, cond_d)
    g, d = Generator(cfg), Discriminator(cfg)
    with torch.no_grad():  # make the class tables differ beyond init noise
        for m in [*g.modules(), *d.modules()]:
            if isinstance(m, ClassEmbedding):
                m.weight.normal_(0, 1)
    z = torch.randn(1, cfg.nz).expand(4, -1)
    y = torch.tensor([0, 1, 2, 3])
    g(torch.randn(8, cfg.nz), labels_for(8))  # gather some running statistics
    for model in (g, d):
        model.eval()
    with torch.no_grad():
        images = g(z, y)
        assert not torch.allclose(images[0], images[1])
        assert torch.allclose(images[0], g(z[:1], y[:1])[0], atol=1e-6)  # eval: no batch statistics
        x = images[:1].expand(4, -1, -1, -1)
        logits = d(x, y)
        assert logits.unique().numel() == 4


def test_conditional_batchnorm_init_and_keys() -> None:
    g = Generator(cond_cfg("cbn"))
    norms = [m for m in g.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(norms) == 2 and not any(
        isinstance(m, torch.nn.BatchNorm2d) and m.affine for m in g.modules()
    )
    scale = torch.cat([n.scale.weight.flatten() for n in norms])
    assert abs(scale.mean() - 1) < 0.01 and 0.01 < scale.std() < 0.03
    assert all(torch.equal(n.shift.weight, torch.zeros_like(n.shift.weight)) for n in norms)
    keys = set(g.state_dict())
    for prefix in ("main.1", "main.4"):
        assert {f"{prefix}.scale.weight", f"{prefix}.shift.weight"} <= keys
        assert {f"{prefix}.bn.running_mean", f"{prefix}.bn.running_var"} <= keys
    assert g.main[1].scale.weight.shape == (K, 16)  # widths [16, 8] at 16 px


def test_concat_and_projection_shapes() -> None:
    g, d = (
        Generator(cond_cfg("concat", "concat", channels=3)),
        Discriminator(cond_cfg("concat", "concat", channels=3)),
    )
    assert g.embed.weight.shape == (K, concat_dim(16)) and g.main[0].in_channels == 16 + 16
    assert d.blocks[0][0].in_channels == 3 + K
    d = Discriminator(cond_cfg(cond_d="projection", size=32))
    assert d.embed.weight.shape == (K, 32)
    assert abs(d.embed.weight.std() - 0.02) < 0.01
    assert concat_dim(100) == 50


@pytest.mark.slow
def test_batchnorm_recalibration_of_a_conditional_ema_averages_its_class_batches() -> None:
    """recalibrate_batchnorm on a copy of a class-conditional G (as the moving average gets):
    each BatchNorm's running statistics become the exact average of the statistics of the
    batches it saw, which carried classes (the cBN G cannot run without them), and a second
    call gives the same values."""
    from dcgan.nn.ema import RECALIBRATION_BATCHES, recalibrate_batchnorm

    g = Generator(cond_cfg("cbn"))
    g(torch.randn(8, 16), labels_for(8))
    ema = copy.deepcopy(g).eval()
    norms = [m for m in ema.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    seen: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {i: [] for i in range(len(norms))}

    def record(i: int):
        def hook(module, inputs) -> None:
            x = inputs[0].detach().transpose(0, 1).flatten(1)  # (channels, everything else)
            seen[i].append((x.mean(1), x.var(1, unbiased=True)))

        return hook

    handles = [m.register_forward_pre_hook(record(i)) for i, m in enumerate(norms)]
    recalibrate_batchnorm(ema, 16, "normal", seed=5, num_classes=K)
    for h in handles:
        h.remove()
    assert len(norms) == 2 and ema.training is False  # left as it was found
    for i, m in enumerate(norms):
        assert len(seen[i]) == RECALIBRATION_BATCHES
        means, variances = (torch.stack(v).mean(0) for v in zip(*seen[i], strict=True))
        assert torch.allclose(m.running_mean, means, atol=1e-6)
        assert torch.allclose(m.running_var, variances, rtol=1e-5)
    first = [m.running_mean.clone() for m in norms]
    recalibrate_batchnorm(ema, 16, "normal", seed=5, num_classes=K)
    assert all(torch.equal(a, m.running_mean) for a, m in zip(first, norms, strict=True))
    with pytest.raises(ValueError, match="labels: none given"):
        recalibrate_batchnorm(ema, 16, "normal", seed=5)  # without classes a cBN G cannot run


# The unconditional models at this config and seed, computed before conditioning existed.
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
PLAIN_G_KEYS = ["main.0.weight", *[f"main.1.{k}" for k in BN], "main.3.weight"]
PLAIN_G_KEYS += [*[f"main.4.{k}" for k in BN], "main.6.weight"]
PLAIN_D_KEYS = ["blocks.0.0.weight", "blocks.0.0.bias", "blocks.1.0.weight"]
PLAIN_D_KEYS += [*[f"blocks.1.1.{k}" for k in BN], "head.weight"]


def test_unconditional_models_unchanged() -> None:
    cfg = ModelConfig(image_size=16, channels=3, nz=16, ngf=8, ndf=8)
    torch.manual_seed(0)
    g, d = Generator(cfg), Discriminator(cfg)
    assert list(g.state_dict()) == PLAIN_G_KEYS and list(d.state_dict()) == PLAIN_D_KEYS
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        images = g(z)
        logits = d(images)
    first = [0.0027688005939126015, -0.008326191455125809, 0.016665343195199966]
    assert torch.allclose(images.flatten()[:3], torch.tensor(first), atol=1e-6)
    assert images.abs().sum().item() == pytest.approx(163.73825073242188, rel=1e-5)
    expected = [-0.023452430963516235, 0.019756019115447998, 0.08060969412326813, -0.0027038]
    assert torch.allclose(logits, torch.tensor(expected), atol=1e-6)
    plain = cfg.__class__(**{**vars(cfg), "cond_g": "concat", "cond_d": "concat"})
    assert list(Generator(plain).state_dict()) == PLAIN_G_KEYS  # cond_* ignored unless conditional


@pytest.mark.parametrize(("cond_g", "cond_d"), PAIRS)
def test_summary_and_layer_table_for_conditional_models(cond_g, cond_d) -> None:
    cfg = cond_cfg(cond_g, cond_d, channels=3)
    g, d = Generator(cfg), Discriminator(cfg)
    text = summary(g, d)
    assert "(1, 3, 16, 16)" in text and "Embedding" in text
    for model in (g, d):
        assert f"{sum(p.numel() for p in model.parameters()):,}" in text
    rows = layer_table(g, torch.zeros(2, cfg.nz), torch.tensor([0, 1]))
    assert rows[-1][2] == (2, 3, 16, 16)
    assert sum(r[3] for r in rows) == sum(p.numel() for p in g.parameters())


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (None, "labels: none given; the model is conditional, pass int64 in 0..9"),
        (torch.tensor([0, 12]), "labels: 12 is outside 0..9 (the model's 10 classes)"),
        (torch.tensor([-1, 3]), "labels: -1 is outside 0..9"),
        (torch.tensor([0.0, 1.0]), "labels: class weights of shape (2,), expected (2, 10)"),
        (torch.tensor([0, 1], dtype=torch.int32), "labels: torch.int32 given, expected"),
        ([0, 1], "labels: list given"),
        (torch.tensor([[0], [1]]), r"labels: shape (2, 1), expected (2,)"),
        (torch.tensor([0, 1, 2]), r"labels: shape (3,), expected (2,)"),
    ],
)
def test_bad_labels_are_refused_in_one_line(labels, message) -> None:
    cfg = cond_cfg("concat", "concat")
    for model, x in (
        (Generator(cfg), torch.randn(2, 16)),
        (Discriminator(cfg), torch.randn(2, 1, 16, 16)),
    ):
        with pytest.raises(ValueError) as info:
            model(x, labels)
        assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize("cond_g, cond_d", [("cbn", "projection"), ("concat", "concat")])
def test_one_hot_class_weights_equal_labels_and_blends_lie_between(cond_g, cond_d) -> None:
    cfg = cond_cfg(cond_g, cond_d)
    torch.manual_seed(0)
    g, d = Generator(cfg).eval(), Discriminator(cfg).eval()
    z, labels = torch.randn(3, cfg.nz), torch.tensor([1, 4, 9])
    one_hot = torch.nn.functional.one_hot(labels, cfg.num_classes).float()
    assert torch.allclose(g(z, one_hot), g(z, labels), atol=1e-6)
    x = torch.randn(3, cfg.channels, 16, 16)
    assert torch.allclose(d(x, one_hot), d(x, labels), atol=1e-5)
    half = (one_hot + torch.nn.functional.one_hot(labels.flip(0), cfg.num_classes)) / 2
    blend = g(z, half)
    assert not torch.allclose(blend, g(z, labels)) and blend.shape == (3, cfg.channels, 16, 16)


def test_unconditional_model_refuses_labels() -> None:
    cfg = ModelConfig(image_size=16, nz=16, ngf=8, ndf=8)
    with pytest.raises(ValueError, match=r"^labels: given, but the model is not conditional"):
        Generator(cfg)(torch.randn(2, 16), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="not conditional"):
        Discriminator(cfg).forward_features(torch.randn(2, 1, 16, 16), torch.tensor([0, 1]))


@pytest.mark.parametrize("model", [Generator, Discriminator])
def test_conditional_without_classes_is_a_config_error(model) -> None:
    cfg = ModelConfig(image_size=16, nz=16, ngf=8, ndf=8, conditional=True, num_classes=0)
    with pytest.raises(ConfigError, match=r"^num_classes: 0, but a conditional model needs"):
        model(cfg)


def test_bf16_autocast_on_cpu() -> None:
    """The custom kernels' bf16 routes also carry the conditional layers."""
    cfg = cond_cfg("cbn", "projection", size=32, channels=1)
    g, d = Generator(cfg), Discriminator(cfg)
    y = labels_for(4)
    with torch.autocast("cpu", torch.bfloat16):
        images = g(torch.randn(4, cfg.nz), y)
        logits = d(images, y)
    assert images.dtype == torch.bfloat16 and logits.shape == (4,)
    LOSSES["non-saturating"].g(logits).backward()
    assert g.main[1].scale.weight.grad.abs().sum() > 0
