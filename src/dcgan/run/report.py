"""`dcgan report`: a run on one self-contained HTML page, RUN/report.html.

The page holds the settings (config.yaml), the loss and D-output curves (drawn from stats.jsonl,
else the run's losses.png), the preview grids over time, the latest grid, the metrics
(`dcgan evaluate` and `probe` records of metrics.jsonl, FID during training from stats.jsonl),
and the nearest-neighbour and latent-space pictures the run directory holds. Every image is a
base64 data URI and the style is inline: the page needs no network and no other file. A missing
or damaged file gives a section that says so, never a traceback.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from dcgan.errors import ConfigError, Recovered
from dcgan.fsio import atomic_write_text, read_small
from dcgan.run.card import (
    cell,
    evaluations,
    metric_values,
    read_records,
    training_fids,
)
from dcgan.run.plots import plot_losses
from dcgan.run.rundir import (
    CONFIG_FILE,
    METRICS_FILE,
    SAMPLES_DIR,
    STATS_FILE,
    latest_preview,
    preview_grids,
    read_stats,
)

MAX_IMAGE_BYTES = 8 * 1024 * 1024  # a bigger picture is named, not embedded
TIMELINE = 8  # preview grids shown over time
LATENT_WORDS = ("interp", "walk", "sweep", "arithmetic", "latent")
PICTURES = (".png", ".gif", ".jpg", ".jpeg", ".webp")
MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".webp": "image/webp"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222;
       background: #fff; padding: 0 1em; }
h1 { border-bottom: 3px solid #3465a4; padding-bottom: .3em; }
h2 { color: #3465a4; margin-top: 1.6em; }
pre { background: #f4f4f4; padding: 1em; overflow: auto; font-size: 13px; columns: 3; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #ccc; padding: .3em .7em; text-align: left; font-size: 14px; }
th { background: #eef2f8; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
figure { display: inline-block; margin: .4em; text-align: center; vertical-align: top; }
figure img { width: 240px; }
figcaption { font-size: 13px; color: #555; }
.note { background: #fff4e0; border-left: 4px solid #f0a030; padding: .5em 1em; }
"""


@dataclass
class Section:
    """One part of the page: a title, its HTML, the problems found building it (a missing or
    damaged file) and hints (what would fill an optional section)."""

    title: str
    body: str = ""
    notes: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    def html(self) -> str:
        notes = "".join(f'<p class="note">{html.escape(n)}</p>\n' for n in self.notes)
        hints = "".join(f"<p>{html.escape(n)}</p>\n" for n in self.hints)
        title = html.escape(self.title)
        return f"<section>\n<h2>{title}</h2>\n{notes}{hints}{self.body}</section>\n"


def write_report(run: str | Path, out: str | Path | None = None) -> tuple[Path, int]:
    """Write the report of run directory `run` to `out` (default RUN/report.html), atomically.
    Returns its path and how many sections report a missing or damaged file."""
    run = Path(run)
    if not run.is_dir():
        raise ConfigError(f"RUN: {run} is not a directory; give a run directory (runs/NNNNN-...)")
    out = Path(out) if out is not None else run / "report.html"
    sections = [
        _guarded("Settings", _settings, run),
        _guarded("Training curves", _curves, run),
        _guarded("Samples over time", _timeline, run),
        _guarded("Latest samples", _latest, run),
        _guarded("Metrics", _metrics, run),
        _guarded("Nearest neighbours in the training set", _nearest, run),
        _guarded("Latent space", _latent, run),
    ]
    page = _page(run, sections)
    atomic_write_text(out, page)
    return out, sum(bool(s.notes) for s in sections)


def _guarded(title: str, build: Callable[[Path, Section], None], run: Path) -> Section:
    """`build` the section; an unreadable file it meets becomes a note, not a traceback."""
    section = Section(title)
    try:
        build(run, section)
    except (OSError, ValueError, KeyError, TypeError) as e:  # ConfigError is a ValueError
        section.notes.append(f"could not build this section: {' '.join(str(e).split())}")
    return section


def _page(run: Path, sections: list[Section]) -> str:
    name = html.escape(run.resolve().name)
    body = "".join(s.html() for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>dcgan report: {name}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>DCGAN run {name}</h1>\n{body}</body>\n</html>\n"
    )


# ---------------------------------------------------------------------------- pictures


def data_uri(path: Path) -> str:
    """`path` as a data: URI, after PIL has checked that it is a whole picture; ValueError
    (naming the file) for a damaged or oversized one."""
    data = read_small(path, MAX_IMAGE_BYTES)  # a bigger one is named, never read
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as e:  # PIL raises many types for a truncated or foreign file
        raise ValueError(f"{path} is damaged or not a picture ({type(e).__name__})") from None
    mime = MIME.get(path.suffix.lower(), "image/jpeg")
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _figure(path: Path, caption: str, section: Section, width: str | None = None) -> str:
    """An <img> of `path` (`width` a CSS width; default a thumbnail) with a caption; a damaged
    picture is a note in `section`."""
    try:
        uri = data_uri(path)
    except (OSError, ValueError) as e:
        section.notes.append(str(e))
        return ""
    style = f' style="width:{width}"' if width else ""
    alt = html.escape(caption)
    return f'<figure><img src="{uri}" alt="{alt}"{style}><figcaption>{alt}</figcaption></figure>\n'


# ---------------------------------------------------------------------------- sections


def _settings(run: Path, section: Section) -> None:
    path = run / CONFIG_FILE
    if not path.is_file():
        section.notes.append(f"{path} is missing: this may not be a run directory")
        return
    try:
        text = read_small(path, MAX_IMAGE_BYTES).decode("utf-8", "replace")
    except (OSError, ValueError) as e:
        section.notes.append(f"{CONFIG_FILE} is unreadable: {e}")
        return
    try:
        from dcgan.run.rundir import read_config

        read_config(run)
    except ConfigError as e:
        section.notes.append(f"{CONFIG_FILE} is damaged: {' '.join(str(e).split())}")
    section.body = f"<pre>{html.escape(text)}</pre>\n"


def _curves(run: Path, section: Section) -> None:
    with warnings.catch_warnings(record=True) as caught:  # damaged lines: notes on the page
        warnings.simplefilter("always", Recovered)
        try:
            records = read_stats(run)
        except OSError as e:
            section.notes.append(f"{STATS_FILE} is unreadable ({e.strerror or e})")
            records = []
    section.notes += [str(w.message) for w in caught if issubclass(w.category, Recovered)]
    records = [r for r in records if "loss_g" in r or "d_real" in r]
    if records:
        with tempfile.TemporaryDirectory() as tmp:
            path = plot_losses(records, Path(tmp) / "losses.png")
            caption = f"losses and D outputs, {len(records)} records"
            section.body = _figure(path, caption, section, "1050px")
        return
    saved = run / "losses.png"
    if saved.is_file():
        section.notes.append(f"{STATS_FILE} holds no training records; showing losses.png")
        section.body = _figure(saved, "losses.png", section, "1050px")
    else:
        section.notes.append(f"no training records: {run / STATS_FILE} is missing or empty")


def _timeline(run: Path, section: Section) -> None:
    grids = list(preview_grids(run).items())
    if not grids:
        section.notes.append(f"no preview grids in {run / SAMPLES_DIR}")
        return
    picks = sorted({round(i * (len(grids) - 1) / max(TIMELINE - 1, 1)) for i in range(TIMELINE)})
    shown = [grids[i] for i in picks if i < len(grids)]
    section.body = "".join(_figure(p, f"step {step}", section) for step, p in shown)


def _latest(run: Path, section: Section) -> None:
    latest = latest_preview(run)
    if latest is None:
        section.notes.append(f"no preview grid in {run / SAMPLES_DIR}")
        return
    step, grid = latest
    section.body = _figure(grid, f"step {step} ({grid.name})", section, "600px")


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(c, 200))}</td>" for c in row) + "</tr>\n"
        for row in rows
    )
    return f"<table>\n<tr>{cells}</tr>\n{body}</table>\n"


def _metrics(run: Path, section: Section) -> None:
    parts = []
    evaluated = evaluations(run)
    if evaluated:
        rows = []
        for r in evaluated:
            ref = r.get("reference") if isinstance(r.get("reference"), dict) else {}
            against = f"{ref.get('count', '?')} of {ref.get('dataset', '?')}"
            for name, value in metric_values(r["metrics"]):
                rows.append([name, value, r.get("num_samples", "?"), against, r.get("source", "")])
        head = ["metric", "value", "N generated", "reference (real images)", "source"]
        parts.append("<h3>dcgan evaluate</h3>\n" + _table(head, rows))
    probes = [r for r in read_records(run / METRICS_FILE) if r.get("command") == "probe"]
    if probes:
        rows = [_probe_row(r) for r in probes]
        head = ["dataset", "labels per class", "trained D accuracy", "random D accuracy"]
        parts.append("<h3>dcgan probe (linear probe on D's features)</h3>\n" + _table(head, rows))
    fids = training_fids(run)
    if fids:
        rows = [[r["step"], r["fid"], r.get("best_fid", "")] for r in fids]
        parts.append("<h3>FID during training</h3>\n" + _table(["step", "FID", "best"], rows))
    if not parts:
        section.hints.append(
            f"no metrics yet: {run / METRICS_FILE} has no records and {STATS_FILE} no FID; "
            "run dcgan evaluate RUN (or train with --eval-every N)"
        )
    section.body = "".join(parts)


def _probe_row(record: dict[str, Any]) -> list[Any]:
    def accuracy(key: str) -> str:
        result = record.get(key)
        if not isinstance(result, dict):
            return "?"
        return f"{result.get('accuracy_mean', '?')} ± {result.get('accuracy_std', '?')}"

    return [
        record.get("dataset", "?"),
        record.get("labels_per_class", "?"),
        accuracy("trained_d"),
        accuracy("random_d"),
    ]


def _pictures(run: Path, keep: Callable[[str], bool]) -> list[Path]:
    """Pictures at the top of the run directory whose lower-cased name `keep` accepts."""
    found = [p for p in run.iterdir() if p.is_file() and p.suffix.lower() in PICTURES]
    return sorted(p for p in found if keep(p.name.lower()))


def _nearest(run: Path, section: Section) -> None:
    shown = _pictures(run, lambda name: "nearest" in name)
    if not shown:
        section.hints.append(f"none yet: dcgan nearest {run} writes {run / 'nearest.png'}")
        return
    caption = "each row: a sample, then its nearest training images"
    section.body = "".join(_figure(p, f"{p.name}: {caption}", section, "auto") for p in shown)


def _latent(run: Path, section: Section) -> None:
    shown = _pictures(run, lambda name: any(w in name for w in LATENT_WORDS))
    if not shown:
        section.hints.append(
            f"none yet: write them into the run, e.g. dcgan interpolate {run} --out "
            f"{run / 'interpolation.png'} (also dcgan walk, sweep, arithmetic)"
        )
        return
    section.body = "".join(_figure(p, p.name, section, "auto") for p in shown)
