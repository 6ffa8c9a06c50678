"""Never lose work: signals, kills, divergence, failed writes and hostile files."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_flags, with_settings
from dcgan.cli import main
from dcgan.config import merge, validate
from dcgan.errors import CheckpointError, Diverged
from dcgan.run import checkpoint
from dcgan.run.checkpoint import load_checkpoint
from dcgan.run.rundir import latest_checkpoint, read_config, read_stats
from dcgan.training import loop
from dcgan.training.loop import train

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _launch(tmp_path: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dcgan", "train", *tiny_flags(tmp_path), *extra]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _run_dir(tmp_path: Path) -> Path | None:
    runs = sorted((tmp_path / "runs").glob("0*")) if (tmp_path / "runs").is_dir() else []
    return runs[0] if runs else None


def _wait_for_steps(tmp_path: Path, proc: subprocess.Popen, at_least: int) -> int | None:
    """Block until the run has logged `at_least` steps and return the last logged step, or
    None if the process ended first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        run = _run_dir(tmp_path)
        records = read_stats(run) if run else []
        if records and records[-1]["step"] >= at_least:
            return records[-1]["step"]
        time.sleep(0.02)
    assert proc.poll() is not None, f"the run stalled before step {at_least}"
    return None


def _latest_step(run: Path) -> int:
    return load_checkpoint(latest_checkpoint(run)).step


# ---------------------------------------------------------------------------- signals


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_signal_checkpoints_the_step_and_resume_continues(tmp_path: Path, sig, code) -> None:
    slow = ["--steps", "100000", "--log-every", "1", "--checkpoint-every", "100000"]
    proc = _launch(tmp_path, *slow, "--sample-every", "100000")
    sent_at = _wait_for_steps(tmp_path, proc, 3)
    assert sent_at is not None
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == code, out
    run = _run_dir(tmp_path)
    assert _latest_step(run) >= sent_at
    assert f"resume with: dcgan train --resume {run}" in out
    target = _latest_step(run) + 2
    assert main(["train", "--resume", str(run), "--steps", str(target)]) == 0
    assert _latest_step(run) == target


@pytest.mark.slow
def test_second_sigint_aborts_at_once_without_damage(tmp_path: Path) -> None:
    proc = _launch(tmp_path, "--steps", "100000", "--log-every", "1", "--checkpoint-every", "1")
    _wait_for_steps(tmp_path, proc, 3)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    run = _run_dir(tmp_path)
    assert _latest_step(run) >= 3  # loads: the abort left no half-written file behind
    assert not list(run.rglob(".*.tmp"))


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_an_unbroken_run(tmp_path: Path) -> None:
    steps, rng, kills = 80, random.Random(7), 0
    flags = ["--steps", str(steps), "--deterministic", "--checkpoint-every", "1"]
    flags += ["--log-every", "1", "--sample-every", "1000"]
    while kills < 12:
        run = _run_dir(tmp_path)
        done = _latest_step(run) if run and (latest_checkpoint(run)).exists() else 0
        proc = _launch(tmp_path, *flags) if run is None else _resume(run, flags)
        if _wait_for_steps(tmp_path, proc, done + rng.randint(2, 20)) is None:
            break  # finished before the moment drawn for the kill
        time.sleep(rng.uniform(0.0, 0.05))  # anywhere in a step, a checkpoint or a log write
        proc.kill()
        proc.wait()
        kills += 1
    proc.wait(timeout=60)
    assert proc.returncode == 0 and kills >= 3
    run = _run_dir(tmp_path)
    assert _latest_step(run) == steps
    cfg = merge(read_config(run), {"out": str(tmp_path / "unbroken")}, "test")
    unbroken = train(validate(cfg)).generator.state_dict()
    resumed = load_checkpoint(latest_checkpoint(run)).generator
    for key, value in unbroken.items():
        assert torch.equal(resumed[key], value), key


def _resume(run: Path, flags: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dcgan", "train", "--resume", str(run), *flags]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------------------- divergence


def _inject_nan_once(monkeypatch, at_step: int) -> None:
    """After step `at_step`, G's first weight becomes NaN (once)."""
    real_step, done = loop.train_step, []

    def step(state, *args):
        out = real_step(state, *args)
        if state.step == at_step and not done:
            done.append(True)
            state.generator.main[0].weight.data.fill_(float("nan"))
        return out

    monkeypatch.setattr(loop, "train_step", step)


def _all_checkpoints_finite(run: Path) -> None:
    for path in (run / "checkpoints").glob("*.pt"):
        for net in ("generator", "discriminator"):
            for value in getattr(load_checkpoint(path), net).values():
                assert not value.is_floating_point() or torch.isfinite(value).all(), path


@pytest.mark.slow
def test_nan_stops_the_run_naming_step_and_network(tiny_config, monkeypatch, capsys) -> None:
    _inject_nan_once(monkeypatch, at_step=5)
    with pytest.raises(Diverged, match=r"at step 6: .*nan.*generator") as caught:
        train(with_settings(tiny_config, steps=8))
    assert "--on-nan rollback" in str(caught.value)
    run = _run_dir(Path(tiny_config.output.out).parent)
    assert _latest_step(run) == 4
    _all_checkpoints_finite(run)
    assert all(r["step"] <= 4 for r in read_stats(run))


@pytest.mark.slow
def test_nan_in_the_cli_is_one_line_and_exit_1(tmp_path: Path, monkeypatch, capsys) -> None:
    _inject_nan_once(monkeypatch, at_step=3)
    assert main(["train", *tiny_flags(tmp_path), "--steps", "8"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the run's own log lines
    assert last.startswith("dcgan train: error: training diverged at step 4")


@pytest.mark.slow
def test_rollback_reloads_with_lower_lr_and_finishes(tiny_config, monkeypatch) -> None:
    _inject_nan_once(monkeypatch, at_step=5)
    result = train(with_settings(tiny_config, steps=8, on_nan="rollback"))
    assert result.step == 8
    _all_checkpoints_finite(result.run_dir)
    saved = load_checkpoint(latest_checkpoint(result.run_dir))
    assert saved.rollbacks == 1
    assert read_stats(result.run_dir)[-1]["lr_g"] == pytest.approx(tiny_config.train.lr * 0.5)
    assert "rolled back to step 4" in (result.run_dir / "log.txt").read_text()


@pytest.mark.slow
def test_rollback_lowers_the_decay_schedule_too(tiny_config, monkeypatch) -> None:
    _inject_nan_once(monkeypatch, at_step=5)
    cfg = with_settings(tiny_config, steps=8, on_nan="rollback", lr_decay=0.5, log_every=1)
    result = train(cfg)
    lr = {r["step"]: r["lr_g"] for r in read_stats(result.run_dir)}
    base = tiny_config.train.lr
    # step s logs the rate of update s-1: 1 until the last half, then (8 - (s-1)) / 4
    assert lr[4] == pytest.approx(base)
    assert lr[6] == pytest.approx(base * 0.5 * 3 / 4)  # after the rollback at step 6
    assert lr[8] == pytest.approx(base * 0.5 * 1 / 4)


@pytest.mark.slow
def test_rollbacks_are_limited(tiny_config, monkeypatch) -> None:
    real_step = loop.train_step

    def always_nan(state, *args):
        out = real_step(state, *args)
        state.discriminator.head.weight.data.fill_(float("inf"))
        return out

    monkeypatch.setattr(loop, "train_step", always_nan)
    with pytest.raises(Diverged, match="2 rollbacks spent"):
        train(with_settings(tiny_config, steps=8, on_nan="rollback", max_rollbacks=2))


# ---------------------------------------------------------------------------- writes


@pytest.mark.slow
def test_a_write_failing_half_way_keeps_the_previous_checkpoint(tiny_config, monkeypatch):
    real_write = checkpoint.atomic_write

    def disk_full_at_step_4(path, write):
        if Path(path).name == "step-000004.pt":

            def half(f):
                f.write(b"\0" * 100)
                raise OSError(errno.ENOSPC, "No space left on device")

            return real_write(path, half)
        return real_write(path, write)

    monkeypatch.setattr(checkpoint, "atomic_write", disk_full_at_step_4)
    with pytest.raises(CheckpointError, match=r"step 4 checkpoint .*No space left on device"):
        train(with_settings(tiny_config, steps=6))
    run = _run_dir(Path(tiny_config.output.out).parent)
    assert _latest_step(run) == 2
    assert not (run / "checkpoints" / "step-000004.pt").exists()
    assert not list(run.rglob(".*.tmp"))


@pytest.mark.slow
def test_a_stats_line_cut_short_by_a_kill_is_dropped_on_resume(tiny_config) -> None:
    run = train(tiny_config).run_dir
    with (run / "stats.jsonl").open("a") as f:
        f.write('{"step": 6, "loss_')
    assert main(["train", "--resume", str(run), "--steps", "6"]) == 0
    assert [r["step"] for r in read_stats(run)] == [2, 4, 6]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_output_directory_is_refused_before_training(tmp_path: Path, capsys) -> None:
    out = tmp_path / "locked"
    out.mkdir(mode=0o500)
    assert main(["train", *tiny_flags(tmp_path), "--out", str(out)]) == 2
    assert "not writable" in capsys.readouterr().err


# ---------------------------------------------------------------------------- hostile files


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.slow
def test_a_checkpoint_carrying_code_is_refused_and_never_run(tiny_config, tmp_path, capsys):
    run = train(tiny_config).run_dir
    marker = tmp_path / "pwned"
    torch.save({"format_version": 1, "step": _Payload(marker)}, latest_checkpoint(run))
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        load_checkpoint(latest_checkpoint(run))
    # refused, and the resume continues from the newest kept checkpoint that loads
    assert main(["train", "--resume", str(run), "--steps", "6"]) == 0
    err = capsys.readouterr().err
    assert "cannot load checkpoint" in err and "resumed from step-000004.pt" in err
    assert not marker.exists()
    for kept in (run / "checkpoints").glob("step-*.pt"):
        kept.unlink()
    torch.save({"format_version": 1, "step": _Payload(marker)}, latest_checkpoint(run))
    assert main(["train", "--resume", str(run), "--steps", "8"]) == 2
    err = capsys.readouterr().err
    assert "none of its checkpoints loads (cannot load checkpoint" in err
    assert err.count("\n") == 1 and not marker.exists()


def test_reference_stats_with_pickled_objects_are_refused(tmp_path: Path) -> None:
    from dcgan.evaluation.reference import load_reference

    path = tmp_path / "stats.npz"
    np.savez(path, feats=np.array([_Payload(tmp_path / "pwned")], dtype=object))
    with pytest.raises(Exception, match=str(path.name)) as caught:
        load_reference(path)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "pwned").exists()


def test_unknown_checkpoint_version_is_a_clear_error(tiny_config) -> None:
    run = train(tiny_config).run_dir
    path = latest_checkpoint(run)
    torch.save({**load_checkpoint(path).to_dict(), "format_version": 99}, path)
    with pytest.raises(CheckpointError, match="format version 99; this dcgan reads version 1"):
        load_checkpoint(path)
