"""`--tensorboard`: the events, read back with TensorBoard's own reader, hold a run's stats,
FID, preview grids and settings; a resumed or rolled-back run shows no step twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import tiny_flags, with_settings
from dcgan.cli import main
from dcgan.config import Config
from dcgan.run.rundir import read_stats
from dcgan.run.tensorboard import TENSORBOARD_DIR, Board, hparams_of, tag
from dcgan.training import loop
from dcgan.training.loop import train


def _events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run / TENSORBOARD_DIR), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def _steps(acc: EventAccumulator, name: str) -> list[int]:
    return [e.step for e in acc.Scalars(name)]


def _image_steps(acc: EventAccumulator) -> list[int]:
    return [e.step for e in acc.Images("samples")]


@pytest.mark.slow
def test_a_run_logs_every_stats_field_its_grids_and_its_settings(tiny_config: Config) -> None:
    run = train(with_settings(tiny_config, tensorboard=True, steps=6)).run_dir
    acc, records = _events(run), read_stats(run)
    assert [r["step"] for r in records] == [2, 4, 6]
    for key in records[-1]:
        if key != "step":
            assert _steps(acc, tag(key)) == [2, 4, 6], key
    values = {e.step: e.value for e in acc.Scalars("loss/loss_g")}
    assert values[4] == pytest.approx(records[1]["loss_g"])
    assert _image_steps(acc) == [0, 2, 4, 6]  # the step-0 grid too
    image = acc.Images("samples")[-1]
    assert (image.width, image.height) == (4 * 18 + 2, 4 * 18 + 2)  # 16 tiles of 16 px
    assert acc.Scalars("final/loss_d")[-1].value == pytest.approx(records[-1]["loss_d"])
    hparams = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"train.batch_size" in hparams["_hparams_/session_start_info"]


@pytest.mark.slow
def test_fid_is_logged_when_measured(tiny_config: Config, monkeypatch) -> None:
    # the Inception network is not what is tested here: a fake FID of the step
    from dcgan.training import start

    class FakeTracker:
        calls = 0

        def __call__(self, generator) -> float:
            self.calls += 1
            return 10.0 / self.calls

    monkeypatch.setattr(start, "make_tracker", lambda *args: FakeTracker())
    cfg = with_settings(tiny_config, tensorboard=True, steps=4, eval_every=2)
    run = train(cfg).run_dir
    acc = _events(run)
    assert [(e.step, e.value) for e in acc.Scalars("fid/fid")] == [(2, 10.0), (4, 5.0)]
    assert _steps(acc, "fid/best_fid") == [2, 4]
    assert acc.Scalars("final/best_fid")[-1].value == pytest.approx(5.0)


@pytest.mark.slow
def test_resume_from_an_earlier_step_shows_no_step_twice(tiny_config: Config) -> None:
    cfg = with_settings(tiny_config, tensorboard=True, steps=8, checkpoint_every=4)
    run = train(cfg).run_dir
    train(with_settings(cfg, steps=10), resume=run, from_step=4)  # steps 5-8 again, then 9-10
    acc = _events(run)
    stats_steps = [r["step"] for r in read_stats(run)]
    assert stats_steps == [2, 4, 6, 8, 10]
    assert _steps(acc, "loss/loss_g") == stats_steps
    assert _steps(acc, "run/images_seen") == stats_steps
    assert _image_steps(acc) == [0, 2, 4, 6, 8, 10]
    assert [e.step for e in acc.Scalars("final/loss_g")] == [10]  # the first end's is purged
    assert len(list((run / TENSORBOARD_DIR).glob("events.out.tfevents.*"))) == 2


@pytest.mark.slow
def test_resume_without_tensorboard_before_starts_its_log(tiny_config: Config) -> None:
    run = train(with_settings(tiny_config, steps=4)).run_dir
    assert not (run / TENSORBOARD_DIR).exists()
    train(with_settings(tiny_config, steps=6, tensorboard=True), resume=run)
    assert _steps(_events(run), "loss/loss_g") == [6]


@pytest.mark.slow
def test_a_rollback_drops_the_steps_it_redoes(tiny_config: Config, monkeypatch) -> None:
    real_step = loop.train_step

    def nan_once(state, *args):
        out = real_step(state, *args)
        if state.step == 5 and not nan_once.done:
            nan_once.done = True
            state.generator.main[0].weight.data.fill_(float("nan"))
        return out

    nan_once.done = False
    monkeypatch.setattr(loop, "train_step", nan_once)
    cfg = with_settings(tiny_config, steps=8, on_nan="rollback", log_every=1, tensorboard=True)
    run = train(cfg).run_dir
    stats_steps = [r["step"] for r in read_stats(run)]
    assert _steps(_events(run), "loss/loss_g") == stats_steps == list(range(1, 9))


def test_missing_package_is_one_line_before_any_work(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` fails
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    assert main(["train", *tiny_flags(tmp_path), "--tensorboard"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--tensorboard" in err and "pip install 'dcgan[tensorboard]'" in err
    assert not (tmp_path / "runs").exists()  # refused before the run directory was made


def test_without_a_writer_every_call_does_nothing(tiny_config: Config) -> None:
    board = Board()  # the board of a run without --tensorboard, and of every rank but 0
    board.record({"step": 1, "loss_d": 1.0})
    board.reopen(1)
    board.finish(tiny_config, 1, None)
    board.close()
    assert board.writer is None


def test_settings_become_plain_hparams(tiny_config: Config) -> None:
    flat = hparams_of(tiny_config)
    assert flat["train.batch_size"] == 8 and flat["output.tensorboard"] is False
    assert flat["train.steps"] == 4 and flat["train.betas_g"] == "None"
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())


@pytest.mark.slow
def test_under_torchrun_only_rank_0_writes(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "dcgan", "train", *tiny_flags(tmp_path), "--tensorboard"]
    done = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = sorted((tmp_path / "runs").glob("0*"))
    assert len(list((run / TENSORBOARD_DIR).glob("events.out.tfevents.*"))) == 1
    assert _steps(_events(run), "loss/loss_g") == [2, 4]
