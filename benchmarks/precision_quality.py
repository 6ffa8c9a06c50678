"""Quality must not pay for speed: the demo recipe trained for the same steps in fp32 and with
the fast defaults (precision 'auto'), each scored by FID against the held-out real digits.

    .venv/bin/python benchmarks/precision_quality.py [--steps 3000] [--num-samples 1000]

Both runs share the seed, the data order and the noise; only the arithmetic differs. Prints
JSON: per precision, the FID, the median images/s from the run's stats.jsonl and the wall time
of training. On a machine without native bf16, 'auto' is fp32 and the two runs coincide.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dcgan.config import resolve
from dcgan.evaluation.evaluate import FIDTracker
from dcgan.run.rundir import read_stats
from dcgan.training.loop import train

DEMO = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def run(precision: str, args, out: str) -> dict:
    flags = {"steps": args.steps, "precision": precision, "out": out, "device": "cpu"}
    flags |= {"eval_samples": args.num_samples, "checkpoint_every": args.steps}
    cfg = resolve(DEMO, flags)
    start = time.perf_counter()
    result = train(cfg)
    seconds = time.perf_counter() - start
    used = resolve(result.run_dir / "config.yaml").train.precision
    fid = FIDTracker(cfg, torch.device("cpu"))(result.sampler)
    rates = [r["images_per_s"] for r in read_stats(result.run_dir)]
    return {
        "precision": used,
        "fid": round(fid, 2),
        "images_per_s_median": statistics.median(rates),
        "train_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--num-samples", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        rows = [run(p, args, out) for p in ("fp32", "auto")]
    print(
        json.dumps({"steps": args.steps, "num_samples": args.num_samples, "runs": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
