"""The model card beside every generator export holds the run's real figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dcgan import DCGAN
from dcgan.cli.common import report
from dcgan.config import Config
from dcgan.fsio import append_jsonl
from dcgan.run.card import refresh_card
from dcgan.run.rundir import read_config, read_stats
from dcgan.training.loop import train

EVALUATED = {
    "metrics": {"fid": 123.456789, "kid_mean": 0.012345, "kid_std": 0.000678},
    "num_samples": 50,
    "seed": 0,
    "reference": {"dataset": "fake:train", "count": 60},
}


@pytest.mark.slow
def test_card_holds_the_runs_figures(tiny_config: Config, tmp_path: Path) -> None:
    run = train(tiny_config).run_dir
    card = (run / "README.md").read_text()
    last = [r for r in read_stats(run) if "images_seen" in r][-1]
    assert "| Steps | 4 |" in card and f"| Images seen | {last['images_seen']:,} |" in card
    assert (
        "| Dataset | fake (split train" in card
        and f"| Precision | {read_config(run).train.precision} |" in card
    )
    assert "nz = 16" in card and "16x16 images, 1 channel(s)" in card
    params = sum(p.numel() for p in DCGAN.load(run).sampler.parameters())
    assert f"| Parameters | {params:,} |" in card
    grid = re.search(r"!\[samples of the model\]\(([^)]+)\)", card).group(1)
    assert grid == "samples/step-000004.png" and (run / grid).is_file()
    assert f'DCGAN.load("{run.as_posix()}")' in card and "Not measured yet" in card

    # `dcgan evaluate` appends its record through `report`, which refreshes the card
    report("evaluate", run, dict(EVALUATED), lambda record: "", None)
    append_jsonl(run / "stats.jsonl", {"step": 4, "fid": 98.7654, "best_fid": 98.7654})
    refresh_card(run)
    card = (run / "README.md").read_text()
    assert "| FID | 123.456789 | 50 | 60 real images of fake:train |" in card
    assert "| KID | 0.012345 ± 0.000678 | 50 |" in card
    n = read_config(run).output.eval_samples
    assert f"| best FID (step 4) | 98.7654 | {n} |" in card

    saved = DCGAN.load(run)
    saved.run_dir = run
    out = saved.save(tmp_path / "saved")
    copied = (out / "README.md").read_text()
    assert (
        "| FID | 123.456789 |" in copied
        and "![samples of the model](generator-samples.png)" in copied
    )
    assert (out / "generator-samples.png").read_bytes() == (run / grid).read_bytes()


@pytest.mark.slow
def test_card_survives_damaged_run_files(tiny_config: Config) -> None:
    run = train(tiny_config).run_dir
    (run / "config.yaml").write_text("model: [unclosed")
    (run / "metrics.jsonl").write_bytes(b'{"command": "evaluate", "metr\n\xff\xfe\n')
    (run / "stats.jsonl").write_bytes(b"not json\n")
    card = refresh_card(run).read_text()
    assert "No run settings (config.yaml)" in card and "Not measured yet" in card
    assert "| Parameters |" in card
    meta = json.loads((run / "generator.json").read_text())
    assert f"nz = {meta['model']['nz']}" in card
