"""training/upkeep.py: what happens between steps (stats, previews, checkpoints) and when."""

from __future__ import annotations

import pytest
import torch

from conftest import with_settings
from dcgan.config import Config
from dcgan.run import rundir
from dcgan.training.loop import train
from dcgan.training.step import STAT_KEYS
from dcgan.training.upkeep import Accumulator


def test_the_accumulator_gives_means_since_the_last_pop_through_its_reduce() -> None:
    acc = Accumulator(reduce=lambda sums: sums * 2)  # as a mean over processes would change it
    one = torch.arange(len(STAT_KEYS), dtype=torch.float32)
    acc.add(one)
    acc.add(one + 2)
    means, seconds = acc.pop()
    assert list(means) == list(STAT_KEYS) and seconds >= 0
    assert list(means.values()) == [2 * (v + 1) for v in one.tolist()]
    assert acc.count == 0 and acc.sums is None  # popped: the next interval starts empty
    acc.add(one)
    acc.reset()
    assert acc.count == 0 and acc.sums is None


@pytest.mark.slow
def test_stats_previews_and_checkpoints_come_when_due_and_all_at_the_end(
    tiny_config: Config,
) -> None:
    """7 steps, stats every 3, previews every 2, checkpoints every 4: each at its multiples
    (and a preview of the untrained G), and the last step writes all three (its checkpoint as
    latest.pt, not a kept one)."""
    cfg = with_settings(tiny_config, steps=7, log_every=3, sample_every=2, checkpoint_every=4)
    run = train(cfg).run_dir
    rows = rundir.read_stats(run)
    assert [r["step"] for r in rows] == [3, 6, 7]
    samples = sorted(p.name for p in (run / rundir.SAMPLES_DIR).glob("step-*.png"))
    assert samples == [f"step-{s:06d}.png" for s in (0, 2, 4, 6, 7)]  # 0: before training
    assert sorted(rundir.kept_checkpoints(run)) == [4]
    assert rundir.latest_checkpoint(run).is_file()
    assert [r["images_seen"] for r in rows] == [s * cfg.train.batch_size for s in (3, 6, 7)]
