import pytest
import torch

from dcgan.config import ModelConfig
from dcgan.nn.models import Discriminator, Generator, layer_table, minibatch_std, summary

SIZES = [16, 32, 64, 128, 256]


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_for_every_size(size: int, channels: int) -> None:
    cfg = ModelConfig(image_size=size, channels=channels, nz=8, ngf=4, ndf=4)
    g, d = Generator(cfg), Discriminator(cfg)
    images = g(torch.randn(2, 8))
    assert images.shape == (2, channels, size, size)
    assert images.abs().max() <= 1.0  # tanh output
    assert d(images).shape == (2,)


def test_512_and_odd_channel_counts() -> None:
    cfg = ModelConfig(image_size=512, channels=2, nz=4, ngf=2, ndf=2)
    images = Generator(cfg)(torch.randn(1, 4))
    assert images.shape == (1, 2, 512, 512)
    assert Discriminator(cfg)(images).shape == (1,)


def test_paper_widths_at_64() -> None:
    g = Generator(ModelConfig(image_size=64, channels=3))
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 3]
    assert [c.stride[0] for c in convs] == [1, 2, 2, 2, 2]


def test_discriminator_mirrors_generator_and_returns_logits() -> None:
    d = Discriminator(ModelConfig(image_size=64, channels=3))
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    # BatchNorm on every block but the first; LeakyReLU 0.2; no sigmoid anywhere
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.blocks[0])
    assert all(isinstance(b[1], torch.nn.BatchNorm2d) for b in d.blocks[1:])
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, torch.nn.LeakyReLU))
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in d.modules())
    with torch.no_grad():
        d.head.weight.mul_(100)
    logits = d(torch.randn(8, 3, 64, 64))
    assert logits.abs().max() > 1  # unbounded: logits, not probabilities


def test_paper_init_statistics() -> None:
    g = Generator(ModelConfig(image_size=64, channels=3))
    conv_w = torch.cat(
        [m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    )
    bn_w = torch.cat([m.weight for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(conv_w.mean()) < 1e-3 and abs(conv_w.std() - 0.02) < 1e-3
    assert abs(bn_w.mean() - 1) < 5e-3 and abs(bn_w.std() - 0.02) < 5e-3


def test_dropout_only_when_asked() -> None:
    plain = Discriminator(ModelConfig(image_size=32))
    dropped = Discriminator(ModelConfig(image_size=32, d_dropout=0.3))
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.modules())
    assert sum(isinstance(m, torch.nn.Dropout) for m in dropped.modules()) == len(dropped.blocks)


def test_features_are_block_outputs() -> None:
    d = Discriminator(ModelConfig(image_size=32, ndf=8))
    x = torch.randn(3, 1, 32, 32)
    logits, feats = d.forward_features(x)
    assert [f.shape for f in feats] == [(3, 8, 16, 16), (3, 16, 8, 8), (3, 32, 4, 4)]
    assert torch.equal(logits, d(x))


def test_summary_lists_shapes_and_counts_params() -> None:
    cfg = ModelConfig(image_size=32, channels=3, ngf=8, ndf=8)
    g, d = Generator(cfg), Discriminator(cfg)
    text = summary(g, d)
    assert "Generator" in text and "Discriminator" in text
    assert "(1, 3, 32, 32)" in text  # G's output shape
    for model in (g, d):
        total = sum(p.numel() for p in model.parameters())
        assert f"{total:,}" in text
    rows = layer_table(g, torch.zeros(1, cfg.nz))
    assert rows[-1][2] == (1, 3, 32, 32) and sum(r[3] for r in rows) == sum(
        p.numel() for p in g.parameters()
    )


def test_summary_leaves_batchnorm_statistics_alone() -> None:
    cfg = ModelConfig(image_size=16, ngf=4, ndf=4)
    g, d = Generator(cfg), Discriminator(cfg)
    before = [b.clone() for b in g.buffers()]
    summary(g, d)
    assert all(torch.equal(a, b) for a, b in zip(before, g.buffers(), strict=True))
    assert g.training


def test_minibatch_std_adds_the_spread_within_each_group() -> None:
    x = torch.randn(8, 3, 4, 4)
    out = minibatch_std(x, 4)
    assert out.shape == (8, 4, 4, 4) and torch.equal(out[:, :3], x)
    # groups of 4: images 0, 2, 4, 6 and 1, 3, 5, 7 (image i in group i mod 2)
    for first in (0, 1):
        expected = x[first::2].std(0, unbiased=False).mean()
        assert torch.allclose(out[first::2, 3], expected.expand(4, 4, 4), atol=1e-6)
    same = minibatch_std(x[:1].expand(4, -1, -1, -1), 4)[:, 3]
    assert same.max() < 1e-3  # identical images: no spread
    assert minibatch_std(x[:6], 4).shape == (6, 4, 4, 4)  # 6 images: groups of 2
    assert minibatch_std(x[:1], 4).shape == (1, 4, 4, 4)


def test_d_with_minibatch_std_judges_an_image_by_its_group() -> None:
    cfg = ModelConfig(image_size=16, channels=1, ngf=8, ndf=8, mbstd_group=2)
    d = Discriminator(cfg).eval()  # running BatchNorm statistics: only the std links images
    assert d.head.in_channels == 8 * 2 + 1
    x = torch.randn(4, 1, 16, 16)
    changed = x.clone()
    changed[0] = torch.randn(1, 16, 16)
    before, after = d(x).detach(), d(changed).detach()
    assert before.shape == (4,)
    assert after[2] != before[2]  # image 2 shares image 0's group
    assert after[1] == before[1] and after[3] == before[3]  # the other group does not
    plain = Discriminator(ModelConfig(image_size=16, channels=1, ngf=8, ndf=8))
    assert plain.head.in_channels == 8 * 2


def test_spectral_norm_bounds_each_of_ds_layers_in_place_of_batchnorm() -> None:
    torch.manual_seed(0)
    d = Discriminator(ModelConfig(image_size=32, channels=3, ndf=8, spectral_norm=True))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(hasattr(m, "weight_orig") for m in convs)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(30):  # each training forward is one power iteration
        d(x)
    for m in convs:
        sigma = torch.linalg.matrix_norm(m.weight.reshape(len(m.weight), -1), 2)
        assert sigma.item() == pytest.approx(1.0, abs=0.02)
    assert "blocks.1.0.weight_u" in d.state_dict()
    plain = Discriminator(ModelConfig(image_size=32, channels=3, ndf=8))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())


def test_spectral_norm_is_in_an_export_only_when_on() -> None:
    from dcgan.config.schema import model_dict

    assert "spectral_norm" not in model_dict(ModelConfig())
    assert model_dict(ModelConfig(spectral_norm=True))["spectral_norm"] is True


def test_networks_too_big_to_allocate_are_refused_before_building(capsys) -> None:
    from dcgan.cli import main
    from dcgan.errors import ConfigError
    from dcgan.nn.models import check_size

    check_size(ModelConfig(image_size=64, channels=3))  # the paper's: fine
    with pytest.raises(ConfigError, match=r"G would have 251\.4 billion weights"):
        check_size(ModelConfig(image_size=512, ngf=8192))
    with pytest.raises(ConfigError, match="D would have"):
        check_size(ModelConfig(image_size=512, ndf=8192))
    # the limit follows the machine: 4 GiB of room refuses what 24 GiB allows
    wide = ModelConfig(image_size=64, channels=3, ngf=1024)  # G: 0.7 billion weights, 14 GiB
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("dcgan.nn.models.memory_room", lambda: 4 << 30)
        with pytest.raises(ConfigError, match=r"more than the 4\.0 GiB this process may use"):
            check_size(wide)
        mp.setattr("dcgan.nn.models.memory_room", lambda: 24 << 30)
        check_size(wide)
    assert main(["summary", "--image-size", "512", "--ngf", "8192"]) == 2
    assert main(["train", "--image-size", "512", "--ngf", "8192", "--dataset", "fake"]) == 2
    assert capsys.readouterr().err.count("billion weights") == 2
