"""The run directory: stats.jsonl is read record by record (a damaged line is skipped and named,
never fatal), and the preview grids are listed in step order."""

import json
from pathlib import Path

import pytest

from conftest import with_settings
from dcgan.cli import main
from dcgan.config import Config
from dcgan.errors import Recovered
from dcgan.run.rundir import (
    SAMPLES_DIR,
    latest_preview,
    preview_grids,
    preview_path,
    read_stats,
    stats_problem,
)
from dcgan.training.loop import train


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"step": 2, "loss_d": 1.5, "ended_by": "max_minutes"}, None),
        ({"step": 2, "loss_d": 10**400}, "'loss_d' is an integer of 1329 bits"),
        ({"step": 2, "images_seen": "x"}, "'images_seen' is 'x'"),
        ({"step": 2, "loss_g": None}, "'loss_g' is None"),
        ({"step": 2, "loss_g": True}, "'loss_g' is True"),
        ({"step": 2, "loss_g": [1.0]}, "'loss_g' is [1.0]"),
        ({"step": 2, "ended_by": "x" * 1000}, "'ended_by' is 'xxx"),
        ({"step": "2"}, "no step count"),
        ({"step": 2**64}, "no step count"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_stats_problem_names_the_field(record: object, problem: str | None) -> None:
    found = stats_problem(record)
    assert found == problem if problem is None else found.startswith(problem)


def _damage(run: Path) -> list[dict]:
    """Put a huge number and a word where numbers belong on the first two of four records."""
    path = run / "stats.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[0]["loss_d"], records[1]["images_seen"] = 10**400, "x"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


@pytest.mark.slow
def test_damaged_stats_are_skipped_by_every_reader(
    tiny_config: Config, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = with_settings(tiny_config, steps=8, log_every=2, checkpoint_every=4)
    run = train(with_settings(cfg, steps=4)).run_dir
    _damage(run)
    with pytest.warns(Recovered, match=r"line 1 skipped \('loss_d' is an integer of 1329 bits\)"):
        kept = read_stats(run)
    assert [r["step"] for r in kept] == []  # both records of the 4-step run are damaged
    assert main(["runs", str(run.parent)]) == 0  # the problem under the table
    out = capsys.readouterr().out
    assert "line 1 skipped ('loss_d' is an integer of 1329 bits)" in out and "(and 1 more)" in out
    for argv in (
        ["report", str(run), "--out", str(tmp_path / "r.html")],
        ["export", str(run), "--format", "safetensors", "--out", str(tmp_path / "g.safetensors")],
    ):
        assert main(argv) == 0, argv
        assert "line 2 skipped ('images_seen' is 'x')" in capsys.readouterr().err
    with pytest.warns(Recovered):
        resumed = train(cfg, resume=run)  # its checkpoints and card read the stats again
    assert resumed.step == 8
    assert [r["step"] for r in read_stats(run)] == [6, 8]


def test_preview_grids_come_in_step_order_past_six_digits(tmp_path: Path) -> None:
    """Grids are named by step in six digits; a run past 999,999 steps still lists them oldest
    first (by number, not name), and other files in samples/ are not grids."""
    for step in (999_999, 1_000_000, 500):
        path = preview_path(tmp_path, step)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"png")
    (tmp_path / SAMPLES_DIR / "step-notes.txt").write_text("not a grid")
    grids = preview_grids(tmp_path)
    assert list(grids) == [500, 999_999, 1_000_000]
    assert grids[500].name == "step-000500.png"
    assert latest_preview(tmp_path) == (1_000_000, grids[1_000_000])
    assert latest_preview(tmp_path / "empty") is None
