"""`dcgan runs`: the runs under a root, each in its right state, damaged ones included."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from conftest import TINY, with_settings
from dcgan.cli import main
from dcgan.config import Config, merge, validate
from dcgan.errors import Diverged
from dcgan.run.status import ACTIVE_SECONDS, find_runs, list_runs
from dcgan.training import loop
from dcgan.training.loop import train


def _at_step(monkeypatch, step: int, action) -> None:
    """Call `action(state)` after the training step that reaches `step`."""
    real_step = loop.train_step

    def step_then_act(state, *args):
        out = real_step(state, *args)
        if state.step == step:
            action(state)
        return out

    monkeypatch.setattr(loop, "train_step", step_then_act)


def _nan(state) -> None:
    state.generator.main[0].weight.data.fill_(float("nan"))


def _age(run: Path, seconds: float) -> None:
    """Make every file of `run` look `seconds` old."""
    then = time.time() - seconds
    for path in [run, *run.rglob("*")]:
        os.utime(path, (then, then))


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with a finished, a stopped (SIGTERM), a diverged and damaged runs, in
    subdirectories of their own."""
    root = tmp_path_factory.mktemp("root")
    mp = pytest.MonkeyPatch()
    base = validate(merge(Config(), TINY, "test"))

    def run(where: str, **settings) -> Path:
        cfg = with_settings(base, out=str(root / where), **settings)
        return train(cfg).run_dir

    try:
        finished = run("done", steps=4)
        _at_step(mp, 3, lambda state: os.kill(os.getpid(), signal.SIGTERM))
        stopped = run("stopped", steps=8)
        mp.undo()
        _at_step(mp, 3, _nan)
        with pytest.raises(Diverged):
            run("nan", steps=8)
    finally:
        mp.undo()
    diverged = next((root / "nan").glob("0*"))
    for name in ("bad-config", "bad-stats"):
        shutil.copytree(finished, root / "damaged" / name)
    (root / "damaged" / "bad-config" / "config.yaml").write_bytes(b"\xff\xfe: [unclosed\n")
    with (root / "damaged" / "bad-stats" / "stats.jsonl").open("r+b") as f:
        f.write(b'{"step": 2, oops\n')
    for path in (finished, stopped, diverged, *(root / "damaged").iterdir()):
        _age(path, 2 * ACTIVE_SECONDS)
    (root / "notes").mkdir()  # not a run: passed over
    (root / "notes" / "stats.jsonl").write_text("{}\n")
    return root


@pytest.mark.slow
def test_each_run_is_found_with_its_state(runs_root: Path) -> None:
    rows = {r.run: r for r in list_runs(runs_root)}
    names = sorted(rows)
    assert len(names) == 5, names
    by_dir = {name.split("/")[0] + "/" + name.split("/")[1]: rows[name] for name in names}
    assert by_dir["done/00000-fake-16"].state == "finished"
    assert by_dir["stopped/00000-fake-16"].state == "stopped"
    assert by_dir["nan/00000-fake-16"].state == "diverged"
    assert by_dir["damaged/bad-config"].state == "damaged"
    assert "config.yaml" in by_dir["damaged/bad-config"].problem
    # a damaged stats line is skipped and named; the run's state still comes from its log
    assert by_dir["damaged/bad-stats"].state == "finished"
    assert "stats.jsonl: line 1 skipped (not JSON)" in by_dir["damaged/bad-stats"].problem


def test_progress_losses_and_config_are_read(runs_root: Path) -> None:
    rows = {r.run.split("/")[0]: r for r in list_runs(runs_root) if "damaged" not in r.run}
    done, stopped = rows["done"], rows["stopped"]
    assert (done.dataset, done.image_size, done.step, done.planned) == ("fake", 16, 4, 4)
    assert done.loss_d is not None and done.loss_g is not None and done.best_fid is None
    assert (stopped.step, stopped.planned) == (3, 8)  # the step the signal stopped it at


def test_a_run_changing_now_with_no_end_is_running(runs_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "live"
    shutil.copytree(next((runs_root / "stopped").glob("0*")), run)
    with (run / "log.txt").open("a") as f:  # a resume that has begun and not ended
        f.write(f"2030-01-01 00:00:00 run {run}: 64 images, 8 steps/epoch, steps 3->12, ...\n")
    (row,) = list_runs(tmp_path)
    assert (row.state, row.planned) == ("running", 12)
    (row,) = list_runs(tmp_path, now=time.time() + 2 * ACTIVE_SECONDS)
    assert row.state == "interrupted"  # nothing changed for long: killed, or crashed


def test_the_table_shows_each_run_and_the_damage(runs_root: Path, capsys) -> None:
    assert main(["runs", str(runs_root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["run", "dataset", "size"]
    states = {line.split()[0]: line.split()[-1] for line in out[1:6]}
    assert states["damaged/bad-config"] == "damaged"
    assert sorted(states.values()) == ["damaged", "diverged", "finished", "finished", "stopped"]
    assert any(line.startswith("damaged/bad-stats: ") for line in out[6:])
    done = next(line for line in out if line.startswith("done/"))
    assert " 4/4 " in done and " fake " in done


def test_json_and_sort(runs_root: Path, capsys) -> None:
    assert main(["runs", str(runs_root), "--json", "--sort", "state"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["state"] for r in rows] == ["finished", "finished", "stopped", "diverged", "damaged"]
    assert all({"run", "step", "planned", "loss_d", "loss_g", "best_fid"} <= set(r) for r in rows)
    assert main(["runs", str(runs_root), "--sort", "step"]) == 0


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("config.yaml", b""),
        ("config.yaml", b"model: 3\n"),
        ("config.yaml", b"\x00\x01\x02"),
        ("stats.jsonl", b"\x00" * 50 + b"\n{}\n"),
        ("stats.jsonl", b'{"step": "x"}\n{"step": 1}\n'),
        ("log.txt", b"\xff\xfe\x00 run x: steps 1->zz,\n"),
    ],
)
def test_damaged_files_never_crash(runs_root: Path, tmp_path: Path, capsys, name, data) -> None:
    run = tmp_path / "r"
    shutil.copytree(next((runs_root / "done").glob("0*")), run)
    (run / name).write_bytes(data)
    assert main(["runs", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["runs", str(tmp_path), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["state"] in ("damaged", "finished", "running")  # just written: no end logged


def test_a_run_directory_as_root_and_an_empty_root(runs_root: Path, tmp_path, capsys) -> None:
    done = next((runs_root / "done").glob("0*"))
    assert find_runs(done) == [done]
    assert main(["runs", str(tmp_path)]) == 0
    assert "no runs under" in capsys.readouterr().out
    assert main(["runs", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
