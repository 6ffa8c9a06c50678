"""No run lost to one bad file: a damaged latest.pt falls back to the newest intact kept
checkpoint (and the resume stays bitwise exact), --from-step picks a kept one, and a config.yaml
that no longer matches its checkpoints is refused or rebuilt from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import with_settings
from dcgan.cli import main
from dcgan.config import Config
from dcgan.run.checkpoint import load_checkpoint
from dcgan.run.rundir import latest_checkpoint, read_config
from dcgan.training.loop import train


@pytest.fixture
def exact(tiny_config: Config) -> Config:
    return with_settings(tiny_config, deterministic=True, log_every=2, checkpoint_every=2)


def _stats(run: Path) -> dict[int, dict]:
    rows = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    return {r["step"]: {k: v for k, v in r.items() if k != "images_per_s"} for r in rows}


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_cut_latest_checkpoint_resumes_from_the_newest_kept_one_exactly(
    exact: Config, capsys: pytest.CaptureFixture
) -> None:
    straight = train(with_settings(exact, steps=6))
    run = train(with_settings(exact, steps=3)).run_dir  # kept: step 2; latest.pt: step 3
    latest = latest_checkpoint(run)
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "6"]) == 0
    err = capsys.readouterr().err
    note = [line for line in err.splitlines() if "newest intact checkpoint" in line]
    assert len(note) == 1 and "cannot load checkpoint" in note[0] and str(latest) in note[0]
    assert "resumed from step-000002.pt" in note[0] and "after step 2 are dropped" in note[0]
    assert "newest intact checkpoint (step 2)" in (run / "log.txt").read_text()
    resumed = load_checkpoint(latest)
    assert resumed.step == 6
    assert _same_weights(resumed.generator, straight.generator.state_dict())
    assert _same_weights(resumed.discriminator, straight.discriminator.state_dict())
    assert _stats(run) == _stats(straight.run_dir)  # step 3's row was dropped with its steps


@pytest.mark.slow
def test_no_intact_checkpoint_is_one_line_saying_what_was_found(
    exact: Config, capsys: pytest.CaptureFixture
) -> None:
    run = train(exact).run_dir
    for path in (run / "checkpoints").glob("*.pt"):
        path.write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "6"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"dcgan train: error: cannot resume {run}")
    for name in ("latest.pt", "step-000004.pt", "step-000002.pt"):
        assert name in err
    assert "dcgan train --config" in err


@pytest.mark.slow
def test_a_missing_latest_checkpoint_also_falls_back(exact: Config) -> None:
    run = train(exact).run_dir
    latest_checkpoint(run).unlink()
    assert train(with_settings(exact, steps=6), resume=run).step == 6
    assert "latest.pt does not exist; resumed from step-000004.pt" in (run / "log.txt").read_text()


@pytest.mark.slow
def test_from_step_continues_from_a_kept_checkpoint_exactly(
    exact: Config, capsys: pytest.CaptureFixture
) -> None:
    straight = train(with_settings(exact, steps=6))
    run = train(with_settings(exact, steps=6)).run_dir
    assert main(["train", "--resume", str(run), "--from-step", "2", "--steps", "6"]) == 0
    assert load_checkpoint(latest_checkpoint(run)).step == 6
    assert _same_weights(
        load_checkpoint(latest_checkpoint(run)).generator, straight.generator.state_dict()
    )
    assert list(_stats(run)) == [2, 4, 6]  # cut back to step 2, then logged again
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--from-step", "3"], "--from-step: {run} kept no checkpoint of step 3 "),
        (["--from-step", "3"], "kept steps: 2, 4"),
        (["--from-step", "-1"], "--from-step: -1 needs --resume RUN and a step >= 0"),
    ],
)
@pytest.mark.slow
def test_from_step_errors(
    exact: Config, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    run = train(exact).run_dir
    capsys.readouterr()
    assert main(["train", "--resume", str(run), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(run=run) in err


def test_from_step_needs_resume(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--from-step", "2", "--dry-run"]) == 2
    assert "needs --resume RUN" in capsys.readouterr().err


@pytest.mark.slow
def test_a_damaged_kept_checkpoint_named_by_from_step_is_one_line(
    exact: Config, capsys: pytest.CaptureFixture
) -> None:
    run = train(exact).run_dir
    kept = run / "checkpoints" / "step-000002.pt"
    kept.write_bytes(kept.read_bytes()[:-10])
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--from-step", "2", "--steps", "6"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot load checkpoint {kept}" in err


@pytest.mark.slow
def test_a_damaged_config_yaml_is_rebuilt_from_the_checkpoint(
    exact: Config, capsys: pytest.CaptureFixture
) -> None:
    run = train(exact).run_dir
    good = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(good[: len(good) // 2] + "\n\t: [")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "5"]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "rewrote it from the settings saved in" in err
    assert read_config(run) == with_settings(read_config(run), steps=5)
    assert load_checkpoint(latest_checkpoint(run)).step == 5


@pytest.mark.slow
def test_a_config_yaml_that_disagrees_with_its_checkpoint_is_refused(
    exact: Config, capsys: pytest.CaptureFixture
) -> None:
    run = train(exact).run_dir
    path = run / "config.yaml"
    path.write_text(path.read_text().replace("lr: 0.0002", "lr: 0.0003"))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "6"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "train.lr is 0.0003 but" in err and "was trained with 0.0002; set it back" in err


@pytest.mark.slow
def test_a_latest_checkpoint_whose_settings_do_not_fit_its_weights_falls_back(
    exact: Config, capsys: pytest.CaptureFixture
) -> None:
    """Settings of 512 px at width 8192 would ask for terabytes: the checkpoint is refused on
    a meta-device copy, before any allocation, and the newest intact one is used."""
    straight = train(with_settings(exact, steps=6))
    run = train(with_settings(exact, steps=3)).run_dir
    latest = latest_checkpoint(run)
    saved = torch.load(latest, weights_only=True)
    saved["config"]["model"] |= {"image_size": 512, "ngf": 8192}
    torch.save(saved, latest)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "6"]) == 0
    note = [x for x in capsys.readouterr().err.splitlines() if "newest intact" in x]
    assert len(note) == 1 and "its generator settings do not fit its weights" in note[0]
    assert _same_weights(load_checkpoint(latest).generator, straight.generator.state_dict())
