"""`dcgan evaluate`, `ref-stats`, `probe` and `nearest`: the measuring subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcgan.cli.common import (
    Command,
    check_output,
    data_config,
    data_flags,
    positive,
    report,
    run_config,
    seed_device_flags,
)
from dcgan.device import pick_device
from dcgan.errors import ConfigError


def evaluate_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("source", type=Path, help="run directory, generator.safetensors or .pt")
    data_flags(e)
    e.add_argument("--num-samples", type=int, default=10_000, help="generated images (N)")
    e.add_argument("--num-real", type=int, help="real images in the reference (default: N)")
    e.add_argument(
        "--metrics",
        default="fid,kid,pr",
        help="comma-separated: fid,kid,pr; conditional models also ifid (FID within each class), "
        "accuracy (a classifier fitted on real labelled images names the generated class) and "
        "diversity (within each class, generated images' mean pairwise feature distance over "
        "the real images': 1 as varied as real, near 0 near copies)",
    )
    e.add_argument("--ref-stats", type=Path, help="reference file from `dcgan ref-stats`")
    e.add_argument("--json", type=Path, help="also write the results to this file")
    seed_device_flags(e)


def run_evaluate(ns: argparse.Namespace) -> int:
    from dcgan.evaluation.evaluate import (
        Request,
        check_request,
        format_table,
        measure,
        parse_metrics,
    )
    from dcgan.run.sources import load_generator

    request = Request(
        parse_metrics(ns.metrics), ns.num_samples, ns.num_real, ns.reference, ns.ref_stats, ns.seed
    )
    positive(num_samples=ns.num_samples, num_real=ns.num_real)
    check_request(request)  # N before anything is loaded
    check_output("--json", ns.json)
    cfg = run_config(ns.source)
    statistics_alone = ns.ref_stats is not None and cfg is None and not ns.dataset
    data = None if statistics_alone else data_config(ns, cfg)
    generator, z_dist = load_generator(ns.source)
    record = measure(generator, z_dist, data, request, pick_device(ns.device))
    return report("evaluate", ns.source, record, format_table, ns.json)


def ref_stats_arguments(r: argparse.ArgumentParser) -> None:
    data_flags(r, required=True)
    r.add_argument("--image-size", type=int, default=32, help="size the images are read at")
    r.add_argument("--channels", type=int, default=1)
    r.add_argument("--num-real", type=int, default=10_000, help="real images to use")
    r.add_argument("--out", type=Path, required=True, help="the .npz to write")
    r.add_argument("--device", default="auto")


def run_ref_stats(ns: argparse.Namespace) -> int:
    from dcgan.evaluation.features import InceptionFeatures
    from dcgan.evaluation.reference import reference_features, save_reference

    positive(num_real=ns.num_real, image_size=ns.image_size, channels=ns.channels)
    if ns.num_real < 2:
        raise ConfigError(f"--num-real: {ns.num_real} must be at least 2 (a covariance needs 2)")
    check_output("--out", ns.out)
    extractor = InceptionFeatures(device=pick_device(ns.device))
    data = data_config(ns, None)
    ref = reference_features(extractor, data, ns.image_size, ns.channels, ns.reference, ns.num_real)
    save_reference(ref, ns.out)
    print(f"wrote {ns.out}: {ref.identity['count']} images of {ref.identity['dataset']}")
    return 0


def probe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="run directory")
    data_flags(p, reference=False)
    p.add_argument("--labels-per-class", type=int, default=100, help="labelled images per class")
    p.add_argument("--draws", type=int, default=5, help="label draws to average over")
    p.add_argument("--json", type=Path)
    seed_device_flags(p)


def run_probe(ns: argparse.Namespace) -> int:
    from dcgan.api import DCGAN
    from dcgan.evaluation.probe import format_probe, probe_run

    positive(labels_per_class=ns.labels_per_class, draws=ns.draws)
    check_output("--json", ns.json)
    gan = DCGAN.load(ns.run)
    data = data_config(ns, gan.config)
    device = pick_device(ns.device)
    record = probe_run(gan.discriminator, data, ns.labels_per_class, ns.draws, ns.seed, device)
    return report("probe", ns.run, record, format_probe, ns.json)


def nearest_arguments(n: argparse.ArgumentParser) -> None:
    n.add_argument("run", type=Path, help="run directory or generator export")
    data_flags(n, reference=False)
    n.add_argument("--num", type=int, default=8, help="generated samples (rows)")
    n.add_argument("--k", type=int, default=4, help="neighbours shown per space")
    n.add_argument("--pool", type=int, default=1000, help="training images searched")
    n.add_argument("--out", type=Path, help="grid PNG (default RUN/nearest.png)")
    seed_device_flags(n)


def run_nearest(ns: argparse.Namespace) -> int:
    from dcgan.evaluation.nearest import nearest_grid
    from dcgan.run.sources import load_generator

    positive(num=ns.num, k=ns.k, pool=ns.pool)
    out = ns.out or (ns.run if ns.run.is_dir() else ns.run.parent) / "nearest.png"
    check_output("--out", out)
    cfg = run_config(ns.run)
    generator, z_dist = load_generator(ns.run)
    device = pick_device(ns.device)
    data = data_config(ns, cfg)
    nearest_grid(generator.to(device), z_dist, data, ns.num, ns.k, ns.pool, ns.seed, out, device)
    print(
        f"wrote {out}: each row is a sample, then its {ns.k} nearest training images in "
        "Inception feature space, then in pixel space"
    )
    return 0


COMMANDS = (
    Command(
        "evaluate",
        "FID, KID and precision/recall of a run or export",
        evaluate_arguments,
        run_evaluate,
    ),
    Command(
        "ref-stats",
        "Inception statistics of real images, as .npz",
        ref_stats_arguments,
        run_ref_stats,
    ),
    Command("probe", "linear probe on D's features (the paper's test)", probe_arguments, run_probe),
    Command(
        "nearest", "samples beside their nearest training images", nearest_arguments, run_nearest
    ),
)
