"""`dcgan export` (a generator as ONNX or safetensors) and `dcgan report` (a run as one HTML
page)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcgan.cli.common import Command, check_output


def export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source", type=Path, help="run directory, generator.safetensors or checkpoint .pt"
    )
    p.add_argument(
        "--format",
        required=True,
        help="onnx (runs under onnxruntime without PyTorch), safetensors (as dcgan train "
        "writes it, with its model card README.md) or hub (a Hugging Face Hub folder: "
        "config.json, model.safetensors, README.md)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="file to write (default: SOURCE/generator.onnx for a run, else SOURCE with the "
        "format's suffix)",
    )
    p.add_argument("--opset", type=int, help="ONNX opset, 9..20 (default 17)")


def run_export(ns: argparse.Namespace) -> int:
    from dcgan.errors import ConfigError
    from dcgan.run.checkpoint import EXPORT_NAME
    from dcgan.run.onnx_export import DEFAULT_OPSET, FORMATS, default_out, export

    if ns.format not in FORMATS:
        raise ConfigError(f"--format: {ns.format!r} is not one of {', '.join(FORMATS)}")
    if ns.opset is not None and ns.format != "onnx":
        raise ConfigError("--opset: only for --format onnx")
    out = ns.out if ns.out is not None else default_out(ns.source, ns.format)
    check_output("--out", out)
    own = [ns.source, ns.source / EXPORT_NAME] if ns.source.is_dir() else [ns.source]
    if any(out.resolve() == p.resolve() for p in own):
        raise ConfigError(
            f"--out: {out} is the source's own export; write the copy elsewhere (--out FILE)"
        )
    done = export(ns.source, ns.format, out, ns.opset or DEFAULT_OPSET)
    if ns.format == "hub":
        print(f"wrote {done.path}/ (config.json, model.safetensors, README.md); share it with:")
        print(f"  huggingface-cli upload USER/NAME {done.path}")
    elif done.max_abs_diff is None:
        print(f"wrote {done.path} (+ {done.path.with_suffix('.json').name}, README.md)")
    else:
        print(
            f"wrote {done.path} (opset {done.opset}); onnxruntime matches PyTorch within "
            f"{done.max_abs_diff:.2e} (max abs difference)"
        )
    return 0


def report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--out", type=Path, help="HTML file to write (default RUN/report.html)")


def run_report(ns: argparse.Namespace) -> int:
    from dcgan.errors import ConfigError
    from dcgan.run.report import write_report

    out = ns.out if ns.out is not None else ns.run / "report.html"
    if out.suffix.lower() not in (".html", ".htm"):  # never over a run's other files
        raise ConfigError(f"--out: {out}: the report is a .html file; give a name ending .html")
    check_output("--out", out)
    path, problems = write_report(ns.run, out)
    note = f"; {problems} section(s) say what is missing or damaged" if problems else ""
    print(f"wrote {path}{note}")
    return 0


COMMANDS = (
    Command(
        "export",
        "write a generator as ONNX (for onnxruntime) or as a safetensors export",
        export_arguments,
        run_export,
    ),
    Command(
        "report",
        "write RUN/report.html: the run on one self-contained page",
        report_arguments,
        run_report,
    ),
)
