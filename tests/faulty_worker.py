"""`dcgan` with one worker that fails once, for the multi-process tests (run by torchrun).

When rank FAULT_RANK is about to train step FAULT_STEP, and the file FAULT_FLAG does not exist
yet (it is created first, so the fault happens once):
- FAULT=crash: the process exits abruptly, as a crash would;
- FAULT=nan: that step's statistics read NaN on this rank alone.
"""

import os
import sys
from pathlib import Path

import torch

from dcgan import training
from dcgan.cli import main

_step = training.train_step


def _faulty_step(state, *args, **kwargs):
    flag = Path(os.environ["FAULT_FLAG"])
    due = state.step == int(os.environ["FAULT_STEP"]) and not flag.exists()
    if not (due and os.environ["RANK"] == os.environ["FAULT_RANK"]):
        return _step(state, *args, **kwargs)
    flag.touch()
    if os.environ["FAULT"] == "crash":
        os._exit(3)
    return torch.full_like(_step(state, *args, **kwargs), float("nan"))


training.train_step = _faulty_step
sys.exit(main(sys.argv[1:]))
