"""Augmentation against none on the `make demo` recipe: FID and KID on the digits the run held out.

    .venv/bin/python benchmarks/augmentation_quality.py [--seeds 0 1 2] [--variants ...]

Each variant trains `configs/demo.yaml` for the same number of steps with one augmentation
setting, keeping a checkpoint at every quarter of the run. Every kept checkpoint's generator
(its moving average) is then scored on N = 1000 generated images against the 1000 held-out
digits (the reference `dcgan evaluate --reference holdout` uses), with the FID network. Results
are appended to `OUT/results.jsonl` as they come, so an interrupted run keeps what it measured
and a rerun skips it; the end writes `OUT/table.md` (min / median / max over seeds of the final
scores) and `OUT/fid-curves.png` (FID over steps).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from dcgan.config import Config, merge, resolve
from dcgan.evaluation.evaluate import evaluate
from dcgan.evaluation.features import InceptionFeatures
from dcgan.evaluation.reference import reference_features
from dcgan.fsio import append_jsonl, atomic_write_text
from dcgan.run.rundir import kept_checkpoints
from dcgan.run.sources import load_generator
from dcgan.training.loop import train

# Each sets every augmentation field, whatever the config file says.
FIXED = {"augment_p": 1.0, "ada_target": None}
VARIANTS = {
    "none": {"augment": "none", **FIXED},
    "translation": {"augment": "translation", **FIXED},
    "translation,cutout": {"augment": "translation,cutout", **FIXED},
    "translation,cutout,color": {"augment": "translation,cutout,color", **FIXED},
    "ada(translation,cutout)": {"augment": "translation,cutout", "ada_target": 0.6},
}
CPU = torch.device("cpu")


def run_variant(name: str, seed: int, args: argparse.Namespace) -> list[dict]:
    """Train one variant and score each of its kept checkpoints."""
    flat = {**VARIANTS[name], "seed": seed, "device": "cpu", "steps": args.steps}
    flat |= {"checkpoint_every": args.steps // args.evals, "out": str(args.out / "runs")}
    cfg = merge(resolve(args.config), flat, "benchmark")
    start = time.perf_counter()
    run_dir = train(cfg).run_dir
    seconds = time.perf_counter() - start
    rows = []
    for step, path in kept_checkpoints(run_dir).items():
        rows.append(score(cfg, path, args) | {"variant": name, "seed": seed, "step": step})
    rows[-1]["train_seconds"] = round(seconds, 1)
    return rows


def score(cfg: Config, checkpoint: Path, args: argparse.Namespace) -> dict:
    """FID and KID of a checkpoint's generator against the held-out digits, N = args.num."""
    extractor = InceptionFeatures(device=CPU)
    m = cfg.model
    ref = reference_features(extractor, cfg.data, m.image_size, m.channels, "holdout", args.num)
    generator, z_dist = load_generator(checkpoint)
    record = evaluate(generator, z_dist, ref, extractor, args.num, ("fid", "kid"), seed=0)
    return {k: round(v, 5) for k, v in record["metrics"].items()}


def table(rows: list[dict], steps: int) -> str:
    """Markdown: final FID and KID per variant, min / median / max over seeds."""
    lines = ["| variant | seeds | FID min / median / max | KID x1000 min / median / max |"]
    lines.append("|---|---|---|---|")
    for name in VARIANTS:
        final = [r for r in rows if r["variant"] == name and r["step"] == steps]
        if not final:
            continue
        fid = sorted(r["fid"] for r in final)
        kid = sorted(1000 * r["kid_mean"] for r in final)
        lines.append(f"| {name} | {len(final)} | {spread(fid)} | {spread(kid)} |")
    return "\n".join(lines) + "\n"


def spread(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def plot(rows: list[dict], path: Path) -> None:
    """FID over steps, one line per variant and seed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for k, name in enumerate(VARIANTS):
        for seed in sorted({r["seed"] for r in rows if r["variant"] == name}):
            pts = sorted(
                (r["step"], r["fid"]) for r in rows if (r["variant"], r["seed"]) == (name, seed)
            )
            label = name if seed == min(r["seed"] for r in rows if r["variant"] == name) else None
            ax.plot(*zip(*pts, strict=True), marker="o", color=f"C{k}", label=label, linewidth=1.2)
    ax.set(xlabel="step", ylabel="FID (N = 1000, held-out digits)", title="FID over training")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.savefig(path, format="png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    parser.add_argument("--steps", type=int, default=None, help="default: the config's")
    parser.add_argument("--evals", type=int, default=4, help="scored checkpoints per run")
    parser.add_argument("--num", type=int, default=1000, help="N generated and real images")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("runs/augmentation-quality"))
    args = parser.parse_args()
    args.steps = args.steps or resolve(args.config).train.steps
    results = args.out / "results.jsonl"
    done = [json.loads(x) for x in results.read_text().splitlines()] if results.exists() else []
    for seed in args.seeds:
        for name in args.variants:
            if any((r["variant"], r["seed"]) == (name, seed) for r in done):
                continue
            for row in run_variant(name, seed, args):
                append_jsonl(results, row)
                done.append(row)
                print(json.dumps(row), flush=True)
    atomic_write_text(args.out / "table.md", table(done, args.steps))
    plot(done, args.out / "fid-curves.png")
    print(table(done, args.steps))


if __name__ == "__main__":
    main()
