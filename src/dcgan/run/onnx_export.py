"""`dcgan export`: a generator as an ONNX file that onnxruntime runs without PyTorch, or as the
safetensors export `dcgan train` writes.

The ONNX graph takes `z` (B, nz) float32 (and `labels` (B,) int64 for a conditional model) and
returns `images` (B, C, S, S) in [-1, 1]; B is a dynamic axis. G is exported in fp32 eval mode
with torch's own convolutions (the bf16 CPU routes of `dcgan.nn.kernels` switched off), checked
with `onnx.checker` and run under onnxruntime against PyTorch on seeded z before the file is
written: a graph that differs by more than `TOLERANCE` is never written.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dcgan.errors import CheckpointError, ConfigError
from dcgan.fsio import atomic_write
from dcgan.nn import kernels
from dcgan.nn.models import Generator
from dcgan.run.card import run_of, write_card
from dcgan.run.checkpoint import EXPORT_NAME, export_generator
from dcgan.run.hub import export_hub
from dcgan.run.sources import load_generator
from dcgan.seeding import z_for_indices

MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 9, 20, 17  # what torch's TorchScript exporter writes
TOLERANCE = 1e-4  # max |ONNX - PyTorch| over the check's images, in [-1, 1] units
CHECK_BATCHES = (1, 5)  # batch sizes the check runs: the batch axis must be dynamic
INSTALL = "pip install 'dcgan[onnx]'"
FORMATS = ("onnx", "safetensors", "hub")


@dataclass(frozen=True)
class Exported:
    """What `export` wrote: the file, and for ONNX the check's max |ONNX - PyTorch|."""

    path: Path
    max_abs_diff: float | None = None
    opset: int | None = None


def default_out(source: Path, fmt: str) -> Path:
    """Where an export goes without --out: beside the source (in it, for a run directory); a
    Hub folder beside the source, named after it."""
    if fmt == "hub":
        return source.parent / f"{source.stem}-hub"
    suffix = f".{fmt}"
    if source.is_dir():
        return source / Path(EXPORT_NAME).with_suffix(suffix).name
    return source.with_suffix(suffix)


def export(source: Path, fmt: str, out: Path | None = None, opset: int = DEFAULT_OPSET) -> Exported:
    """Export the sampling G of `source` (run directory, .safetensors export or .pt checkpoint)
    as `fmt` ("onnx", "safetensors" or "hub": a Hugging Face Hub folder) to `out` (default:
    `default_out`)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    out = out if out is not None else default_out(source, fmt)
    if fmt == "hub":
        generator, meta = _load(source)
        return Exported(export_hub(generator, out, meta, run_of(source)))
    if out.suffix != f".{fmt}":
        raise ConfigError(f"--out: {out} must end in .{fmt} for --format {fmt}")
    if fmt == "safetensors":
        generator, meta = _load(source)
        run = run_of(source)
        export_generator(generator, out.parent, meta, name=out.stem, run=run)
        if out.stem != Path(EXPORT_NAME).stem:  # export_generator writes the card of the main one
            write_card(out.parent, out.stem, run, generator)
        return Exported(out)
    onnx, ort = require_onnx()
    check_opset(opset)
    generator, meta = _load(source)
    data = onnx_bytes(generator, opset, meta)
    diff = verify(data, generator, meta["z_dist"], onnx, ort)
    if diff > TOLERANCE:
        raise CheckpointError(
            f"the ONNX graph of {source} differs from PyTorch by {diff:.2e} (> {TOLERANCE:g}); "
            f"{out} was not written: try another --opset"
        )
    atomic_write(out, lambda f: f.write(data))
    return Exported(out, diff, opset)


def _load(source: Path) -> tuple[Generator, dict[str, Any]]:
    """G of `source` and the export metadata a new export of it carries: its z distribution
    and, from the source's export, its step, moving-average decay and class names."""
    if not source.exists():
        raise ConfigError(
            f"SOURCE: {source} does not exist; give a run directory, a generator.safetensors "
            "or a checkpoint .pt"
        )
    generator, z_dist = load_generator(source)
    return generator, {**_export_extras(source), "z_dist": z_dist}


KEPT_META = ("step", "ema", "class_names")


def _export_extras(source: Path) -> dict[str, Any]:
    """`KEPT_META` of the source's export JSON, when the source is (or holds) an export."""
    weights = source / EXPORT_NAME if source.is_dir() else source
    meta_path = weights.with_suffix(".json")
    if weights.suffix != ".safetensors" or not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_bytes())
    except ValueError:
        return {}  # load_generator fell back to a checkpoint; its weights have no such notes
    return {k: meta[k] for k in KEPT_META if isinstance(meta, dict) and k in meta}


def require_onnx() -> tuple[Any, Any]:
    """The onnx and onnxruntime modules, or a one-line error saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ConfigError(
            f"--format onnx: the {e.name or 'onnx'} package is not installed; {INSTALL}"
        ) from None
    return onnx, onnxruntime


def check_opset(opset: int) -> None:
    """Refuse an opset torch's exporter cannot write: one line naming the flag."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(
            f"--opset: {opset} is outside {MIN_OPSET}..{MAX_OPSET}, the opsets this exporter "
            f"writes; the default {DEFAULT_OPSET} suits onnxruntime >= 1.17"
        )


def example_inputs(generator: Generator, batch: int, z_dist: str) -> tuple[torch.Tensor, ...]:
    """Seeded inputs of `batch` images: (z,) or, for a conditional G, (z, labels)."""
    cfg = generator.cfg
    z = z_for_indices(0, range(batch), cfg.nz, z_dist).float()
    if not getattr(cfg, "conditional", False):
        return (z,)
    return z, torch.arange(batch, dtype=torch.int64) % cfg.num_classes


def onnx_bytes(generator: Generator, opset: int, meta: dict[str, Any]) -> bytes:
    """G as an ONNX model (fp32, eval mode, torch's convolutions), with its settings in the
    model's metadata: nz, image_size, channels, z_dist (and num_classes, class_names)."""
    import onnx

    model = copy.deepcopy(generator).float().cpu().eval()
    inputs = example_inputs(model, 2, meta["z_dist"])
    names = ["z", "labels"][: len(inputs)]
    axes = {name: {0: "batch"} for name in [*names, "images"]}
    buffer = io.BytesIO()
    with kernels.disabled(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(
            model,
            inputs,
            buffer,
            input_names=names,
            output_names=["images"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed
        )
    proto = onnx.load_from_string(buffer.getvalue())
    cfg = model.cfg
    props = {"nz": cfg.nz, "image_size": cfg.image_size, "channels": cfg.channels, **meta}
    if getattr(cfg, "conditional", False):
        props["num_classes"] = cfg.num_classes
    onnx.helper.set_model_props(proto, {k: _prop(v) for k, v in props.items()})
    proto.producer_name = "dcgan"
    return proto.SerializeToString()


def _prop(value: Any) -> str:
    """A metadata value as text: lists comma-separated."""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def verify(data: bytes, generator: Generator, z_dist: str, onnx: Any, ort: Any) -> float:
    """`onnx.checker` on the model, then max |onnxruntime - PyTorch| over batches of
    `CHECK_BATCHES` images; a model the checker or onnxruntime refuses is one line."""
    try:
        onnx.checker.check_model(onnx.load_from_string(data))
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnx's ValidationError, onnxruntime's Fail/InvalidGraph
        first = " ".join(str(e).split())[:160]
        raise CheckpointError(f"the exported ONNX graph is invalid ({first})") from None
    model = copy.deepcopy(generator).float().cpu().eval()
    worst = 0.0
    for batch in CHECK_BATCHES:
        inputs = example_inputs(model, batch, z_dist)
        with kernels.disabled(), torch.no_grad():
            expected = model(*inputs).numpy()
        feed = {name: t.numpy() for name, t in zip(("z", "labels"), inputs, strict=False)}
        (got,) = session.run(["images"], feed)
        if got.shape != expected.shape:
            raise CheckpointError(
                f"the exported ONNX graph gives shape {got.shape} for a batch of {batch}, "
                f"not {expected.shape}"
            )
        worst = max(worst, float(abs(got - expected).max()))
    return worst
