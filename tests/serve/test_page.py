"""The page as a user drives it: `dcgan serve` in its own process, headless Chromium through
Playwright, two images clicked, the slider moved; the picture shown is, pixel for pixel, the one
`dcgan interpolate` makes for those indices. Marked browser (`make test-browser`); skipped
without Chromium or Playwright."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_flags
from dcgan import latent
from dcgan.cli import main
from dcgan.images import read_png
from dcgan.run.sources import load_sampler

S = 32  # the served model's image size
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)"),
]

# Reads the shown picture's pixels (RGBA) back from the page.
PIXELS = """() => {
  const img = document.getElementById("current");
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  return Array.from(ctx.getImageData(0, 0, canvas.width, canvas.height).data);
}"""


@pytest.fixture
def served(tmp_path: Path):
    assert main(["train", *tiny_flags(tmp_path, image_size=S, steps=6)]) == 0
    run = next((tmp_path / "runs").glob("0*"))
    cmd = [sys.executable, "-m", "dcgan", "serve", str(run), "--port", "0", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://\S+", line)
        assert url, line + proc.stderr.read()
        yield run, url.group(0)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_click_two_images_and_slide_shows_the_interpolate_commands_images(served, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    run, url = served
    sheet_path = tmp_path / "path.png"  # what the command shown on the page writes
    argv = ["interpolate", str(run), "3:6", "--steps", "9", "--seed", "2"]
    assert main([*argv, "--out", str(sheet_path)]) == 0
    sheet = read_png(sheet_path)
    source = latent.Latents(load_sampler(run).generator, seed=2)
    expected = latent.interpolate(source, [(3, 6)], 9, "slerp")[0]
    for k in range(9):  # the sheet's tiles, S + 2 apart after the row label's margin
        left = sheet.shape[2] - (9 - k) * (S + 2)
        assert torch.equal(sheet[:, 2 : 2 + S, left : left + S], expected[k])
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(url)
        page.wait_for_selector("#grid figure img")
        # a seed typed and not confirmed: the click blurs it, the grid redraws, and the click
        # must still count
        page.fill("#seed", "2")
        page.click("#grid figure[data-index='3']")
        page.click("#grid figure[data-index='6']")
        page.wait_for_function("document.getElementById('caption').textContent.includes('1 of 9')")
        for k in (0, 4, 8):
            page.fill("#slider", str(k))  # sets the range's value and fires input
            page.wait_for_function(
                f"document.getElementById('caption').textContent.includes('{k + 1} of 9')"
            )
            page.wait_for_function("document.getElementById('current').complete")
            rgba = torch.tensor(page.evaluate(PIXELS), dtype=torch.uint8).view(S, S, 4)
            assert torch.equal(rgba[:, :, 0], expected[k][0]), k  # grey: R = G = B
        command = page.text_content("#command")
        assert command.startswith(f"dcgan interpolate {run} 3:6 --steps 9 --method slerp --seed 2")
        page.screenshot(path=str(tmp_path / "serve.png"))
        browser.close()
    assert (tmp_path / "serve.png").stat().st_size > 10_000
