"""`dcgan download` and `dcgan datasets`: fetching and listing dataset files."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcgan.cli.common import Command


def root_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", "--data-root", dest="root", type=Path, default=Path("data"), help="data root"
    )


def download_arguments(d: argparse.ArgumentParser) -> None:
    d.add_argument("--dataset", nargs="+", required=True, metavar="NAME", help="dataset names")
    root_argument(d)
    d.add_argument("--files", nargs="+", metavar="FILE", help="only these files (e.g. extra)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_download(ns: argparse.Namespace) -> int:
    from dcgan.data import download

    for name in ns.dataset:
        if download.is_manual(name):
            print(download.manual_instructions(name, ns.root))
            continue
        files = download.download(name, ns.root, files=ns.files, progress=not ns.no_progress)
        for path in files:
            print(f"{name}: {path}")
    return 0


def run_datasets(ns: argparse.Namespace) -> int:
    from dcgan.data.catalogue import dataset_table

    print(dataset_table(ns.root))
    return 0


COMMANDS = (
    Command(
        "download",
        "fetch official dataset files (checksummed, cached)",
        download_arguments,
        run_download,
    ),
    Command(
        "datasets",
        "list dataset names, their files and what is present",
        root_argument,
        run_datasets,
    ),
)
