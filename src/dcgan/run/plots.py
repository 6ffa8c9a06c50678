"""Training curves: losses and discriminator outputs vs step, saved as a PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dcgan.fsio import atomic_write

__all__ = ["plot_losses"]

_LOSS_CURVES = (
    ("loss_d_real", "D real"),
    ("loss_d_fake", "D fake"),
    ("loss_d", "D total"),
    ("loss_g", "G"),
)
_D_CURVES = (("d_real", "D(x)"), ("d_fake", "D(G(z))"))
_AUGMENT_CURVES = (("augment_p", "augment p"), ("rt", "rt = E[sign(D(x))]"))


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the records that have both ``step`` and a non-None ``key``."""
    xs: list[float] = []
    ys: list[float] = []
    for row in records:
        if row.get("step") is None or row.get(key) is None:
            continue
        xs.append(float(row["step"]))
        ys.append(float(row[key]))  # float() also unwraps 0-d tensors / numpy scalars
    return xs, ys


def plot_losses(records: Sequence[Mapping[str, Any]], path: Path | str) -> Path:
    """Plot stats rows to a PNG; returns the path.

    Each record is a dict with ``step`` and any of ``loss_d_real``, ``loss_d_fake``, ``loss_d``,
    ``loss_g`` (panel "Losses") and ``d_real``, ``d_fake`` (mean sigmoid of D's logits on real /
    fake images, y in [0, 1]). When records hold ``augment_p``, a third panel shows it with ADA's
    overfitting signal ``rt`` = E[sign(D(x))]. A record missing a key is skipped for that curve
    only. Raises ValueError if ``records`` is empty. Written atomically.
    """
    if len(records) == 0:
        raise ValueError("plot_losses needs at least one record")

    # Imported lazily: matplotlib is slow to import and only needed here. Figure + the Agg
    # canvas avoids pyplot's global state and GUI backends (safe in threads and on servers).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    augmented = any(row.get("augment_p") is not None for row in records)
    fig = Figure(figsize=(18 if augmented else 12, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3 if augmented else 2)
    _panel(axes[0], records, _LOSS_CURVES, "Losses", "loss")
    _panel(axes[1], records, _D_CURVES, "Discriminator outputs", "mean sigmoid(D)")
    # 0.5 is where D can no longer tell real from fake: the GAN equilibrium.
    axes[1].axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
    axes[1].set_ylim(0, 1)
    if augmented:
        _panel(axes[2], records, _AUGMENT_CURVES, "Augmentation", "p, rt")
        axes[2].set_ylim(-1.05, 1.05)
    return atomic_write(path, lambda f: fig.savefig(f, format="png"))


def _panel(ax, records, curves: tuple[tuple[str, str], ...], title: str, ylabel: str) -> None:
    """One panel: a line per (key, label) of `curves` that the records hold."""
    for key, label in curves:
        xs, ys = _series(records, key)
        if xs:
            ax.plot(xs, ys, label=label, linewidth=1.2)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a legend with no lines only warns
        ax.legend(loc="best")
