"""Small image utilities: tensor <-> uint8, grids, PNG/GIF files (no torchvision).

Conventions: models produce float images in [-1, 1] with shape (N, C, H, W); everything written
to disk is uint8 with shape (C, H, W). Files are written atomically (`dcgan.fsio`) so that a crash
(or a reader polling the output directory) never sees a half-written image.
"""

from __future__ import annotations

import functools
import io
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from dcgan.errors import Recovered, brief
from dcgan.fsio import atomic_write

__all__ = [
    "add_row_labels",
    "enlarge",
    "label_height",
    "label_scale",
    "make_grid",
    "png_bytes",
    "read_png",
    "save_gif",
    "save_gif_images",
    "save_png",
    "text_mask",
    "to_uint8",
]

LABEL_TEXT = 235  # labels: light text ...
LABEL_BOX = 48  # ... on a dark grey box, apart from both black padding and black backgrounds


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Map float images in [-1, 1] to uint8 in [0, 255], same shape, on the CPU.

    Accepts (N, C, H, W) or (C, H, W) (any shape works). -1 -> 0, 1 -> 255, 0 -> 128
    (127.5 rounds half to even). Values outside [-1, 1] are clamped.
    """
    if not x.is_floating_point():
        raise ValueError(f"to_uint8 expects a floating point tensor in [-1, 1], got {x.dtype}")
    # float32 because bf16/fp16 cannot represent all integers up to 255 exactly; the maths runs
    # on x's device and only the 4x smaller uint8 result is copied to the CPU.
    y = ((x.detach().float() + 1) * 127.5).round().clamp(0, 255)
    return y.to(torch.uint8).cpu()


def make_grid(
    images: torch.Tensor,
    nrow: int | None = None,
    padding: int = 2,
    pad_value: int = 0,
    labels: Sequence[str] | None = None,
) -> torch.Tensor:
    """Tile uint8 images (N, C, H, W) into one uint8 image (C, H', W').

    ``nrow`` is the number of images per row (default ``ceil(sqrt(N))``). Like torchvision's
    ``make_grid``, ``padding`` pixels of ``pad_value`` separate the tiles and frame the grid:
    ``H' = rows * (H + padding) + padding`` and ``W' = cols * (W + padding) + padding`` with
    ``cols = min(nrow, N)`` and ``rows = ceil(N / cols)``. Unused cells stay ``pad_value``.
    Unlike torchvision, the channel count is kept as is (no grey -> RGB expansion).

    ``labels`` (one short text per image, e.g. its index) adds a caption strip of
    ``label_height(H)`` rows above each image: light text on a dark box as wide as the image
    (text wider than the image is cut at its edge; an empty text leaves the strip
    ``pad_value``). The images themselves are untouched, so each tile equals the unlabelled
    grid's; only the strips are new and ``H'`` grows by ``rows * label_height(H)``.
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"make_grid expects a uint8 tensor (use to_uint8 first), got {got}")
    if images.dim() != 4:
        raise ValueError(f"make_grid expects shape (N, C, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    if n == 0:
        raise ValueError("make_grid needs at least one image")
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if not 0 <= pad_value <= 255:
        raise ValueError(f"pad_value must be in [0, 255], got {pad_value}")

    if labels is not None and len(labels) != n:
        raise ValueError(f"make_grid got {len(labels)} labels for {n} images")

    strip = 0 if labels is None else label_height(h)
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    cell_h, cell_w = h + padding + strip, w + padding
    grid = images.new_full((c, rows * cell_h + padding, cols * cell_w + padding), pad_value)
    for k in range(n):
        top = (k // cols) * cell_h + padding + strip
        left = (k % cols) * cell_w + padding
        grid[:, top : top + h, left : left + w] = images[k]
        if labels is not None and labels[k]:
            _caption(grid[:, top - strip : top, left : left + w], labels[k], label_scale(h))
    return grid


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont:
    """Pillow's built-in bitmap font (no FreeType, the same pixels on every machine)."""
    load = getattr(ImageFont, "load_default_imagefont", None)  # Pillow >= 10.1
    return load() if load is not None else ImageFont.load_default()


# The bitmap font draws digits and capitals in rows 2..8 of its 11-row line; labels keep those
# rows (more where a glyph reaches further), so a row of index labels is 7 pixels of text.
_CAP_TOP, _CAP_BOTTOM = 2, 9


def label_scale(image_size: int) -> int:
    """How many times to enlarge label text for images of this size: 1 up to 255 px, 2 at
    256, 4 at 512, so labels stay legible without covering more of a large image."""
    return max(1, image_size // 128)


def label_height(image_size: int) -> int:
    """Height of a caption strip (7 rows of text and a row of margin above and below)."""
    return (_CAP_BOTTOM - _CAP_TOP + 2) * label_scale(image_size)


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """Boolean mask (h, w) of ``text`` in the bitmap font, cut to its cap height (7 rows for
    digits and capitals) and enlarged ``scale`` times with nearest-neighbour pixels."""
    font = _font()
    width = max(1, int(font.getbbox(text)[2]))
    canvas = Image.new("L", (width, 11), 0)
    ImageDraw.Draw(canvas).text((0, 0), text, fill=255, font=font)
    ink = np.asarray(canvas) > 127
    rows = np.flatnonzero(ink.any(axis=1))
    top = min(_CAP_TOP, int(rows[0])) if rows.size else _CAP_TOP
    bottom = max(_CAP_BOTTOM, int(rows[-1]) + 1) if rows.size else _CAP_BOTTOM
    return ink[top:bottom].repeat(scale, axis=0).repeat(scale, axis=1)


def _stamp(region: torch.Tensor, mask: np.ndarray, y: int, x: int, value: int) -> None:
    """Set ``region`` (C, h, w) to ``value`` where ``mask`` is set, with the mask's top-left at
    (y, x); whatever falls outside the region is cut."""
    h = min(mask.shape[0], region.shape[1] - y)
    w = min(mask.shape[1], region.shape[2] - x)
    if h > 0 and w > 0:
        region[:, y : y + h, x : x + w][:, torch.from_numpy(mask[:h, :w].copy())] = value


def _caption(strip: torch.Tensor, text: str, scale: int) -> None:
    """Fill a caption strip (C, h, w) with the dark box and draw ``text`` left-aligned in it."""
    strip.fill_(LABEL_BOX)
    _stamp(strip, text_mask(text, scale), scale, scale, LABEL_TEXT)


def add_row_labels(
    grid: torch.Tensor,
    labels: Sequence[str],
    image_size: int,
    padding: int = 2,
    pad_value: int = 0,
    captioned: bool = False,
) -> torch.Tensor:
    """Prepend a margin to a ``make_grid`` grid (C, H', W') with ``labels[r]`` in light text,
    centred on row r of images of height ``image_size`` (``captioned``: a grid made with
    ``labels``, whose rows have caption strips); returns (C, H', margin + W')."""
    if grid.dim() != 3 or grid.dtype != torch.uint8:
        raise ValueError(f"add_row_labels expects a uint8 grid (C, H, W), got {tuple(grid.shape)}")
    scale = label_scale(image_size)
    strip = label_height(image_size) if captioned else 0
    masks = [text_mask(label, scale) for label in labels]
    margin = max((m.shape[1] for m in masks), default=0) + 2 * padding
    out = grid.new_full((grid.shape[0], grid.shape[1], margin + grid.shape[2]), pad_value)
    out[:, :, margin:] = grid
    for r, mask in enumerate(masks):
        top = padding + strip + r * (strip + image_size + padding)
        _stamp(out, mask, top + (image_size - mask.shape[0]) // 2, padding, LABEL_TEXT)
    return out


def enlarge(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Images (..., H, W) with every pixel repeated ``factor`` times down and across (nearest
    neighbour: crisp pixels for small images shown large)."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    if factor == 1:
        return images
    return images.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def _to_hwc_array(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """uint8 (C, H, W) tensor or array -> numpy (H, W) or (H, W, 3|4) that Pillow understands.

    Models may have any channel count, so: C=1 -> grey, C=2 -> first channel as grey,
    C=3 -> RGB, C=4 -> RGBA, C>4 -> first 3 channels as RGB.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image (use to_uint8 first), got {image.dtype}")
    if image.ndim != 3 or image.shape[0] == 0:
        raise ValueError(f"expected an image of shape (C, H, W), got {image.shape}")
    c = image.shape[0]
    if c <= 2:
        return np.ascontiguousarray(image[0])
    if c > 4:
        image = image[:3]
    return np.ascontiguousarray(image.transpose(1, 2, 0))


def save_png(image: torch.Tensor | np.ndarray, path: Path | str) -> Path:
    """Save a uint8 (C, H, W) image as PNG, atomically; returns the path.

    Mode by channel count: C=1 -> "L", C=3 -> "RGB", C=4 -> "RGBA"; C=2 keeps only the first
    channel (grey) and C>4 keeps the first 3 channels (RGB), since PNG has no such modes.
    """
    data = png_bytes(image)
    return atomic_write(path, lambda f: f.write(data))


def png_bytes(image: torch.Tensor | np.ndarray) -> bytes:
    """The PNG file `save_png` writes for a uint8 (C, H, W) image, as bytes."""
    # Pillow infers L / RGB / RGBA from the array shape (its ``mode`` argument is deprecated).
    out = io.BytesIO()
    Image.fromarray(_to_hwc_array(image)).save(out, format="PNG")
    return out.getvalue()


def read_png(path: Path | str) -> torch.Tensor:
    """Read an 8-bit image file into a uint8 tensor (C, H, W): L -> C=1, RGB -> 3, RGBA -> 4.

    Palette images become RGB (RGBA if they have transparency), grey+alpha becomes RGBA.
    """
    with Image.open(path) as im:
        if im.mode not in ("L", "RGB", "RGBA"):
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                raise ValueError(f"{path}: {im.mode!r} images are not 8-bit, cannot read exactly")
            has_alpha = im.mode in ("LA", "PA", "RGBa", "La") or "transparency" in im.info
            im = im.convert("L" if im.mode == "1" else "RGBA" if has_alpha else "RGB")
        arr = np.array(im, dtype=np.uint8)  # a copy: writable, so torch.from_numpy is happy
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def _evenly_spaced(n: int, k: int) -> list[int]:
    """k indices in [0, n) spread evenly, always including 0 and n - 1 (requires 2 <= k < n).

    The spacing (n - 1) / (k - 1) exceeds 1, so the rounded indices are strictly increasing.
    """
    return [round(i * (n - 1) / (k - 1)) for i in range(k)]


def save_gif(
    frames: Sequence[Path | str],
    path: Path | str,
    duration_ms: int = 200,
    max_frames: int = 100,
) -> Path:
    """Build a looping animated GIF from image files (e.g. per-epoch sample PNGs), in order.

    With more than ``max_frames`` files an evenly spaced subset is used that always includes the
    first and the last. Grey and colour frames may be mixed (all become RGB then). Note that the
    GIF encoder merges consecutive identical frames into one longer frame. Written atomically.
    """
    if len(frames) == 0:
        raise ValueError("save_gif needs at least one frame")
    if max_frames < 2:
        raise ValueError(f"max_frames must be >= 2 (first and last are kept), got {max_frames}")
    if duration_ms <= 0:
        raise ValueError(f"duration_ms must be > 0, got {duration_ms}")
    frames = list(frames)
    if len(frames) > max_frames:
        frames = [frames[i] for i in _evenly_spaced(len(frames), max_frames)]

    images, unreadable = [], []
    for frame in frames:
        try:
            with Image.open(frame) as im:
                # convert() returns a loaded copy, so the file can be closed right away. GIF has
                # no real alpha channel, so alpha is dropped; pure grey stays "L" (exact grey).
                images.append(im.convert("L" if im.mode in ("L", "1") else "RGB"))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            unreadable.append(f"{frame} ({brief(e, 80)})")  # a damaged preview: leave it out
    if unreadable:
        left_out = f"{len(unreadable)} unreadable frame(s): {'; '.join(unreadable[:2])}"
        warnings.warn(f"{path}: left out {left_out}", Recovered, 2)
    if not images:
        raise ValueError(f"save_gif: none of the {len(frames)} frames could be read")
    return _write_gif(images, path, duration_ms)


def save_gif_images(
    frames: torch.Tensor | Sequence[torch.Tensor], path: Path | str, duration_ms: int = 50
) -> Path:
    """Write uint8 frames (N, C, H, W) (or a sequence of (C, H, W)) as a looping GIF, every
    frame kept and shown ``duration_ms``; channels as ``save_png`` (alpha dropped). As in
    ``save_gif``, the encoder merges consecutive identical frames into one longer frame."""
    if len(frames) == 0:
        raise ValueError("save_gif_images needs at least one frame")
    if duration_ms <= 0:
        raise ValueError(f"duration_ms must be > 0, got {duration_ms}")
    images = [Image.fromarray(_to_hwc_array(frame)) for frame in frames]
    return _write_gif(
        [im.convert("RGB") if im.mode == "RGBA" else im for im in images], path, duration_ms
    )


def _write_gif(images: list[Image.Image], path: Path | str, duration_ms: int) -> Path:
    """Write Pillow images (grey "L" or "RGB") as a looping GIF, atomically."""
    if any(im.mode != images[0].mode for im in images):
        images = [im.convert("RGB") for im in images]

    def write(f: BinaryIO) -> None:
        images[0].save(
            f,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=duration_ms,
            loop=0,  # 0 = loop forever
        )

    return atomic_write(path, write)
