"""`dcgan report`: one self-contained HTML page per run, whatever state its files are in."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcgan.cli import main
from dcgan.config import Config
from dcgan.fsio import append_jsonl
from dcgan.run.report import write_report
from dcgan.training.loop import train

SECTIONS = (
    "Settings",
    "Training curves",
    "Samples over time",
    "Latest samples",
    "Metrics",
    "Nearest neighbours in the training set",
    "Latent space",
)
CHROMIUM = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome", "chrome") if shutil.which(b)),
    None,
)


@pytest.fixture
def run(tiny_config: Config) -> Path:
    """A tiny trained run with an evaluate record, an interpolation and a nearest grid."""
    run = train(tiny_config).run_dir
    record = {"command": "evaluate", "metrics": {"fid": 321.5}, "num_samples": 50}
    append_jsonl(run / "metrics.jsonl", {**record, "reference": {"dataset": "fake", "count": 9}})
    grid = run / "samples" / "step-000004.png"
    shutil.copy(grid, run / "interpolation.png")
    shutil.copy(grid, run / "nearest.png")
    return run


@pytest.mark.slow
def test_report_holds_every_section_and_no_link_out(run: Path, capsys) -> None:
    assert main(["report", str(run)]) == 0
    assert "wrote" in capsys.readouterr().out
    page = (run / "report.html").read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
    assert "321.5" in page and "step 4" in page and "batch_size: 8" in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 6
    assert not re.search(r'(src|href)="(?!data:)', page)  # no file, no network
    assert 'class="note"' not in page


@pytest.mark.slow
def test_damaged_files_are_sections_not_tracebacks(run: Path) -> None:
    (run / "config.yaml").write_text("model: [unclosed")
    (run / "stats.jsonl").write_bytes(b'{"step": 1, "loss_g": 1.0}\nnot json\n{"step": 2}\n')
    (run / "nearest.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (run / "metrics.jsonl").write_bytes(b"\xff\xfe\n")
    shutil.rmtree(run / "samples")
    path, problems = write_report(run)
    page = path.read_text()
    assert problems >= 4
    assert "config.yaml is damaged" in page and "nearest.png is damaged" in page
    assert "no preview grids" in page and "line 2 skipped (not JSON)" in page


def test_not_a_directory_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RUN:" in err


@pytest.mark.slow
def test_out_must_be_html_so_no_run_file_is_overwritten(run: Path, capsys) -> None:
    before = (run / "generator.safetensors").read_bytes()
    assert main(["report", str(run), "--out", str(run / "generator.safetensors")]) == 2
    assert "the report is a .html file" in capsys.readouterr().err
    assert (run / "generator.safetensors").read_bytes() == before


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary")
def test_report_renders_in_chromium(run: Path, tmp_path: Path) -> None:
    path, _ = write_report(run)
    shot = tmp_path / "shot.png"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # tests may run as root
        "--disable-gpu",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        path.resolve().as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2000, 1200)
    assert pixels.var() > 100  # text, tables and pictures, not a blank page
    assert (pixels < 64).mean() > 0.01  # dark sample grids were drawn


@pytest.mark.slow
def test_a_huge_picture_or_a_fifo_is_named_not_read(run: Path, tmp_path: Path) -> None:
    import os

    huge = run / "samples" / "step-999999.png"  # sparse: 3 GB that take no disk
    with open(huge, "wb") as f:
        f.truncate(3 * 2**30)
    os.mkfifo(run / "samples" / "step-999998.png")
    path, _ = write_report(run, tmp_path / "r.html")
    page = path.read_text()
    assert "step-999999.png is 3072 MiB, more than 8 MiB" in page
    assert "step-999998.png is not a regular file" in page
