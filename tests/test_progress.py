"""Progress bars: on a terminal each long command shows one; piped, none (nothing in logs)."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import torch

from conftest import TINY
from dcgan.images import save_png
from dcgan.progress import bar, is_terminal


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_and_a_pipe_nothing() -> None:
    tty, pipe = _Terminal(), io.StringIO()
    assert list(bar(range(5), desc="work", stream=tty)) == list(range(5))
    assert list(bar(range(5), desc="work", stream=pipe)) == list(range(5))
    assert "work" in tty.getvalue() and "/5 [" in tty.getvalue()
    assert pipe.getvalue() == ""


def test_short_work_shows_no_bar() -> None:
    tty = _Terminal()
    assert list(bar(range(3), stream=tty, delay=30)) == [0, 1, 2]
    assert tty.getvalue() == ""


def test_is_terminal_of_odd_streams() -> None:
    closed = io.StringIO()
    closed.close()  # its isatty raises
    assert not is_terminal(None) and not is_terminal(closed) and not is_terminal(object())
    assert is_terminal(_Terminal())


# ---------------------------------------------------------------------------- commands


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}


def _on_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """`dcgan argv` with stdout and stderr on a 100-column pseudo-terminal: code and output."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    cmd = [sys.executable, "-m", "dcgan", *argv]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=300), b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run on the bundled digits and a folder of 12 PNGs."""
    root = tmp_path_factory.mktemp("progress")
    flags = {**{k: v for sec in TINY.values() for k, v in sec.items()}, "dataset": "mnist-sample"}
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]
    done = subprocess.run(
        [sys.executable, "-m", "dcgan", "train", *argv, f"--out={root / 'runs'}"],
        env=_env(root),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    folder = root / "pictures"
    for i in range(12):
        save_png(torch.full((1, 20, 20), i * 20, dtype=torch.uint8), folder / f"{i:02d}.png")
    return root


COMMANDS = {
    "generating": "generate {run} --num 600 --batch-size 16 --out {tmp}/g",
    "Inception features": "ref-stats --dataset fake --image-size 16 --channels 1 --num-real 8 "
    "--out {tmp}/ref.npz",
    "decoding 12 images": "ref-stats --dataset folder --data-root {root}/pictures "
    "--image-size 16 --channels 1 --num-real 4 --out {tmp}/folder.npz",
    "linear probe": "probe {run} --labels-per-class 2 --draws 2",
    "nearest": "nearest {run} --num 2 --k 1 --pool 8 --out {tmp}/n.png",
}


@pytest.mark.slow
@pytest.mark.parametrize("desc", list(COMMANDS))
def test_long_commands_show_a_bar_on_a_terminal_only(workdir: Path, tmp_path: Path, desc: str):
    (run,) = sorted((workdir / "runs").glob("0*"))
    fill = {"run": str(run), "tmp": str(tmp_path), "root": str(workdir)}
    argv = COMMANDS[desc].format(**fill).split()
    shown = "Inception features" if desc == "nearest" else desc  # nearest's long part
    code, out = _on_terminal(argv, _env(tmp_path / "terminal"))  # each decodes afresh
    assert code == 0, out[-2000:]
    assert shown in out and "\r" in out, out[-2000:]
    argv = [a.replace(str(tmp_path), str(tmp_path / "piped")) for a in argv]
    piped = subprocess.run(
        [sys.executable, "-m", "dcgan", *argv],
        env=_env(tmp_path / "piped"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert piped.returncode == 0, piped.stderr[-2000:]
    assert shown not in piped.stderr and "\r" not in piped.stderr + piped.stdout
