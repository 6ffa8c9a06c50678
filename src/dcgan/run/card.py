"""The model card: a README.md beside every `generator.safetensors` export that says what the
model is, what it was trained on, how well it measured, what it draws and how to load it.

It is rewritten with the export (every checkpoint of a run, `DCGAN.save`, `dcgan export`) and
after each `dcgan evaluate` of the run. Its figures come from the run directory: config.yaml,
stats.jsonl (steps, images seen, FID during training), metrics.jsonl (`dcgan evaluate`) and the
newest preview grid. A missing or damaged file leaves its part of the card out, never the card.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from dcgan.config import Config, ModelConfig, from_dict
from dcgan.errors import ConfigError, Recovered, shown
from dcgan.fsio import atomic_write, atomic_write_text, read_small
from dcgan.nn.models import Generator
from dcgan.run.rundir import (
    CONFIG_FILE,
    METRICS_FILE,
    latest_preview,
    read_config,
    read_stats,
)

CARD_NAME = "README.md"
EXPORT_STEM = "generator"  # the main export, generator.safetensors
HUB_STEM = "model"  # the Hub layout's export (model.safetensors + config.json, run/hub.py)
SAMPLES_COPY = "{name}-samples.png"  # the preview grid, copied beside an export outside its run


def run_of(source: str | Path) -> Path | None:
    """The run directory that `source` (a run, an export in one, a checkpoint) belongs to."""
    source = Path(source)
    for d in (source, source.parent, source.parent.parent):
        if d.is_dir() and (d / CONFIG_FILE).is_file():
            return d
    return None


MAX_RECORDS_BYTES = 64 << 20  # a metrics.jsonl of a few hundred thousand measurements


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, skipping lines that are not one (a damaged line
    or a last line cut short); empty when the file is missing or unreadable, and with a
    warning when it is too big to be a run's record of measurements."""
    try:
        lines = read_small(path, MAX_RECORDS_BYTES).splitlines()
    except OSError:
        return []
    except ValueError as e:
        warnings.warn(f"{e}: its records are not shown", Recovered, stacklevel=2)
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def evaluations(run: Path) -> list[dict[str, Any]]:
    """The run's `dcgan evaluate` records (metrics.jsonl), oldest first."""
    records = read_records(run / METRICS_FILE)
    return [
        r for r in records if r.get("command") == "evaluate" and isinstance(r.get("metrics"), dict)
    ]


def training_fids(run: Path) -> list[dict[str, Any]]:
    """The run's FID-during-training records (`fid` lines of stats.jsonl), oldest first."""
    try:
        stats = read_stats(run)
    except OSError:
        stats = []
    return [r for r in stats if isinstance(r.get("fid"), (int, float))]


def refresh_card(run: str | Path) -> Path | None:
    """Rewrite the model card of the run's export (after a new measurement); None when the
    run has no export."""
    if not (Path(run) / f"{EXPORT_STEM}.safetensors").is_file():
        return None
    return write_card(run)


def write_card(
    directory: str | Path,
    name: str = "generator",
    run: str | Path | None = None,
    generator: Generator | None = None,
) -> Path:
    """Write `directory/README.md` for the export `directory/{name}.safetensors`, with the
    figures of run directory `run` (default: `directory` when it is one). Returns its path."""
    directory = Path(directory)
    run = Path(run) if run is not None else run_of(directory)
    meta = _export_meta(directory / f"{name}.json")
    model = generator.cfg if generator is not None else _model(meta)
    cfg = _run_config(run)
    latest = latest_preview(run) if run is not None else None
    grid = latest[1] if latest is not None else None
    shown = None
    if grid is not None:
        if grid.resolve().is_relative_to(directory.resolve()):
            shown = grid.resolve().relative_to(directory.resolve()).as_posix()
        else:
            copy = directory / SAMPLES_COPY.format(name=name)
            atomic_write(copy, lambda f: f.write(grid.read_bytes()))
            shown = copy.name
    stats = _last_stats(run)
    parts = [
        _model_section(model, meta, generator, name, cfg),
        _training_section(cfg, stats, meta),
        _metrics_section(run),
        f"## Samples\n\n![samples of the model]({shown})\n" if shown else "",
        _usage_section(directory, name, (directory / CONFIG_FILE).is_file()),
    ]
    return atomic_write_text(directory / CARD_NAME, "\n".join(p for p in parts if p))


def _export_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _model(meta: dict[str, Any]) -> ModelConfig | None:
    try:
        return from_dict({"model": meta["model"]}, "export").model
    except (ConfigError, KeyError, TypeError):
        return None


def _run_config(run: Path | None) -> Config | None:
    if run is None:
        return None
    try:
        return read_config(run)
    except (ConfigError, OSError):
        return None


def _last_stats(run: Path | None) -> dict[str, Any]:
    """The newest training record of stats.jsonl (steps, images seen)."""
    if run is None:
        return {}
    try:
        records = [r for r in read_stats(run) if "images_seen" in r]
    except OSError:
        return {}
    return records[-1] if records else {}


def parameter_count(model: ModelConfig, generator: Generator | None = None) -> int:
    """G's trainable parameters (BatchNorm's running statistics are buffers, not counted)."""
    generator = generator if generator is not None else Generator(model)
    return sum(p.numel() for p in generator.parameters())


def _model_section(
    model: ModelConfig | None, meta: dict, generator: Generator | None, name: str, cfg
) -> str:
    dataset = cfg.data.dataset if cfg is not None else "unknown data"
    if model is None:
        return f"# DCGAN generator\n\nThe settings file {name}.json is missing or damaged.\n"
    size = f"{model.image_size}x{model.image_size}"
    rows = [
        (
            "Architecture",
            "DCGAN generator (Radford et al. 2015): transposed convolutions, "
            "BatchNorm, ReLU, tanh output",
        ),
        ("Output", f"{size} images, {model.channels} channel(s), in [-1, 1]"),
        ("Latent z", f"nz = {model.nz}, {meta.get('z_dist', 'normal')} distribution"),
        ("Widths", f"ngf = {model.ngf}, max_mult = {model.max_mult}"),
        ("Parameters", f"{parameter_count(model, generator):,}"),
    ]
    if getattr(model, "conditional", False):
        names = meta.get("class_names")
        listed = f": {', '.join(map(str, names))}" if isinstance(names, list) else ""
        rows.append(("Conditional", f"{model.num_classes} classes{listed}"))
    settings = "config.json" if name == HUB_STEM else f"{name}.json"
    files = f"`{name}.safetensors` (weights) and `{settings}` (settings)"
    rows.append(("Files", files))
    return f"# DCGAN generator: {dataset}, {size}\n\n## Model\n\n{_table(rows)}"


def _training_section(cfg: Config | None, stats: dict, meta: dict) -> str:
    if cfg is None:
        return "## Training\n\nNo run settings (config.yaml) were found with this export.\n"
    t, d = cfg.train, cfg.data
    step = meta.get("step", stats.get("step"))
    rows = [
        ("Dataset", f"{d.dataset} (split {d.split}, {d.holdout} images held out)"),
        ("Steps", f"{step:,}" if isinstance(step, int) else "unknown"),
        ("Images seen", f"{stats['images_seen']:,}" if "images_seen" in stats else "unknown"),
        ("Batch size", str(t.batch_size)),
        ("Precision", t.precision),
        ("Loss", t.loss),
        ("Learning rate", f"{t.lr:g} (Adam, betas {t.beta1:g}, {t.beta2:g})"),
        ("Moving average of G", f"decay {t.ema:g}" if t.ema else "none"),
        ("Augmentation", t.augment or "none"),
        ("Seed", str(t.seed)),
    ]
    return f"## Training\n\n{_table(rows)}"


def _metrics_section(run: Path | None) -> str:
    if run is None:
        return ""
    rows = []
    for record in evaluations(run):
        ref = record.get("reference") if isinstance(record.get("reference"), dict) else {}
        against = f"{cell(ref.get('count', '?'))} real images of {cell(ref.get('dataset', '?'))}"
        n = cell(record.get("num_samples", "?"))
        rows += [(name, value, n, against) for name, value in metric_values(record["metrics"])]
    fids = training_fids(run)
    if fids:
        best = min(fids, key=lambda r: r["fid"])
        n, ref = _training_fid_setting(run)
        rows.append((f"FID at step {fids[-1]['step']}", str(fids[-1]["fid"]), n, ref))
        rows.append((f"best FID (step {best['step']})", str(best["fid"]), n, ref))
    if not rows:
        return "## Metrics\n\nNot measured yet: `dcgan evaluate RUN` adds them here.\n"
    head = "| metric | value | N generated | reference |\n| --- | --- | --- | --- |\n"
    body = "".join(f"| {' | '.join(r)} |\n" for r in rows)
    return f"## Metrics\n\n{head}{body}"


METRIC_NAMES = {"fid": "FID", "kid_mean": "KID", "precision": "precision", "recall": "recall"}


def metric_values(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value as recorded) of an evaluate record's metrics; KID as mean ± std."""
    values = []
    for key, value in metrics.items():
        if key == "kid_std":
            continue
        text = cell(value)
        if key == "kid_mean" and "kid_std" in metrics:
            text = f"{text} ± {cell(metrics['kid_std'])}"
        values.append((cell(METRIC_NAMES.get(key, key)), text))
    return values


def cell(value: object, limit: int = 60) -> str:
    """A value read back from a run's files as one table cell: on one line, without the
    Markdown column bar, and cut to `limit` characters (a hand-edited or damaged record may
    hold anything JSON can)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return shown(value)
    text = " ".join(str(value)[: limit + 1].split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _training_fid_setting(run: Path) -> tuple[str, str]:
    """(N, reference) of the FID measured during training (--eval-every)."""
    cfg = _run_config(run)
    if cfg is None:
        return "?", "?"
    return str(cfg.output.eval_samples), f"{cfg.data.dataset} ({cfg.output.eval_reference})"


def _usage_section(directory: Path, name: str, loadable: bool) -> str:
    """Three lines of Python that load the export and generate (`DCGAN.load` where the
    directory holds config.yaml too), and the command that does the same."""
    if name == HUB_STEM:
        code = (
            "from dcgan import DCGAN\n"
            'gan = DCGAN.from_pretrained("USER/NAME")  # a Hub repo id, or this folder\'s path\n'
            'gan.generate_images(16, "samples/")'
        )
        shell = "dcgan generate THIS_FOLDER --num 16 --out samples/"
        return f"## Use\n\n```python\n{code}\n```\n\nor\n\n```sh\n{shell}\n```\n"
    if loadable and name == "generator":
        code = (
            "from dcgan import DCGAN\n"
            f'gan = DCGAN.load("{directory.as_posix()}")\n'
            'gan.generate_images(16, "samples/")  # or gan.generate_image(seed=0): (C, S, S)'
        )
    else:
        code = (
            "from dcgan.run.sources import load_generator\n"
            "from dcgan.sampling import write_images\n"
            f'generator, z_dist = load_generator("{(directory / name).as_posix()}.safetensors")\n'
            'write_images(generator, 16, "samples/", dist=z_dist)'
        )
    shell = f"dcgan generate {(directory / name).as_posix()}.safetensors --num 16 --out samples/"
    return f"## Use\n\n```python\n{code}\n```\n\nor\n\n```sh\n{shell}\n```\n"


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"| {k} | {v} |\n" for k, v in rows)
    return f"| | |\n| --- | --- |\n{body}"
