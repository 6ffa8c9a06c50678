"""The run's appended files are opened without following links or waiting on FIFOs."""

import json
import os
from pathlib import Path

import pytest

from dcgan.errors import ConfigError
from dcgan.fsio import append_jsonl, open_append
from dcgan.run.reporting import RunLogger


def test_append_jsonl_appends_and_ends_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "stats.jsonl"
    path.write_bytes(b'{"step": 1}\n{"step": 2, "lo')  # a kill mid-append
    append_jsonl(path, {"step": 3})
    assert path.read_bytes().splitlines()[-1] == json.dumps({"step": 3}).encode()


def test_a_link_is_never_followed_for_appending(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("kept\n")
    link = tmp_path / "stats.jsonl"
    link.symlink_to(victim)
    with pytest.raises(ConfigError, match=r"stats\.jsonl: a link or special file"):
        append_jsonl(link, {"step": 1})
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError, match="a link or special file"):
        open_append(loop)
    assert victim.read_text() == "kept\n"


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "log.txt"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"log\.txt: a link or special file"):
        open_append(fifo)  # no reader: without O_NONBLOCK this would wait for ever


def test_the_run_log_refuses_a_planted_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("kept\n")
    (tmp_path / "log.txt").symlink_to(victim)
    with pytest.raises(ConfigError, match=r"log\.txt"):
        RunLogger(tmp_path, 10, 0)
    assert victim.read_text() == "kept\n"


def test_the_run_log_writes_any_bytes_of_a_name(tmp_path: Path) -> None:
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/run-\xff"))
    odd.mkdir()
    log = RunLogger(odd, 10, 0)
    log.info(f"run {odd}: starting")
    log.close()
    assert b"/run-\\udcff: starting" in (odd / "log.txt").read_bytes()  # escaped, not lost
