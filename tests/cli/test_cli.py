"""The command line through its real entry points."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_flags


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning:dcgan"}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_python_m_dcgan_trains_and_generates(tmp_path: Path) -> None:
    done = _run(sys.executable, "-m", "dcgan", "train", *tiny_flags(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "00000-fake-16"
    assert f"run directory: {run}" in done.stdout
    assert "step 4" in done.stderr  # plain log lines when not a terminal
    gen = _run(
        sys.executable,
        "-m",
        "dcgan",
        "generate",
        str(run),
        "--num",
        "3",
        "--out",
        "imgs",
        cwd=tmp_path,
    )
    assert gen.returncode == 0, gen.stderr
    assert len(list((tmp_path / "imgs").glob("*.png"))) == 3


@pytest.mark.slow
def test_console_script_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("dcgan")
    done = _run(str(script), "train", "--image-size", "48", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "image_size: 48" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_summary_command(tmp_path: Path) -> None:
    done = _run(
        sys.executable,
        "-m",
        "dcgan",
        "summary",
        "--image-size",
        "64",
        "--channels",
        "3",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "(1, 3, 64, 64)" in done.stdout and "Discriminator" in done.stdout


class _Left(Exception):
    """Raised by the stand-in for os._exit, carrying its code."""


@pytest.mark.parametrize(
    ("stopped_by", "rank", "code"), [(None, 0, 0), (None, 1, 0), ("SIGINT", 1, 130)]
)
def test_a_torchrun_worker_leaves_without_torchs_teardown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, stopped_by, rank, code
) -> None:
    """Under torchrun, a finished or stopped run ends with os._exit(its code) after flushing,
    so torch's C++ teardown at interpreter exit cannot turn it into a failed worker."""
    import types

    from dcgan.cli import main
    from dcgan.training import loop

    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "step-000004.png").write_bytes(b"")
    result = types.SimpleNamespace(stopped_by=stopped_by, run_dir=tmp_path)
    monkeypatch.setattr(loop, "train", lambda cfg, resume=None, from_step=None: result)
    env = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def leave(status: int) -> None:
        raise _Left(status)

    monkeypatch.setattr(os, "_exit", leave)
    with pytest.raises(_Left) as left:
        main(["train", *tiny_flags(tmp_path)])
    assert left.value.args == (code,)
    assert ("final grid:" in capsys.readouterr().out) == (rank == 0 and stopped_by is None)
    for name in env:
        monkeypatch.delenv(name)
    assert main(["train", *tiny_flags(tmp_path)]) == code  # outside torchrun: a plain return
