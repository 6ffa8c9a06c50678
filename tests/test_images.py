"""Tests for dcgan.images and dcgan.run.plots (fast, CPU only)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.fsio import atomic_write
from dcgan.images import (
    LABEL_BOX,
    LABEL_TEXT,
    add_row_labels,
    enlarge,
    label_height,
    label_scale,
    make_grid,
    read_png,
    save_gif,
    save_gif_images,
    save_png,
    text_mask,
    to_uint8,
)
from dcgan.run.plots import plot_losses


def _random_uint8(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --- to_uint8 ---------------------------------------------------------------------------------


def test_to_uint8_endpoints_and_midpoint() -> None:
    x = torch.tensor([-1.0, 1.0, 0.0, -2.0, 3.0])
    y = to_uint8(x)
    assert y.dtype == torch.uint8
    # 0 -> 127.5, which rounds half to even -> 128; out-of-range values are clamped.
    assert y.tolist() == [0, 255, 128, 0, 255]


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 8, 8)])
def test_to_uint8_keeps_shape(shape: tuple[int, ...]) -> None:
    x = torch.rand(shape) * 2 - 1
    y = to_uint8(x)
    assert y.shape == x.shape
    assert y.device.type == "cpu"
    expected = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(y, expected)


def test_to_uint8_bfloat16_computes_in_float32() -> None:
    x = torch.tensor([-1.0, 0.0, 1.0, -0.4921875], dtype=torch.bfloat16)
    # (1 - 0.4921875) * 127.5 = 64.74...; bf16 arithmetic would round it to 64 before .round().
    assert to_uint8(x).tolist() == [0, 128, 255, 65]


def test_to_uint8_rejects_integers() -> None:
    with pytest.raises(ValueError, match="floating"):
        to_uint8(torch.zeros(3, dtype=torch.uint8))


def test_to_uint8_detaches() -> None:
    x = torch.zeros(1, 2, 2, requires_grad=True)
    assert not to_uint8(x).requires_grad


# --- make_grid --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "nrow", "padding", "expected_hw"),
    [
        (16, None, 2, (4 * 6 + 2, 4 * 6 + 2)),  # 4x4 tiles of 4x4 px
        (10, None, 2, (3 * 6 + 2, 4 * 6 + 2)),  # ceil(sqrt(10)) = 4 per row -> 3 rows
        (5, 8, 1, (1 * 5 + 1, 5 * 5 + 1)),  # nrow > N: a single row of N
        (6, 2, 0, (3 * 4, 2 * 4)),
        (1, None, 3, (4 + 6, 4 + 6)),
        (7, 3, 2, (3 * 6 + 2, 3 * 6 + 2)),
    ],
)
def test_make_grid_shape(
    n: int, nrow: int | None, padding: int, expected_hw: tuple[int, int]
) -> None:
    images = _random_uint8(n, 3, 4, 4)
    grid = make_grid(images, nrow=nrow, padding=padding)
    assert grid.dtype == torch.uint8
    assert tuple(grid.shape) == (3, *expected_hw)


def test_make_grid_tile_placement_and_padding() -> None:
    n, c, h, w, pad, nrow = 5, 2, 3, 4, 2, 3
    images = _random_uint8(n, c, h, w, seed=1)
    grid = make_grid(images, nrow=nrow, padding=pad, pad_value=7)
    assert tuple(grid.shape) == (c, 2 * (h + pad) + pad, 3 * (w + pad) + pad)

    covered = torch.zeros(grid.shape[1:], dtype=torch.bool)
    for k in range(n):
        top = (k // nrow) * (h + pad) + pad
        left = (k % nrow) * (w + pad) + pad
        assert torch.equal(grid[:, top : top + h, left : left + w], images[k])
        covered[top : top + h, left : left + w] = True
    # Everything else (gutters, frame and the unused 6th cell) is pad_value.
    assert bool((grid[:, ~covered] == 7).all())


def test_make_grid_default_nrow_is_ceil_sqrt() -> None:
    images = _random_uint8(10, 1, 2, 2)
    cols = math.ceil(math.sqrt(10))
    assert torch.equal(make_grid(images), make_grid(images, nrow=cols))


@pytest.mark.parametrize(
    "bad",
    [
        torch.zeros(2, 3, 4, 4),  # float
        torch.zeros(3, 4, 4, dtype=torch.uint8),  # 3D
        np.zeros((2, 3, 4, 4), dtype=np.uint8),  # not a tensor
    ],
)
def test_make_grid_rejects_bad_input(bad: object) -> None:
    with pytest.raises(ValueError, match="make_grid"):
        make_grid(bad)  # type: ignore[arg-type]


# --- save_png / read_png ----------------------------------------------------------------------


@pytest.mark.parametrize(("c", "mode"), [(1, "L"), (3, "RGB"), (4, "RGBA")])
def test_png_round_trip_exact(tmp_path: Path, c: int, mode: str) -> None:
    image = _random_uint8(c, 5, 7, seed=c)
    path = save_png(image, tmp_path / "sub" / "img.png")  # parent is created
    assert path == tmp_path / "sub" / "img.png"
    with Image.open(path) as im:
        assert im.mode == mode
        assert im.size == (7, 5)
    back = read_png(path)
    assert back.dtype == torch.uint8
    assert torch.equal(back, image)
    assert _leftovers(path.parent) == []


def test_save_png_accepts_numpy(tmp_path: Path) -> None:
    image = _random_uint8(3, 4, 6).numpy()
    path = save_png(image, str(tmp_path / "np.png"))
    assert isinstance(path, Path)
    assert np.array_equal(read_png(path).numpy(), image)


def test_save_png_two_channels_uses_first_as_grey(tmp_path: Path) -> None:
    image = _random_uint8(2, 4, 4)
    back = read_png(save_png(image, tmp_path / "c2.png"))
    assert torch.equal(back, image[:1])


def test_save_png_more_than_four_channels_uses_first_three(tmp_path: Path) -> None:
    image = _random_uint8(5, 4, 4)
    back = read_png(save_png(image, tmp_path / "c5.png"))
    assert torch.equal(back, image[:3])


def test_save_png_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "img.png"
    save_png(torch.zeros(1, 2, 2, dtype=torch.uint8), path)
    save_png(torch.full((1, 2, 2), 9, dtype=torch.uint8), path)
    assert read_png(path).tolist() == [[[9, 9], [9, 9]]]


@pytest.mark.parametrize(
    "bad", [torch.zeros(3, 4, 4), torch.zeros(4, 4, dtype=torch.uint8), torch.zeros(1, 3, 4, 4)]
)
def test_save_png_rejects_bad_input(tmp_path: Path, bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="expected"):
        save_png(bad, tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []


def test_grid_png_round_trip(tmp_path: Path) -> None:
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    grid = make_grid(to_uint8(x), nrow=3)
    assert torch.equal(read_png(save_png(grid, tmp_path / "grid.png")), grid)


# --- save_gif ---------------------------------------------------------------------------------


def _write_frames(directory: Path, n: int, c: int = 1) -> list[Path]:
    # Each frame must differ from the previous one: the GIF encoder merges identical frames.
    paths = []
    for i in range(n):
        image = torch.full((c, 6, 6), (i * 37) % 256, dtype=torch.uint8)
        image[:, 0, 0] = i % 256
        paths.append(save_png(image, directory / f"frame_{i:03d}.png"))
    return paths


def _gif_frames(path: Path) -> list[np.ndarray]:
    out = []
    with Image.open(path) as im:
        assert im.format == "GIF"
        assert im.info.get("loop") == 0
        for i in range(im.n_frames):
            im.seek(i)
            out.append(np.array(im.convert("L")))
    return out


@pytest.mark.parametrize("c", [1, 3])
def test_save_gif_frame_count(tmp_path: Path, c: int) -> None:
    frames = _write_frames(tmp_path, 5, c=c)
    path = save_gif(frames, tmp_path / "out" / "anim.gif", duration_ms=120)
    decoded = _gif_frames(path)
    assert len(decoded) == 5
    if c == 1:  # grey frames are stored with an exact grey palette
        for i, frame in enumerate(decoded):
            assert frame[1, 1] == (i * 37) % 256
    with Image.open(path) as im:
        assert im.info["duration"] == 120
    assert _leftovers(path.parent) == []


def test_save_gif_subsamples_keeping_first_and_last(tmp_path: Path) -> None:
    frames = _write_frames(tmp_path, 25)
    path = save_gif([str(p) for p in frames], tmp_path / "anim.gif", max_frames=7)
    decoded = _gif_frames(path)
    assert len(decoded) == 7
    # Pixel (0, 0) encodes the source frame index: first and last are kept, order preserved.
    indices = [int(frame[0, 0]) for frame in decoded]
    assert indices[0] == 0
    assert indices[-1] == 24
    assert indices == sorted(set(indices))
    assert max(np.diff(indices)) - min(np.diff(indices)) <= 1  # evenly spaced


def test_save_gif_mixed_modes(tmp_path: Path) -> None:
    grey = _write_frames(tmp_path / "grey", 2, c=1)
    rgb = _write_frames(tmp_path / "rgb", 2, c=4)
    path = save_gif(grey + rgb, tmp_path / "mixed.gif")
    assert len(_gif_frames(path)) == 4


def test_save_gif_single_frame(tmp_path: Path) -> None:
    path = save_gif(_write_frames(tmp_path, 1), tmp_path / "one.gif")
    assert len(_gif_frames(path)) == 1


def test_save_gif_empty_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        save_gif([], tmp_path / "empty.gif")
    assert not (tmp_path / "empty.gif").exists()


# --- labels, enlarge, save_gif_images --------------------------------------------------------


def test_label_scale_and_text_mask() -> None:
    assert [label_scale(s) for s in (16, 64, 128, 256, 512)] == [1, 1, 1, 2, 4]
    assert [label_height(s) for s in (16, 256, 512)] == [9, 18, 36]
    one = text_mask("0")
    assert one.shape == (7, 6) and one.dtype == bool and one.any()
    assert text_mask("63").shape == (7, 12)
    assert text_mask("63", 2).shape == (14, 24)
    assert np.array_equal(text_mask("7", 2)[::2, ::2], text_mask("7"))
    assert not np.array_equal(text_mask("6"), text_mask("8"))


@pytest.mark.parametrize(("c", "size"), [(1, 16), (3, 32), (4, 256)])
def test_make_grid_labels_add_strips_and_leave_the_images(c: int, size: int) -> None:
    images = _random_uint8(5, c, size, size)
    plain = make_grid(images, nrow=3)
    labelled = make_grid(images, nrow=3, labels=[str(i) for i in range(5)])
    strip = label_height(size)
    assert labelled.shape == (c, plain.shape[1] + 2 * strip, plain.shape[2])
    for k in range(5):
        r, col = divmod(k, 3)
        top, left = 2 + r * (size + 2), 2 + col * (size + 2)
        top_l = top + (r + 1) * strip
        assert torch.equal(labelled[:, top_l : top_l + size, left : left + size], images[k])
        box = labelled[:, top_l - strip : top_l, left : left + size]
        assert set(box.unique().tolist()) == {LABEL_BOX, LABEL_TEXT}
        assert (box == LABEL_TEXT).sum() >= 7 * label_scale(size) ** 2  # a visible digit
    # everything outside the images and the strips is still padding
    mask = torch.ones_like(labelled, dtype=torch.bool)
    for k in range(5):
        r, col = divmod(k, 3)
        top_l, left = 2 + r * (size + 2 + strip), 2 + col * (size + 2)
        mask[:, top_l : top_l + strip + size, left : left + size] = False
    assert (labelled[mask] == 0).all()


def test_make_grid_labels_edge_cases() -> None:
    images = _random_uint8(2, 1, 16, 16)
    grid = make_grid(images, labels=["", "12345"])  # empty: no box; too wide: cut at the edge
    assert (grid[:, 2:11, 2:18] == 0).all()
    assert (grid[:, 2:11, 20:36] != 0).all()  # the box fills the strip, text or not
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        make_grid(_random_uint8(3, 1, 4, 4), labels=["a", "b"])


def test_add_row_labels() -> None:
    grid = make_grid(_random_uint8(4, 3, 16, 16), nrow=2)
    out = add_row_labels(grid, ["A", "A-B+C"], 16)
    margin = out.shape[2] - grid.shape[2]
    assert margin == text_mask("A-B+C").shape[1] + 4
    assert torch.equal(out[:, :, margin:], grid)
    for r in range(2):
        rows = out[:, 2 + r * 18 : 2 + r * 18 + 16, :margin]
        assert (rows == LABEL_TEXT).any()
    assert (out[:, :, :margin] != LABEL_TEXT).logical_and(out[:, :, :margin] != 0).sum() == 0


def test_enlarge() -> None:
    x = torch.arange(4, dtype=torch.uint8).view(1, 2, 2)
    assert torch.equal(enlarge(x, 1), x)
    big = enlarge(x, 3)
    assert big.shape == (1, 6, 6) and torch.equal(big[:, ::3, ::3], x)
    with pytest.raises(ValueError):
        enlarge(x, 0)


@pytest.mark.parametrize("c", [1, 3, 4])
def test_save_gif_images(tmp_path: Path, c: int) -> None:
    frames = torch.stack([torch.full((c, 5, 7), 10 * i, dtype=torch.uint8) for i in range(6)])
    path = save_gif_images(frames, tmp_path / "a.gif", duration_ms=40)
    decoded = _gif_frames(path)
    assert len(decoded) == 6 and decoded[0].shape == (5, 7)
    if c == 1:
        assert [int(f[0, 0]) for f in decoded] == [10 * i for i in range(6)]
    with Image.open(path) as im:
        assert im.info["duration"] == 40
    assert len(_gif_frames(save_gif_images(list(frames), tmp_path / "b.gif"))) == 6
    with pytest.raises(ValueError, match="at least one frame"):
        save_gif_images(frames[:0], tmp_path / "c.gif")


# --- atomic_write -----------------------------------------------------------------------------


def test_atomic_write_writes_and_creates_parent(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "data.bin"
    result = atomic_write(str(target), lambda f: f.write(b"hello"))
    assert result == target
    assert target.read_bytes() == b"hello"
    assert _leftovers(target.parent) == []


def test_atomic_write_failure_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"

    def boom(f: object) -> None:
        f.write(b"partial")  # type: ignore[attr-defined]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(target, boom)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_failure_keeps_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old content")

    def boom(f: object) -> None:
        f.write(b"new")  # type: ignore[attr-defined]
        raise KeyboardInterrupt  # not an Exception subclass: cleanup must still happen

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


# --- plot_losses ------------------------------------------------------------------------------


def _records(n: int = 20) -> list[dict[str, float]]:
    rows = []
    for i in range(n):
        rows.append(
            {
                "step": i * 10,
                "loss_d_real": 0.7 * math.exp(-i / 10) + 0.1,
                "loss_d_fake": 0.6 * math.exp(-i / 8) + 0.2,
                "loss_d": 1.3 * math.exp(-i / 9) + 0.3,
                "loss_g": 2.0 + 0.5 * math.sin(i / 3),
                "d_real": 0.5 + 0.4 * (1 - math.exp(-i / 5)),
                "d_fake": 0.5 - 0.3 * (1 - math.exp(-i / 5)),
            }
        )
    return rows


def test_plot_losses_writes_png(tmp_path: Path) -> None:
    records = _records()
    del records[3]["loss_g"]  # a missing key only drops that point from that curve
    del records[5]["d_fake"]
    path = plot_losses(records, tmp_path / "plots" / "losses.png")
    assert path == tmp_path / "plots" / "losses.png"
    assert path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.width > 100
        assert im.height > 100
    image = read_png(path)
    assert image.float().std() > 0  # not a blank canvas
    assert _leftovers(path.parent) == []


def test_plot_losses_partial_records(tmp_path: Path) -> None:
    records = [{"step": 0, "loss_g": 1.0}, {"step": 1, "loss_g": 0.9, "d_real": 0.6}]
    assert plot_losses(records, tmp_path / "partial.png").stat().st_size > 0


def test_plot_losses_empty_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one record"):
        plot_losses([], tmp_path / "losses.png")
    assert not (tmp_path / "losses.png").exists()
