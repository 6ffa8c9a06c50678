"""`dcgan` with a worker that dies once: for the elastic-restart test, run by torchrun.

Rank CRASH_RANK exits abruptly (as a crash would) when it is about to train step CRASH_STEP,
unless the file CRASH_FLAG exists; it creates the file first, so the restarted group runs on.
"""

import os
import sys
from pathlib import Path

from dcgan import training
from dcgan.cli import main

_step = training.train_step


def _crash_once(state, *args, **kwargs):
    flag = Path(os.environ["CRASH_FLAG"])
    due = state.step == int(os.environ["CRASH_STEP"]) and not flag.exists()
    if due and os.environ["RANK"] == os.environ["CRASH_RANK"]:
        flag.touch()
        os._exit(3)
    return _step(state, *args, **kwargs)


training.train_step = _crash_once
sys.exit(main(sys.argv[1:]))
