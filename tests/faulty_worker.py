"""`dcgan` with one worker that fails once, for the multi-process tests (run by torchrun).

When rank FAULT_RANK is about to train step FAULT_STEP, and the file FAULT_FLAG does not exist
yet (it is created first, so the fault happens once):
- FAULT=crash: the process exits abruptly, as a crash would;
- FAULT=nan: that step's D loss on real images reads NaN on this rank alone.
"""

import os
import sys
from pathlib import Path

import torch

from dcgan.cli import main
from dcgan.training import loop

_step = loop.train_step


def _faulty_step(state, *args, **kwargs):
    flag = Path(os.environ["FAULT_FLAG"])
    due = state.step == int(os.environ["FAULT_STEP"]) and not flag.exists()
    if not (due and os.environ["RANK"] == os.environ["FAULT_RANK"]):
        return _step(state, *args, **kwargs)
    flag.touch()
    if os.environ["FAULT"] == "crash":
        os._exit(3)
    stats = _step(state, *args, **kwargs)
    stats.loss_d_real = torch.full_like(stats.loss_d_real, float("nan"))
    return stats


loop.train_step = _faulty_step
sys.exit(main(sys.argv[1:]))
