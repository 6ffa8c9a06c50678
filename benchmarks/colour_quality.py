"""Colour pictures at 64x64: a recipe against the paper's defaults, FID over minutes of training.

    .venv/bin/python benchmarks/colour_quality.py [--sets twemoji noto] [--recipes folder-64 paper]
        [--seeds 0] [--minutes 5 10 20 30] [--out runs/colour-quality]

For each real set (emoji PNGs, installed by `benchmarks/data/emoji.py` when missing), recipe and
seed, one run trains on the set with 1,000 images held out, in segments of `--max-minutes` that
end at each mark (5, 10, 20, 30 minutes of training on this machine; resume is exact, so the
segments make one run, and the time spent scoring is not counted as training). After each
segment the run's generator (its moving average where the recipe keeps one) is scored: FID and
KID of N = 1000 generated images against the 1,000 held-out ones. The real-vs-real floor of
each set is the same measure between 1,000 training images and the held-out ones.

Results are appended to `OUT/results.jsonl` as they come, so a rerun skips what is measured and
continues an interrupted run from its last scored mark. The end writes `OUT/table.md` and
`OUT/fid-minutes.png` (FID over minutes, the floors dashed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from dcgan.config import Config, merge, resolve
from dcgan.evaluation.evaluate import evaluate
from dcgan.evaluation.features import InceptionFeatures
from dcgan.evaluation.metrics import fid, kid
from dcgan.evaluation.reference import real_images, reference_features
from dcgan.fsio import append_jsonl, atomic_write_text
from dcgan.images import make_grid, save_png
from dcgan.run import rundir
from dcgan.run.sources import load_generator
from dcgan.sampling import generate
from dcgan.training.loop import train

HERE = Path(__file__).resolve().parent
EMOJI = HERE / "data" / "emoji.py"
HOLDOUT = 1000
DATA = {"image_size": 64, "channels": 3, "dataset": "folder", "holdout": HOLDOUT}
# pytorch/examples' dcgan/main.py as the paper has it: widths 64, batch 128, Adam 2e-4 with
# beta1 0.5, the non-saturating loss, no moving average and no augmentation.
PAPER = {"ngf": 64, "ndf": 64, "batch_size": 128, "lr": 2e-4, "ema": 0.0}
RECIPES = {
    "folder-64": (Path("configs/folder-64.yaml"), {}),
    "paper": (None, PAPER),
}
CPU = torch.device("cpu")


def data_root(root: Path, name: str) -> Path:
    """The set's folder, installed by the data script when missing."""
    folder = root / f"{name}-64"
    if not folder.is_dir():
        cmd = [sys.executable, str(EMOJI), "--sets", name, "--root", str(root)]
        if subprocess.run(cmd).returncode != 0:
            sys.exit(f"error: could not install the {name} set; run {' '.join(cmd[1:])}")
    return folder


def recipe_config(recipe: str, folder: Path, seed: int, out: Path, extra: dict) -> Config:
    """The recipe's config for one run on `folder`: no step limit within the benchmark's
    minutes, checkpoints only at the marks."""
    path, settings = RECIPES[recipe]
    flat = {**DATA, **settings, **extra, "data_root": str(folder), "seed": seed}
    flat |= {"device": "cpu", "out": str(out), "steps": 1_000_000, "checkpoint_every": 1_000_000}
    flat |= {"sample_every": 500, "log_every": 100}
    return merge(resolve(path), flat, "benchmark")


def run_segment(cfg: Config, run_dir: Path | None, minutes: float, step: int | None) -> Path:
    """Train `minutes` more, from the kept checkpoint of `step` when the run exists; keep the
    checkpoint it ends at as `step-N.pt`, so a rerun can go back to it."""
    cfg = merge(cfg, {"max_minutes": minutes}, "benchmark")
    result = train(cfg, resume=run_dir, from_step=step)
    kept = rundir.kept_checkpoint_path(result.run_dir, result.step)
    shutil.copy2(rundir.latest_checkpoint(result.run_dir), kept)
    return result.run_dir


def score(cfg: Config, run_dir: Path, num: int, extractor: InceptionFeatures) -> dict:
    """FID and KID of the run's sampling G against the held-out images, N = num."""
    ref = reference_features(extractor, cfg.data, 64, 3, "holdout", num)
    generator, z_dist = load_generator(run_dir)
    record = evaluate(generator, z_dist, ref, extractor, num, ("fid", "kid"), seed=0)
    return {k: round(v, 4) for k, v in record["metrics"].items()}


def floor(cfg: Config, num: int, extractor: InceptionFeatures) -> dict:
    """FID and KID between `num` training images and the `num` held-out ones."""
    held = reference_features(extractor, cfg.data, 64, 3, "holdout", num)
    seen = reference_features(extractor, cfg.data, 64, 3, "train", num)
    kid_mean = kid(seen.feats, held.feats)[0]
    value = round(fid(seen.mu, seen.sigma, held.mu, held.sigma), 4)
    return {"fid": value, "kid_mean": kid_mean, "n": num}


def save_grids(cfg: Config, run_dir: Path, mark: float, out: Path, name: str, label: str) -> None:
    """The run's samples at this mark (images 0-63 of seed 0, as `dcgan generate` makes
    them) and, once per set, 64 held-out real images, as grids in OUT/grids/."""
    grids = out / "grids"
    real = grids / f"{name}-real-holdout.png"
    if not real.is_file():
        images, _ = real_images(cfg.data, 64, 3, "holdout", 64)
        save_png(make_grid(images, nrow=8), real)
    generator, z_dist = load_generator(run_dir)
    (_, images), *_ = generate(generator, range(64), seed=0, batch_size=64, dist=z_dist)
    save_png(make_grid(images, nrow=8), grids / f"{name}-{label}-s{cfg.train.seed}-{mark:g}min.png")


def median_speed(run_dir: Path) -> float:
    """Median images/s over the run's stats records."""
    return statistics.median(r["images_per_s"] for r in rundir.read_stats(run_dir))


def measure(name: str, recipe: str, seed: int, args, done: list[dict], extractor) -> None:
    """Every mark of one (set, recipe, seed) not yet in `done`, appended as it comes."""
    folder = data_root(args.data, name)
    label = recipe + args.tag  # what the results call it: a --set variant carries its --tag
    out = args.out / "runs" / name / label / f"s{seed}"
    cfg = recipe_config(recipe, folder, seed, out, args.extra)
    key = {"set": name, "recipe": label, "seed": seed}
    scored = [r for r in done if all(r.get(k) == v for k, v in key.items())]
    previous = max(scored, key=lambda r: r["minutes"], default=None)
    runs = sorted(out.glob("0*")) if out.is_dir() else []
    run_dir = runs[-1] if runs and previous else None
    if runs and not previous:  # a first segment cut short: start it again
        shutil.rmtree(out)
    for mark in sorted(args.minutes):
        if previous is not None and mark <= previous["minutes"]:
            continue
        start_minutes = 0 if previous is None else previous["minutes"]
        step = None if previous is None else previous["step"]
        run_dir = run_segment(cfg, run_dir, mark - start_minutes, step)
        row = key | {"minutes": mark, "step": rundir.read_stats(run_dir)[-1]["step"]}
        row |= score(cfg, run_dir, args.num, extractor) | {"images_per_s": median_speed(run_dir)}
        save_grids(cfg, run_dir, mark, args.out, name, label)
        append_jsonl(args.out / "results.jsonl", row)
        done.append(row)
        previous = row
        print(json.dumps(row), flush=True)


def table(rows: list[dict], floors: dict[str, dict]) -> str:
    """Markdown: FID (and KID x1000) per set, recipe and mark, mean and range over seeds."""
    marks = sorted({r["minutes"] for r in rows})
    head = " | ".join(f"{m:g} min" for m in marks)
    lines = [f"| set | recipe | seeds | {head} | images/s |", "|---" * (4 + len(marks)) + "|"]
    for name in floors:
        for recipe in sorted({r["recipe"] for r in rows if r["set"] == name}):
            mine = [r for r in rows if (r["set"], r["recipe"]) == (name, recipe)]
            cells = [cell([r for r in mine if r["minutes"] == m]) for m in marks]
            speed = statistics.median(r["images_per_s"] for r in mine)
            seeds = len({r["seed"] for r in mine})
            lines.append(f"| {name} | {recipe} | {seeds} | {' | '.join(cells)} | {speed:.0f} |")
        f = floors[name]
        lines.append(
            f"| {name} | real vs real (floor) | - | FID {f['fid']:.1f}, KID x1000 "
            f"{1000 * f['kid_mean']:.1f} at N = {f['n']} |"
        )
    return "\n".join(lines) + "\n"


def cell(rows: list[dict]) -> str:
    """'mean (min-max)' of FID over seeds, and KID x1000's mean."""
    if not rows:
        return "-"
    fids = [r["fid"] for r in rows]
    kids = statistics.mean(1000 * r["kid_mean"] for r in rows)
    spread = f" ({min(fids):.1f}-{max(fids):.1f})" if len(fids) > 1 else ""
    return f"{statistics.mean(fids):.1f}{spread}; KID {kids:.1f}"


def plot(rows: list[dict], floors: dict[str, dict], path: Path) -> None:
    """FID over minutes: one line per set, recipe and seed; each set's floor dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    styles = {}
    for r in rows:
        styles.setdefault((r["set"], r["recipe"]), f"C{len(styles)}")
    for (name, recipe), colour in styles.items():
        seeds = sorted({r["seed"] for r in rows if (r["set"], r["recipe"]) == (name, recipe)})
        for seed in seeds:
            mine = [r for r in rows if (r["set"], r["recipe"], r["seed"]) == (name, recipe, seed)]
            pts = sorted((r["minutes"], r["fid"]) for r in mine)
            label = f"{name}, {recipe}" if seed == seeds[0] else None  # one entry a line colour
            ax.plot(*zip(*pts, strict=True), marker="o", color=colour, label=label)
    for k, (name, f) in enumerate(floors.items()):
        ax.axhline(f["fid"], linestyle="--", color="grey", linewidth=1)
        ax.annotate(
            f"{name} real vs real",
            (0.01, f["fid"]),
            xycoords=("axes fraction", "data"),
            textcoords="offset points",
            xytext=(0, 3 + 10 * k),
            fontsize=8,
            color="grey",
        )
    ax.set(xlabel="minutes of training (2-core CPU)", ylabel="FID (N = 1000, held-out images)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.savefig(path, format="png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["twemoji", "noto"])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 10, 20, 30])
    parser.add_argument("--num", type=int, default=1000, help="N generated and real images")
    parser.add_argument("--data", type=Path, default=Path("data"), help="where the sets live")
    parser.add_argument("--out", type=Path, default=Path("runs/colour-quality"))
    parser.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every recipe (YAML value), e.g. --set ngf=48",
    )
    parser.add_argument("--tag", default="", help="appended to the recipes' names in results")
    args = parser.parse_args()
    if args.extra and not args.tag:
        parser.error("--set: name the variant with --tag, so its results are told apart")
    args.extra = parse_settings(args.extra)
    results = args.out / "results.jsonl"
    done = [json.loads(x) for x in results.read_text().splitlines()] if results.exists() else []
    floors = {}
    extractor = InceptionFeatures(device=CPU)
    for name in args.sets:
        cfg = recipe_config("paper", data_root(args.data, name), 0, args.out, {})
        floors[name] = floor(cfg, args.num, extractor)
        print(json.dumps({"set": name, "floor": floors[name]}), flush=True)
        for seed in args.seeds:
            for recipe in args.recipes:
                measure(name, recipe, seed, args, done, extractor)
    rows = [r for r in done if r["set"] in floors]
    atomic_write_text(args.out / "table.md", table(rows, floors))
    plot(rows, floors, args.out / "fid-minutes.png")
    print(table(rows, floors))


def parse_settings(pairs: list[str]) -> dict:
    """KEY=VALUE pairs as settings, each value read as YAML (48 -> int, none -> None)."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"error: --set {pair}: write KEY=VALUE, e.g. --set ngf=48")
        out[key] = yaml.safe_load(value)
    return out


if __name__ == "__main__":
    main()
