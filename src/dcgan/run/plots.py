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
    """Plot stats rows to a PNG with two panels; returns the path.

    Each record is a dict with ``step`` and any of ``loss_d_real``, ``loss_d_fake``, ``loss_d``,
    ``loss_g`` (left panel, "Losses") and ``d_real``, ``d_fake`` (right panel, mean sigmoid of
    D's logits on real / fake images, y in [0, 1]). A record missing a key is skipped for that
    curve only. Raises ValueError if ``records`` is empty. Written atomically.
    """
    if len(records) == 0:
        raise ValueError("plot_losses needs at least one record")

    # Imported lazily: matplotlib is slow to import and only needed here. Figure + the Agg
    # canvas avoids pyplot's global state and GUI backends (safe in threads and on servers).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_d = fig.subplots(1, 2)

    for key, label in _LOSS_CURVES:
        xs, ys = _series(records, key)
        if xs:
            ax_loss.plot(xs, ys, label=label, linewidth=1.2)
    ax_loss.set_title("Losses")
    ax_loss.set_ylabel("loss")

    for key, label in _D_CURVES:
        xs, ys = _series(records, key)
        if xs:
            ax_d.plot(xs, ys, label=label, linewidth=1.2)
    # 0.5 is where D can no longer tell real from fake: the GAN equilibrium.
    ax_d.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
    ax_d.set_ylim(0, 1)
    ax_d.set_title("Discriminator outputs")
    ax_d.set_ylabel("mean sigmoid(D)")

    for ax in (ax_loss, ax_d):
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a legend with no lines only warns
            ax.legend(loc="best")

    return atomic_write(path, lambda f: fig.savefig(f, format="png"))
