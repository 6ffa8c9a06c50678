"""How light or dark a run's samples are, step by step, read from the preview grids it writes.

    python benchmarks/sample_tone.py runs/colour-quality/runs/twemoji/folder-64-joint/s0
    python benchmarks/sample_tone.py docs/colour-twemoji-real.png   # the same measure on reals

Every run writes `samples/step-NNNNNN.png`: 64 samples of the averaged G from fixed noise,
tiles of `--image-size` pixels framed by 2 pixels of padding. For each grid this prints the
mean pixel value of its tiles (in [0, 1], the padding cut away) and the share of their pixels
whose grey level is below 0.2 (near black). A drift of either away from the real pictures'
values shows long before FID does, without generating or scoring anything: the measure that
found `--joint-d-batch`'s samples darkening from about step 12,000 (docs/experiments.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from dcgan.run.rundir import SAMPLES_DIR, preview_grids

PADDING = 2  # dcgan.images.make_grid's default, which the previews use
DARK = 0.2  # grey level below which a pixel counts as near black


def tiles(grid: np.ndarray, size: int, padding: int = PADDING) -> np.ndarray:
    """A grid (H, W, 3) uint8 of size x size tiles framed by `padding` -> (N, size, size, 3)
    floats in [0, 1]: every whole cell, in row order (cells left empty included)."""
    cell = size + padding
    rows, cols = (grid.shape[0] - padding) // cell, (grid.shape[1] - padding) // cell
    if rows < 1 or cols < 1:
        raise ValueError(f"a grid of {grid.shape[1]}x{grid.shape[0]} holds no {size}px tile")
    out = [
        grid[padding + r * cell : padding + r * cell + size, padding + c * cell :][:, :size]
        for r in range(rows)
        for c in range(cols)
    ]
    return np.stack(out).astype(np.float64) / 255.0


def tone(images: np.ndarray) -> tuple[float, float]:
    """images (N, H, W, 3) in [0, 1] -> (mean pixel value, share of pixels with grey < DARK)."""
    grey = images.mean(-1)
    return float(images.mean()), float((grey < DARK).mean())


def grids_of(path: Path) -> list[tuple[str, Path]]:
    """A run directory -> its preview grids by step; a PNG -> itself."""
    if path.is_dir():
        found = preview_grids(path)
        if not found:
            raise SystemExit(
                f"{path}: no {SAMPLES_DIR}/step-*.png; pass a run directory or a grid PNG"
            )
        return [(str(step), p) for step, p in found.items()]
    if not path.is_file():
        raise SystemExit(f"{path}: no such run directory or grid PNG")
    return [(path.name, path)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run directories or grid PNGs")
    parser.add_argument("--image-size", type=int, default=64, help="the tiles' side in pixels")
    parser.add_argument("--every", type=int, default=1, help="print every k-th grid of a run")
    args = parser.parse_args(argv)
    print(f"{'grid':>24}  mean  near-black (grey < {DARK})")
    for path in args.paths:
        print(path)
        grids = grids_of(path)
        shown = grids[:: args.every] + ([grids[-1]] if (len(grids) - 1) % args.every else [])
        for label, grid_path in shown:
            grid = np.asarray(Image.open(grid_path).convert("RGB"))
            mean, dark = tone(tiles(grid, args.image_size))
            print(f"{label:>24}  {mean:.3f}  {dark:6.1%}")


if __name__ == "__main__":
    main()
