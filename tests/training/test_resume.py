"""Resume continues exactly: N + N steps end bitwise equal to 2N uninterrupted steps."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_flags, with_settings
from dcgan.cli import main
from dcgan.config import Config
from dcgan.errors import ConfigError
from dcgan.run.checkpoint import load_checkpoint
from dcgan.run.rundir import latest_checkpoint
from dcgan.training.loop import train
from dcgan.training.state import build_state, restore


@pytest.mark.parametrize(
    "tricks",
    [
        {},
        {"d_dropout": 0.2, "d_steps": 2, "z_dist": "uniform"},
        {"augment": "translation,cutout,color", "augment_p": 0.7, "g_steps": 2},
        {"augment": "translation,color", "ada_target": 0.6, "ada_interval": 2, "ada_kimg": 0.05},
        {"spectral_norm": True, "mbstd_group": 4},
        {"joint_d_batch": True, "mbstd_group": 2, "feature_matching": 1.0},
        {"r1_gamma": 5.0, "r1_every": 2, "augment": "translation", "loss": "hinge"},
    ],
)
@pytest.mark.slow
def test_n_plus_n_equals_2n_bitwise(tiny_config: Config, tricks: dict) -> None:
    cfg = with_settings(tiny_config, deterministic=True, steps=6, checkpoint_every=100, **tricks)
    straight = train(cfg)
    half = train(with_settings(cfg, steps=3))
    resumed = train(with_settings(cfg, steps=6), resume=half.run_dir)
    assert resumed.step == 6
    a = load_file(straight.run_dir / "generator.safetensors")
    b = load_file(resumed.run_dir / "generator.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("generator", "discriminator"):  # the export above is G's moving average
        w_a, w_b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(w_a[k], w_b[k]) for k in w_a)

    # stats are appended, not restarted; the stop at step 3 added its own record, and the
    # intervals both runs logged in full (steps 1-2 and 5-6) hold the same numbers
    def stats(run: Path) -> dict[int, dict]:
        rows = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
        return {r["step"]: {k: v for k, v in r.items() if k != "images_per_s"} for r in rows}

    a_stats, b_stats = stats(straight.run_dir), stats(resumed.run_dir)
    assert list(a_stats) == [2, 4, 6] and list(b_stats) == [2, 3, 4, 6]
    assert a_stats[2] == b_stats[2] and a_stats[6] == b_stats[6]


@pytest.mark.slow
def test_resume_mid_decay_continues_the_schedule_bitwise(tiny_config: Config, tmp_path) -> None:
    # the schedule depends on the run's length, so the run is cut by going back to step 3
    cfg = with_settings(tiny_config, deterministic=True, steps=6, checkpoint_every=3, lr_decay=0.75)
    straight = train(cfg)
    copy = tmp_path / "copy"
    shutil.copytree(straight.run_dir, copy)
    resumed = train(cfg, resume=copy, from_step=3)
    for name in ("generator", "discriminator"):
        w_a, w_b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(w_a[k], w_b[k]) for k in w_a)


@pytest.mark.slow
def test_resume_through_the_cli(tmp_path: Path) -> None:
    assert main(["train", *tiny_flags(tmp_path, steps=2)]) == 0
    run = tmp_path / "runs" / "00000-fake-16"
    assert main(["train", "--resume", str(run), "--steps", "4"]) == 0
    steps = [json.loads(x)["step"] for x in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == [2, 4]
    assert torch.load(latest_checkpoint(run), weights_only=True)["step"] == 4
    assert not (tmp_path / "runs" / "00001-fake-16").exists()  # same run continued


def test_resume_refuses_a_changed_config(
    tiny_config: Config, capsys: pytest.CaptureFixture
) -> None:
    run = train(tiny_config).run_dir
    with pytest.raises(ConfigError, match=r"train\.lr: 0\.0002 -> 0\.001"):
        train(with_settings(tiny_config, lr=1e-3, steps=8), resume=run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--lr", "0.001", "--loss", "hinge"]) == 2
    err = capsys.readouterr().err
    assert "train.loss: 'non-saturating' -> 'hinge'" in err and err.count("\n") == 1


@pytest.mark.slow
def test_resume_drops_stats_logged_after_the_checkpoint(tiny_config: Config) -> None:
    cfg = with_settings(tiny_config, checkpoint_every=2, log_every=1, steps=3)
    run = train(cfg).run_dir
    # simulate a crash after step 3 was logged but before its checkpoint was written
    ckpt = run / "checkpoints"
    (ckpt / "step-000002.pt").replace(latest_checkpoint(run))
    resumed = train(with_settings(cfg, steps=4), resume=run)
    steps = [
        json.loads(x)["step"] for x in (resumed.run_dir / "stats.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4]


def test_resume_needs_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "config.yaml is missing" in capsys.readouterr().err


def test_resume_keeps_this_machines_optimiser_implementation(tiny_config: Config) -> None:
    """A checkpoint from an unfused Adam (an older version, another device) resumes fused
    where this device fuses, with its moments and step counts."""
    run = train(tiny_config).run_dir
    saved = load_checkpoint(latest_checkpoint(run))
    for group in saved.opt_g["param_groups"]:
        group["fused"], group["foreach"] = None, True
    state = build_state(tiny_config, torch.device("cpu"))
    restore(state, saved)
    assert all(g["fused"] and not g["foreach"] for g in state.opt_g.param_groups)
    moments = [s["exp_avg"] for s in state.opt_g.state.values()]
    assert len(moments) == len(list(state.generator.parameters()))
    assert all(float(s["step"]) == 4 for s in state.opt_g.state.values())
