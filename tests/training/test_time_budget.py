"""--max-minutes: the step the budget runs out at ends the run like its last step (stats
record, grid, checkpoint, export), and resume goes on to --steps exactly."""

import json
from itertools import count

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_flags, with_settings
from dcgan.cli import main
from dcgan.config import Config
from dcgan.errors import ConfigError
from dcgan.run.checkpoint import load_checkpoint
from dcgan.run.rundir import latest_checkpoint
from dcgan.run.status import run_status
from dcgan.training.guards import OUT_OF_TIME, TimeBudget
from dcgan.training.loop import train


@pytest.fixture
def minute_per_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reading of the budget's clock is one minute after the one before."""
    ticks = count()
    monkeypatch.setattr(TimeBudget, "clock", staticmethod(lambda: 60.0 * next(ticks)))


def test_budget_expires_after_its_minutes(minute_per_read: None) -> None:
    budget = TimeBudget(2.5)  # created at minute 0
    assert [budget.expired() for _ in range(3)] == [None, None, OUT_OF_TIME]
    assert TimeBudget(0.0).expired() is None  # 0: no limit


@pytest.mark.slow
def test_out_of_time_ends_like_the_last_step_and_resume_is_exact(
    tiny_config: Config, minute_per_read: None
) -> None:
    cfg = with_settings(tiny_config, deterministic=True, steps=6, checkpoint_every=100)
    straight = train(cfg)
    # minute 1 after step 1, 2 after step 2, 3 after step 3: the budget of 2.5 ends step 3
    cut = train(with_settings(cfg, max_minutes=2.5))
    assert (cut.step, cut.stopped_by) == (3, OUT_OF_TIME)
    run = cut.run_dir
    assert load_checkpoint(latest_checkpoint(run)).step == 3
    assert (run / "samples" / "step-000003.png").is_file()
    assert (run / "progress.gif").is_file() and (run / "losses.png").is_file()
    records = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 3 and records[-1]["ended_by"] == OUT_OF_TIME
    assert all("ended_by" not in r for r in records[:-1])
    log = (run / "log.txt").read_text()
    assert "stopped by max_minutes at step 3 of 6" in log
    status = run_status(run, run.parent)
    assert (status.state, status.step) == ("stopped", 3)
    exported = load_file(run / "generator.safetensors")  # G's average at step 3
    assert all(torch.equal(exported[k], v) for k, v in cut.sampler.state_dict().items())

    resumed = train(with_settings(cfg, max_minutes=0), resume=run)
    assert resumed.step == 6 and resumed.stopped_by is None
    a, b = straight.generator.state_dict(), resumed.generator.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_cli_exits_0_and_names_the_final_grid(
    tmp_path, minute_per_read: None, capsys: pytest.CaptureFixture
) -> None:
    assert main(["train", *tiny_flags(tmp_path, steps=50, max_minutes=2)]) == 0
    out = capsys.readouterr().out
    assert "final grid:" in out and "step-000002.png" in out


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), 1e9])
def test_bad_budgets_are_one_line_errors(tiny_config: Config, value: float) -> None:
    with pytest.raises(ConfigError, match="max_minutes"):
        with_settings(tiny_config, max_minutes=value)
