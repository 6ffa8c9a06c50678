"""training/step.py: each training trick observed doing what it says, in real steps of tiny nets.

These tests would fail if a trick were silently ignored: they count optimiser steps, spy on what
the step passes to the losses, networks and optimisers, and compare against hand computations.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import with_settings
from dcgan.config import Config
from dcgan.data import ImageSet
from dcgan.nn.ema import decay_at, update_ema
from dcgan.nn.losses import LOSSES, GANLoss
from dcgan.nn.models import Discriminator
from dcgan.seeding import sample_z
from dcgan.training import step as step_module
from dcgan.training.batches import RealBatches, prepare_images, real_batch
from dcgan.training.loop import train
from dcgan.training.precision import Precision
from dcgan.training.state import Runners, TrainState, build_state
from dcgan.training.step import draw_z, fm_weight_at, joint_layout, lr_scale_at, train_step

CPU = torch.device("cpu")
FP32 = Precision("fp32", "cpu")
NS = LOSSES["non-saturating"]


def setup(cfg: Config) -> tuple[TrainState, RealBatches]:
    """Fresh fp32 networks and the real batches of `cfg`'s dataset, as the loop builds them."""
    return build_state(cfg, CPU), RealBatches(prepare_images(cfg, None), cfg, CPU)


def count_calls(monkeypatch: pytest.MonkeyPatch, obj: object, name: str, before=None) -> list:
    """Replace obj.name by a wrapper that records each call (and runs `before(*args)` first)."""
    calls: list = []
    original = getattr(obj, name)

    def spy(*args, **kwargs):
        calls.append(before(*args, **kwargs) if before else None)
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, spy)
    return calls


def grad_norm(opt: torch.optim.Optimizer) -> float:
    grads = [p.grad.flatten() for g in opt.param_groups for p in g["params"] if p.grad is not None]
    assert grads, "the optimiser stepped without gradients"
    return torch.cat(grads).norm().item()


# ---------------------------------------------------------------------------- g_steps / d_steps


@pytest.mark.slow
def test_d_steps_and_g_steps_count_optimiser_steps(
    tiny_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = with_settings(tiny_config, d_steps=2, g_steps=3)
    state, reals = setup(cfg)
    d_calls = count_calls(monkeypatch, state.opt_d, "step")
    g_calls = count_calls(monkeypatch, state.opt_g, "step")
    for n in range(2):
        train_step(state, reals, NS, FP32, cfg)
        assert (len(d_calls), len(g_calls)) == (2 * (n + 1), 3 * (n + 1))
    # Adam's own per-parameter counters agree: every parameter was updated that often
    for opt, expected in ((state.opt_d, 4), (state.opt_g, 6)):
        counts = {int(opt.state[p]["step"]) for g in opt.param_groups for p in g["params"]}
        assert counts == {expected}
    assert state.images_seen == 2 * 2 * cfg.train.batch_size


@pytest.mark.slow
def test_each_d_update_gets_its_own_real_batch(
    tiny_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = with_settings(tiny_config, d_steps=2, g_steps=3)
    state, reals = setup(cfg)
    asked: list[int] = []

    def numbered(number: int) -> torch.Tensor:
        asked.append(number)
        return reals(number)

    seen = count_calls(
        monkeypatch, step_module, "d_update", lambda updates, real, *a, **kw: real.clone()
    )
    fakes = count_calls(monkeypatch, step_module, "g_update", lambda updates, fake, *a, **kw: fake)
    for _ in range(2):
        train_step(state, numbered, NS, FP32, cfg)
    assert asked == [0, 1, 2, 3]  # batch numbers step * d_steps + k: none reused
    assert len(seen) == 4
    for number, real in enumerate(seen):
        assert torch.equal(real, reals(number))
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[2], seen[3])
    # G's later updates draw new noise rather than repeating the first fakes
    assert len(fakes) == 6
    assert not torch.equal(fakes[0].detach(), fakes[1].detach())
    assert not torch.equal(fakes[1].detach(), fakes[2].detach())


# ---------------------------------------------------------------------------- d_dropout


def test_d_dropout_is_present_and_active_only_in_training(tiny_config: Config) -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    d = Discriminator(with_settings(tiny_config, d_dropout=0.5).model)
    drops = [m for m in d.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == len(d.blocks) and all(m.p == 0.5 for m in drops)
    d.train()
    assert not torch.equal(d(x), d(x))  # a new mask each forward
    d.eval()
    assert torch.equal(d(x), d(x))

    plain = Discriminator(tiny_config.model)
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
    plain.train()
    assert torch.equal(plain(x), plain(x))  # without dropout, training mode is deterministic


def test_d_dropout_reaches_the_training_discriminator(tiny_config: Config) -> None:
    cfg = with_settings(tiny_config, d_dropout=0.3)
    state, reals = setup(cfg)
    drops = [m for m in state.discriminator.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(m.p == 0.3 for m in drops)
    torch.manual_seed(0)
    real = reals(0)
    assert state.discriminator.training
    assert not torch.equal(state.runners.d(real)[0], state.runners.d(real)[0])


# ---------------------------------------------------------------------------- real_label


def bce_by_hand(logits: torch.Tensor, target: float) -> torch.Tensor:
    return -(target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits)).mean()


HAND_REAL_LOSS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "non-saturating": bce_by_hand,
    "minimax": bce_by_hand,
    "hinge": lambda x, t: torch.clamp(t - x, min=0).mean(),
    "least-squares": lambda x, t: ((x - t) ** 2).mean() / 2,
}


@pytest.mark.parametrize("name", sorted(HAND_REAL_LOSS))
def test_real_label_is_the_target_of_the_real_loss(name: str) -> None:
    logits = torch.linspace(-1, 4, 11)  # not symmetric: BCE would not see the target
    smoothed, _ = LOSSES[name].d(logits, -logits, 0.9)
    plain, _ = LOSSES[name].d(logits, -logits, 1.0)
    assert smoothed.item() == pytest.approx(HAND_REAL_LOSS[name](logits, 0.9).item(), abs=1e-6)
    assert plain.item() == pytest.approx(HAND_REAL_LOSS[name](logits, 1.0).item(), abs=1e-6)
    assert abs(smoothed.item() - plain.item()) > 1e-3
    if name == "non-saturating":
        target = torch.full_like(logits, 0.9)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        assert smoothed.item() == pytest.approx(bce.item(), abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("real_label", [0.9, 1.0])
def test_d_update_passes_real_label_to_the_loss(tiny_config: Config, real_label: float) -> None:
    cfg = with_settings(tiny_config, real_label=real_label, d_steps=2)
    state, reals = setup(cfg)
    seen: list[tuple[float, float, float]] = []

    def spy_d(real, fake, target=1.0):
        loss_real, loss_fake = NS.d(real, fake, target)
        seen.append((target, loss_real.item(), bce_by_hand(real.detach(), real_label).item()))
        return loss_real, loss_fake

    stats = train_step(state, reals, GANLoss(spy_d, NS.g), FP32, cfg)
    assert [t for t, _, _ in seen] == [real_label] * 2
    for _, got, by_hand in seen:
        assert got == pytest.approx(by_hand, abs=1e-6)
    assert stats.loss_d_real.item() == pytest.approx(seen[-1][1], abs=1e-6)


# ---------------------------------------------------------------------------- grad_clip


def huge(loss: GANLoss, factor: float = 1e4) -> GANLoss:
    """`loss` times `factor`: gradients far beyond any clipping norm used here."""

    def d(real, fake, target=1.0):
        a, b = loss.d(real, fake, target)
        return a * factor, b * factor

    return GANLoss(d, lambda fake: loss.g(fake) * factor)


@pytest.mark.slow
@pytest.mark.parametrize("g_steps", [1, 2])
def test_grad_clip_bounds_the_norm_each_optimiser_step_sees(
    tiny_config: Config, monkeypatch: pytest.MonkeyPatch, g_steps: int
) -> None:
    limit = 0.05
    norms: dict[tuple[float | None, str], list[float]] = {}
    for clip in (limit, None):
        cfg = with_settings(tiny_config, grad_clip=clip, d_steps=2, g_steps=g_steps)
        state, reals = setup(cfg)
        for name in ("d", "g"):
            opt = getattr(state, f"opt_{name}")
            norms[clip, name] = count_calls(monkeypatch, opt, "step", lambda o=opt: grad_norm(o))
        for _ in range(2):
            train_step(state, reals, huge(NS), FP32, cfg)
    for name, updates in (("d", 2 * 2), ("g", 2 * g_steps)):
        assert len(norms[limit, name]) == len(norms[None, name]) == updates
        assert max(norms[limit, name]) <= limit + 1e-6
        assert min(norms[limit, name]) > limit / 2  # clipped to the limit, not zeroed
        assert min(norms[None, name]) > 10 * limit  # without clipping they are far larger


# ---------------------------------------------------------------------------- z_dist


def test_sample_z_distributions() -> None:
    gen = torch.Generator().manual_seed(0)
    uniform = sample_z(4096, 16, "uniform", gen)
    assert uniform.min() >= -1 and uniform.max() < 1
    assert uniform.min() < -0.99 and uniform.max() > 0.99  # fills the interval
    assert uniform.std().item() == pytest.approx(1 / math.sqrt(3), rel=0.05)
    normal = sample_z(4096, 16, "normal", gen)
    assert normal.abs().max() > 3 and (normal.abs() > 1).float().mean() > 0.25
    assert normal.std().item() == pytest.approx(1.0, rel=0.05)


@pytest.mark.slow
def test_training_noise_follows_z_dist(tiny_config: Config) -> None:
    fed: dict[str, list[torch.Tensor]] = {}
    for dist in ("uniform", "normal"):
        cfg = with_settings(tiny_config, z_dist=dist, g_steps=2)
        state, reals = setup(cfg)
        z = draw_z(state, 256, cfg)
        assert z.shape == (256, cfg.model.nz)
        bounded = bool(z.min() >= -1 and z.max() < 1)
        assert bounded == (dist == "uniform")
        # and it is what G is fed in a real step, and what the previews use
        calls: list[torch.Tensor] = []
        g = state.runners.g
        state.runners = state.runners._replace(
            g=lambda z, y=None, g=g, c=calls: c.append(z) or g(z, y)
        )
        train_step(state, reals, NS, FP32, cfg)
        fed[dist] = [*calls, state.fixed_z]
    assert len(fed["uniform"]) == 3  # one D update, a second G update, the previews
    assert all(z.min() >= -1 and z.max() < 1 for z in fed["uniform"])
    assert all(z.abs().max() > 1 for z in fed["normal"])


# ---------------------------------------------------------------------------- feature_matching


def spy_g_update(state: TrainState) -> tuple[list, list, GANLoss]:
    """Record the adversarial part of G's loss and D's (logits, features) in G's update."""
    adversarial, outputs = [], []
    frozen = state.runners.d_frozen

    def d_frozen(x, labels=None):
        out = frozen(x, labels)
        outputs.append(out)
        return out

    def g(fake):
        value = NS.g(fake)
        adversarial.append(value.item())
        return value

    state.runners = Runners(state.runners.g, state.runners.d, d_frozen)
    return adversarial, outputs, GANLoss(NS.d, g)


def test_feature_matching_adds_its_term_to_g_loss(tiny_config: Config) -> None:
    cfg = with_settings(tiny_config, feature_matching=2.0, feature_matching_steps=4)
    state, reals = setup(cfg)
    adversarial, outputs, loss = spy_g_update(state)
    stats = train_step(state, reals, loss, FP32, cfg)
    (_, fake_feats), (_, real_feats) = outputs  # G's fakes, then the real batch
    by_hand = sum(
        ((r.float().mean(0) - f.float().mean(0)) ** 2).mean().item()
        for r, f in zip(real_feats, fake_feats, strict=True)
    )
    assert stats.loss_fm.item() > 0
    assert stats.loss_fm.item() == pytest.approx(by_hand, rel=1e-5)
    weight = fm_weight_at(cfg, 0)
    assert weight == 2.0
    expected = adversarial[0] + weight * stats.loss_fm.item()
    assert stats.loss_g.item() == pytest.approx(expected, rel=1e-5)
    assert stats.loss_g.item() > adversarial[0]


def test_feature_matching_on_the_joint_batch_compares_its_reals_and_fakes(
    tiny_config: Config,
) -> None:
    cfg = with_settings(tiny_config, feature_matching=1.0, joint_d_batch=True, mbstd_group=2)
    state, reals = setup(cfg)
    _, outputs, loss = spy_g_update(state)
    stats = train_step(state, reals, loss, FP32, cfg)
    ((_, feats),) = outputs  # one pass of D over the joined batch in G's update
    fakes = joint_layout(cfg.train.batch_size, 2).fake_rows()
    by_hand = sum(
        ((f[~fakes].float().mean(0) - f[fakes].float().mean(0)) ** 2).mean().item() for f in feats
    )
    assert stats.loss_fm.item() > 0
    assert stats.loss_fm.item() == pytest.approx(by_hand, rel=1e-5)


def test_feature_matching_off_or_decayed_is_exactly_zero(tiny_config: Config) -> None:
    for cfg, steps in (
        (tiny_config, 1),
        (with_settings(tiny_config, feature_matching=1.0, feature_matching_steps=1), 2),
    ):
        state, reals = setup(cfg)
        adversarial, outputs, loss = spy_g_update(state)
        for _ in range(steps):
            stats = train_step(state, reals, loss, FP32, cfg)
        if steps == 2:
            assert len(outputs) == 3  # step 0 also ran D on the real batch for the term
        assert stats.loss_fm.item() == 0.0
        assert stats.loss_g.item() == pytest.approx(adversarial[-1], rel=1e-6)


def test_fm_weight_decays_linearly_to_zero(tiny_config: Config) -> None:
    w0, n = 3.0, 8
    cfg = with_settings(tiny_config, feature_matching=w0, feature_matching_steps=n)
    weights = [fm_weight_at(cfg, s) for s in range(n + 4)]
    assert weights[0] == w0 and weights[n:] == [0.0] * 4
    slopes = [b - a for a, b in pairwise(weights[: n + 1])]
    assert all(s == pytest.approx(-w0 / n) for s in slopes)  # a straight line down
    off = with_settings(tiny_config, feature_matching=0.0)
    assert all(fm_weight_at(off, s) == 0.0 for s in range(4))
    held = with_settings(tiny_config, feature_matching=w0, feature_matching_steps=0)
    assert all(fm_weight_at(held, s) == w0 for s in (0, 1, 10**6))  # 0 steps: never decays


# ---------------------------------------------------------------------------- lr decay


def test_lr_scale_is_flat_then_a_straight_line_to_zero() -> None:
    scales = [lr_scale_at(0.25, s, 16) for s in range(16)]
    assert scales[:12] == [1.0] * 12
    assert scales[12:] == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert [lr_scale_at(0.0, s, 16) for s in (0, 15)] == [1.0, 1.0]
    assert lr_scale_at(1.0, 0, 4) == 1.0 and lr_scale_at(1.0, 3, 4) == 0.25


@pytest.mark.slow
def test_lr_decay_reaches_both_optimisers(tiny_config: Config) -> None:
    cfg = with_settings(tiny_config, steps=8, lr_decay=0.5, log_every=1, lr_d=1e-3)
    rows = [json.loads(x) for x in (train(cfg).run_dir / "stats.jsonl").read_text().splitlines()]
    # the record of step s holds the rate update s-1 used
    assert [r["lr_g"] / cfg.train.lr for r in rows] == pytest.approx(
        [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    )
    assert rows[-1]["lr_d"] == pytest.approx(1e-3 * 0.25)


# ---------------------------------------------------------------------------- ema


def params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


@pytest.mark.parametrize("start", [0, 100])
def test_ema_is_the_moving_average_of_g(tiny_config: Config, start: int) -> None:
    cfg = with_settings(tiny_config, ema=0.9)
    state, reals = setup(cfg)
    state.step = start
    assert state.ema is not None
    before = params(state.ema)
    train_step(state, reals, NS, FP32, cfg)
    decay = decay_at(0.9, start)
    assert decay == (0.1 if start == 0 else 0.9)  # warm-up, then the configured decay
    g, ema = params(state.generator), params(state.ema)
    for e0, gi, e1 in zip(before, g, ema, strict=True):
        torch.testing.assert_close(e1, decay * e0 + (1 - decay) * gi, rtol=0, atol=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(g, ema, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(before, ema, strict=True))


def test_update_ema_formula_on_any_module() -> None:
    torch.manual_seed(0)
    ema, g = nn.Linear(5, 3), nn.Linear(5, 3)
    before = params(ema)
    update_ema(ema, g, 0.75)
    for e0, gi, e1 in zip(before, params(g), params(ema), strict=True):
        torch.testing.assert_close(e1, 0.75 * e0 + 0.25 * gi, rtol=0, atol=1e-7)


def test_ema_off_has_no_average(tiny_config: Config) -> None:
    state, reals = setup(with_settings(tiny_config, ema=0.0))
    assert state.ema is None
    train_step(state, reals, NS, FP32, tiny_config)  # runs without one
    assert state.step == 1


# ---------------------------------------------------------------------------- flip


def mirrored(plain: torch.Tensor, flipped: torch.Tensor) -> list[bool]:
    """Per image: whether `flipped` is the mirror image of `plain` (else it must be equal)."""
    out = []
    for a, b in zip(plain, flipped, strict=True):
        assert torch.equal(b, a) or torch.equal(b, a.flip(-1))
        out.append(not torch.equal(b, a))
    return out


def test_flip_mirrors_some_images_reproducibly() -> None:
    g = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8, generator=g))
    index = torch.arange(32)
    plain = real_batch(data, index, False, 5, 0, CPU)

    def mask(seed: int, number: int) -> list[bool]:
        return mirrored(plain, real_batch(data, index, True, seed, number, CPU))

    first = mask(5, 0)
    assert 0 < sum(first) < len(first)  # some but not all
    assert mask(5, 0) == first  # the same (seed, batch number): the same images
    assert any(mask(5, n) != first for n in (1, 2, 3))  # another batch: another choice
    assert any(mask(s, 0) != first for s in (6, 7, 8))  # another seed: another choice
    # a process's slice of the batch flips exactly as in the whole batch
    halves = [real_batch(data, index, True, 5, 0, CPU, slice(a, a + 16)) for a in (0, 16)]
    assert torch.equal(torch.cat(halves), real_batch(data, index, True, 5, 0, CPU))


def test_flip_setting_reaches_the_real_batches(tiny_config: Config) -> None:
    data = prepare_images(tiny_config, None)
    plain = RealBatches(data, tiny_config, CPU)
    flipping = RealBatches(data, with_settings(tiny_config, flip=True), CPU)
    flags = [f for n in range(3) for f in mirrored(plain(n), flipping(n))]
    assert 0 < sum(flags) < len(flags)


# ---------------------------------------------------------------------------- R1


def test_r1_penalty_is_the_mean_squared_input_gradient() -> None:
    from dcgan.nn.losses import r1_penalty

    w = torch.randn(3, 4, 4, requires_grad=True)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (w * x.square() / 2).flatten(1).sum(1)  # dD/dx = w * x
    penalty = r1_penalty(logits, x)
    expected = (w * x).square().flatten(1).sum(1).mean()
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)
    penalty.backward()  # the graph is kept: the penalty trains what made the logits
    assert torch.allclose(w.grad, (2 * w * x.square()).mean(0).detach(), rtol=1e-5)


def test_r1_applies_every_r1_every_steps_with_its_weight(
    tiny_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The penalty enters D's loss on steps 0, 3, 6 (every 3), weighted gamma / 2 x 3: at step
    0 D's loss is the loss of the same D on the same batch without R1, plus 6 x the penalty."""
    from dcgan.training import step as step_module

    real_penalty, real_optimise = step_module.r1_penalty, step_module.optimise

    def d_losses(cfg: Config, steps: int) -> tuple[list[torch.Tensor], list[tuple]]:
        state, reals = setup(cfg)
        losses, penalties = [], []

        def penalty(logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
            assert inputs.requires_grad and inputs.shape == (8, 1, 16, 16)
            value = real_penalty(logits, inputs)
            penalties.append((state.step, value.detach()))
            return value

        def optimise(loss, opt, model, scaler, max_norm):
            if model is state.discriminator:
                losses.append(loss.detach())
            return real_optimise(loss, opt, model, scaler, max_norm)

        monkeypatch.setattr(step_module, "r1_penalty", penalty)
        monkeypatch.setattr(step_module, "optimise", optimise)
        for _ in range(steps):
            train_step(state, reals, LOSSES["hinge"], FP32, cfg)
        return losses, penalties

    cfg = with_settings(tiny_config, r1_gamma=4.0, r1_every=3, steps=7, loss="hinge")
    on, penalties = d_losses(cfg, 7)
    assert [step for step, _ in penalties] == [0, 3, 6]
    off, none = d_losses(with_settings(cfg, r1_gamma=0.0), 1)
    assert none == [] and penalties[0][1] > 0
    assert on[0].item() == pytest.approx((off[0] + 6.0 * penalties[0][1]).item(), rel=1e-5)


def test_r1_is_refused_under_torchrun(tiny_config: Config) -> None:
    from dcgan.errors import ConfigError
    from dcgan.training.distributed import Processes

    cfg = with_settings(tiny_config, r1_gamma=1.0)
    with pytest.raises(ConfigError, match=r"r1_gamma: 1\.0 is not supported under torchrun"):
        build_state(cfg, CPU, procs=Processes(CPU, rank=0, world=2))
