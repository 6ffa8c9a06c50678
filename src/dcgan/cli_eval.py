"""`dcgan evaluate`, `ref-stats`, `probe` and `nearest`: the measuring subcommands."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from dcgan.config import Config, ConfigError, DataConfig


def add_parsers(sub: Any) -> None:
    """Register the evaluation subcommands on the `dcgan` subparsers."""
    e = sub.add_parser("evaluate", help="FID, KID and precision/recall of a run or export")
    e.add_argument("source", type=Path, help="run directory, generator.safetensors or .pt")
    _data_flags(e)
    e.add_argument("--num-samples", type=int, default=10_000, help="generated images (N)")
    e.add_argument("--num-real", type=int, help="real images in the reference (default: N)")
    e.add_argument("--metrics", default="fid,kid,pr", help="comma-separated: fid,kid,pr")
    e.add_argument("--ref-stats", type=Path, help="reference file from `dcgan ref-stats`")
    e.add_argument("--json", type=Path, help="also write the results to this file")
    _run_flags(e)

    r = sub.add_parser("ref-stats", help="Inception statistics of real images, as .npz")
    _data_flags(r, required=True)
    r.add_argument("--image-size", type=int, default=32, help="size the images are read at")
    r.add_argument("--channels", type=int, default=1)
    r.add_argument("--num-real", type=int, default=10_000, help="real images to use")
    r.add_argument("--out", type=Path, required=True, help="the .npz to write")
    r.add_argument("--device", default="auto")

    p = sub.add_parser("probe", help="linear probe on D's features (the paper's test)")
    p.add_argument("run", type=Path, help="run directory")
    _data_flags(p, reference=False)
    p.add_argument("--labels-per-class", type=int, default=100, help="labelled images per class")
    p.add_argument("--draws", type=int, default=5, help="label draws to average over")
    p.add_argument("--json", type=Path)
    _run_flags(p)

    n = sub.add_parser("nearest", help="samples beside their nearest training images")
    n.add_argument("run", type=Path, help="run directory or generator export")
    _data_flags(n, reference=False)
    n.add_argument("--num", type=int, default=8, help="generated samples (rows)")
    n.add_argument("--k", type=int, default=4, help="neighbours shown per space")
    n.add_argument("--pool", type=int, default=1000, help="training images searched")
    n.add_argument("--out", type=Path, help="grid PNG (default RUN/nearest.png)")
    _run_flags(n)


def _data_flags(
    parser: argparse.ArgumentParser, required: bool = False, reference: bool = True
) -> None:
    parser.add_argument("--dataset", required=required, help="default: the run's dataset")
    parser.add_argument("--data-root", help="default: the run's data root")
    parser.add_argument("--split", help="official split of the dataset (train, test, all)")
    if reference:
        parser.add_argument(
            "--reference",
            default="auto",
            help="real images: auto (held-out if any, else train), holdout, train, test or all",
        )


def _run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="generated image i uses (seed, i)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


# ---------------------------------------------------------------------------- shared loading


def run_config(source: Path) -> Config | None:
    """The run's config when `source` is (or sits in) a run directory."""
    from dcgan.rundir import CONFIG_FILE, read_config

    for d in (source, source.parent, source.parent.parent):
        if d.is_dir() and (d / CONFIG_FILE).is_file():
            return read_config(d)
    return None


def data_config(ns: argparse.Namespace, cfg: Config | None) -> DataConfig:
    """The run's data settings with the flags' changes; held-out images only apply to the
    dataset the run trained on."""
    from dcgan.data import dataset_names

    if cfg is None and not ns.dataset:
        raise ConfigError("--dataset: required when the source is not a run directory")
    base = cfg.data if cfg is not None else DataConfig()
    changes: dict[str, Any] = {}
    if ns.dataset and ns.dataset != base.dataset:
        changes.update(dataset=ns.dataset, holdout=0)
    if ns.dataset and ns.dataset not in dataset_names():
        raise ConfigError(f"--dataset: '{ns.dataset}' is not one of {', '.join(dataset_names())}")
    if ns.data_root:
        changes["data_root"] = ns.data_root
    if ns.split:
        changes["split"] = ns.split
    return dataclasses.replace(base, **changes)


def _positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: {value} must be at least 1")


def _write_json(path: Path | None, record: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")


def report(command: str, source: Path, record: dict[str, Any], fmt, json_path) -> int:
    """Print a result, write its JSON (when asked) and append it to the run's metrics.jsonl."""
    record = {"command": command, "source": str(source), **record}
    print(fmt(record))
    _write_json(json_path, record)
    append_metrics(source, record)
    return 0


def append_metrics(run: Path, record: dict[str, Any]) -> None:
    """Add a record to the run's metrics.jsonl (when `run` is a run directory)."""
    from dcgan.rundir import CONFIG_FILE

    if run.is_dir() and (run / CONFIG_FILE).is_file():
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------------------- commands


def cmd_evaluate(ns: argparse.Namespace) -> int:
    from dcgan.checkpoint import load_generator
    from dcgan.evaluation import (
        evaluate,
        format_table,
        load_reference,
        parse_metrics,
        reference_features,
    )
    from dcgan.inception import InceptionFeatures
    from dcgan.training import pick_device

    _positive(num_samples=ns.num_samples, num_real=ns.num_real)
    metrics = parse_metrics(ns.metrics)
    cfg = run_config(ns.source)
    generator, z_dist = load_generator(ns.source)
    device = pick_device(ns.device)
    extractor = InceptionFeatures(device=device)
    if ns.ref_stats is not None:
        ref = load_reference(ns.ref_stats)
    else:
        size, channels = generator.cfg.image_size, generator.cfg.channels
        data = data_config(ns, cfg)
        count = ns.num_real or ns.num_samples
        ref = reference_features(extractor, data, size, channels, ns.reference, count)
    record = evaluate(
        generator.to(device), z_dist, ref, extractor, ns.num_samples, metrics, ns.seed
    )
    return report("evaluate", ns.source, record, format_table, ns.json)


def cmd_ref_stats(ns: argparse.Namespace) -> int:
    from dcgan.evaluation import reference_features, save_reference
    from dcgan.inception import InceptionFeatures
    from dcgan.training import pick_device

    _positive(num_real=ns.num_real, image_size=ns.image_size, channels=ns.channels)
    extractor = InceptionFeatures(device=pick_device(ns.device))
    data = data_config(ns, None)
    ref = reference_features(extractor, data, ns.image_size, ns.channels, ns.reference, ns.num_real)
    save_reference(ref, ns.out)
    print(f"wrote {ns.out}: {ref.identity['count']} images of {ref.identity['dataset']}")
    return 0


def cmd_probe(ns: argparse.Namespace) -> int:
    from dcgan.api import DCGAN
    from dcgan.probe_run import format_probe, run_probe

    _positive(labels_per_class=ns.labels_per_class, draws=ns.draws)
    gan = DCGAN.load(ns.run)
    data = data_config(ns, gan.config)
    record = run_probe(gan, data, ns.labels_per_class, ns.draws, ns.seed, ns.device)
    return report("probe", ns.run, record, format_probe, ns.json)


def cmd_nearest(ns: argparse.Namespace) -> int:
    from dcgan.checkpoint import load_generator
    from dcgan.nearest import nearest_grid
    from dcgan.training import pick_device

    _positive(num=ns.num, k=ns.k, pool=ns.pool)
    cfg = run_config(ns.run)
    generator, z_dist = load_generator(ns.run)
    device = pick_device(ns.device)
    data = data_config(ns, cfg)
    out = ns.out or (ns.run if ns.run.is_dir() else ns.run.parent) / "nearest.png"
    nearest_grid(generator.to(device), z_dist, data, ns.num, ns.k, ns.pool, ns.seed, out, device)
    print(
        f"wrote {out}: each row is a sample, then its {ns.k} nearest training images in "
        "Inception feature space, then in pixel space"
    )
    return 0


COMMANDS = {
    "evaluate": cmd_evaluate,
    "ref-stats": cmd_ref_stats,
    "probe": cmd_probe,
    "nearest": cmd_nearest,
}
