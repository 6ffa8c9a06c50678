"""`dcgan interpolate | arithmetic | walk | sweep` and `generate --index-labels`, in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from dcgan.cli import main
from dcgan.config import Config, ModelConfig
from dcgan.images import LABEL_TEXT, label_height, make_grid, read_png
from dcgan.nn.models import Generator
from dcgan.run.checkpoint import export_generator
from dcgan.run.rundir import latest_checkpoint
from dcgan.training.loop import train

S = 16  # the tiny run's image size; tiles are S + 2 apart in every grid


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import TINY
    from dcgan.config import merge, validate

    cfg = merge(Config(), TINY, "test")
    cfg.output.out = str(tmp_path_factory.mktemp("latent") / "runs")
    return train(validate(cfg)).run_dir


@pytest.fixture(scope="module")
def generated(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images 0..40 of seed 2 as `dcgan generate` writes them."""
    out = tmp_path_factory.mktemp("generated")
    assert main(["generate", str(run), "--num", "41", "--seed", "2", "--out", str(out)]) == 0
    return out


def _gif_frames(path: Path) -> list[torch.Tensor]:
    with Image.open(path) as im:
        frames = [np.array(f.convert("L")) for f in ImageSequence.Iterator(im)]
    return [torch.from_numpy(f)[None] for f in frames]


def _tile(sheet: torch.Tensor, row: int, col: int, cols: int) -> torch.Tensor:
    """Tile (row, col) of a make_grid sheet of S-pixel images with a label margin on the left."""
    margin = sheet.shape[2] - (cols * (S + 2) + 2)
    top, left = 2 + row * (S + 2), margin + 2 + col * (S + 2)
    return sheet[:, top : top + S, left : left + S]


@pytest.mark.parametrize("kind", ["run", "export", "checkpoint"])
@pytest.mark.slow
def test_interpolation_ends_are_the_generated_images(
    run: Path, generated: Path, tmp_path: Path, kind: str
) -> None:
    source = {
        "run": run,
        "export": run / "generator.safetensors",
        "checkpoint": latest_checkpoint(run),
    }[kind]
    out = tmp_path / "interp.png"
    argv = ["interpolate", str(source), "3:17", "40:0", "--steps", "5", "--seed", "2"]
    assert main([*argv, "--out", str(out), "--batch-size", "3"]) == 0
    sheet = read_png(out)
    assert sheet.shape[1] == 2 * (S + 2) + 2
    for row, (i, j) in enumerate([(3, 17), (40, 0)]):
        assert torch.equal(_tile(sheet, row, 0, 5), read_png(generated / f"{i:06d}.png"))
        assert torch.equal(_tile(sheet, row, 4, 5), read_png(generated / f"{j:06d}.png"))
    gif = tmp_path / "interp.gif"
    assert main([*argv[:3], *argv[4:], "--out", str(gif), "--method", "lerp"]) == 0
    frames = _gif_frames(gif)
    assert len(frames) == 8  # there (5) and back (3)
    assert torch.equal(frames[0], read_png(generated / "000003.png"))
    assert torch.equal(frames[4], read_png(generated / "000017.png"))


def test_arithmetic_sheet(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.png"
    argv = ["arithmetic", str(run), "--a", "3,17,22", "--b", "5,9", "--c", "9,5", "--out", str(out)]
    assert main([*argv, "--variations", "4", "--noise", "0.5"]) == 0
    sheet = read_png(out)
    strip = label_height(S)
    assert sheet.shape[1] == 4 * (strip + S + 2) + 2
    cols = 4 + 2  # max(3 exemplars, 4 variations) + gap + the mean column
    mean_col = sheet.shape[2] - 2 - S
    tops = [2 + strip + r * (strip + S + 2) for r in range(4)]
    mean_a, result = (sheet[:, t : t + S, mean_col : mean_col + S] for t in (tops[0], tops[3]))
    assert torch.equal(mean_a, result)  # B = C: the result is A's mean image
    assert sheet.shape[2] > cols * (S + 2) + 2  # the row labels' margin


def test_walk_gif_and_sheet(run: Path, tmp_path: Path) -> None:
    gif = tmp_path / "walk.gif"
    argv = ["walk", str(run), "--frames", "12", "--keys", "3", "--seed", "5"]
    assert main([*argv, "--out", str(gif), "--fps", "25", "--zoom", "2"]) == 0
    with Image.open(gif) as im:
        assert im.n_frames == 12 and im.size == (2 * S, 2 * S)
        assert im.info["loop"] == 0 and im.info["duration"] == 40
    png = tmp_path / "walk.png"
    assert main([*argv, "--out", str(png)]) == 0
    sheet = read_png(png)
    assert sheet.shape == (1, 3 * (S + 2) + 2, 4 * (S + 2) + 2)  # 12 frames, 4 a row
    first = _gif_frames(gif)[0][:, ::2, ::2]
    assert torch.equal(sheet[:, 2 : 2 + S, 2 : 2 + S], first)


def test_sweep_with_an_empty_range_repeats_one_image(
    run: Path, generated: Path, tmp_path: Path
) -> None:
    out = tmp_path / "s.png"
    argv = ["sweep", str(run), "--index", "3", "--seed", "2", "--dims", "0-2,7", "--steps", "4"]
    assert main([*argv, "--range", "0", "0", "--out", str(out)]) == 0
    sheet = read_png(out)
    assert sheet.shape[1] == 4 * (S + 2) + 2
    for r in range(4):  # each row is one image four times (z[d] = 0 at every step)
        assert all(torch.equal(_tile(sheet, r, k, 4), _tile(sheet, r, 0, 4)) for k in range(4))
    assert main([*argv, "--range", "-3", "3", "--out", str(out)]) == 0
    sheet = read_png(out)
    assert not torch.equal(_tile(sheet, 0, 0, 4), _tile(sheet, 0, 3, 4))


def test_any_size_and_channel_count(tmp_path: Path) -> None:
    torch.manual_seed(0)
    export_generator(Generator(ModelConfig(image_size=32, channels=3, nz=8, ngf=8)), tmp_path)
    source = str(tmp_path / "generator.safetensors")
    assert main(["interpolate", source, "0:1", "--out", str(tmp_path / "i.gif")]) == 0
    assert main(["sweep", source, "--dims", "0-7", "--out", str(tmp_path / "s.png")]) == 0
    assert read_png(tmp_path / "s.png").shape[:2] == (3, 8 * 34 + 2)
    assert _gif_frames(tmp_path / "i.gif")[0].shape == (1, 32, 32)


def test_index_labels_change_only_the_label_strips(run: Path, tmp_path: Path) -> None:
    plain, labelled = tmp_path / "plain.png", tmp_path / "labelled.png"
    common = ["generate", str(run), "--num", "12", "--out", str(tmp_path / "imgs")]
    assert main([*common, "--grid", str(plain)]) == 0
    assert main([*common, "--grid", str(labelled), "--index-labels"]) == 0
    images = torch.stack([read_png(p) for p in sorted((tmp_path / "imgs").glob("*.png"))])
    assert plain.read_bytes() == _plain_bytes(images, tmp_path)  # no flag: today's grid
    a, b = read_png(plain), read_png(labelled)
    strip = label_height(S)
    assert b.shape == (1, a.shape[1] + 3 * strip, a.shape[2])  # 12 images: 3 rows of 4
    texts = []
    for k in range(12):
        r, c = divmod(k, 4)
        top, left = 2 + r * (S + 2), 2 + c * (S + 2)
        top_b = 2 + r * (strip + S + 2) + strip
        assert torch.equal(
            b[:, top_b : top_b + S, left : left + S], a[:, top : top + S, left : left + S]
        )
        label = b[:, top_b - strip : top_b, left : left + S]
        assert (label == LABEL_TEXT).sum() >= 6, f"label {k} is visible"
        texts.append(label)
    assert len({t.numpy().tobytes() for t in texts}) == 12  # each cell shows its own number


def _plain_bytes(images: torch.Tensor, tmp_path: Path) -> bytes:
    from dcgan.images import save_png

    return save_png(make_grid(images), tmp_path / "expected.png").read_bytes()


# --- errors: one line on stderr, exit code 2, nothing written ------------------------------------


def _bad(tmp_path: Path) -> list[tuple[list[str], str]]:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    blocked = str(a_file / "out.png")
    return [
        (["interpolate", "3:x"], "pair '3:x': expected I:J"),
        (["interpolate", "3-17"], "pair '3-17': expected I:J"),
        (["interpolate", "3:"], "pair '3:': expected I:J"),
        (["interpolate", "3:4", "--", "-3:5"], "pair '-3:5': expected I:J"),
        (["interpolate", "-3:5"], "error:"),  # argparse takes it for an option: still one line
        (["interpolate", "3:1.5"], "pair '3:1.5'"),
        (["interpolate", "3:4", "--steps", "1"], "--steps: 1 must be at least 2"),
        (["interpolate", "3:4", "--method", "cubic"], "'cubic' is not one of slerp, lerp"),
        (["interpolate", "3:4", "--seed", "-1"], "--seed: -1 must be >= 0"),
        (["interpolate", "3:4", "--fps", "0"], "--fps: 0.0 must be from 0.1 to 100"),
        (["walk", "--fps", "0.001"], "--fps: 0.001 must be from 0.1 to 100"),
        (["interpolate", "0:1", "--steps", "1000000000000"], "2000000000000 images, more than"),
        (["arithmetic", "--a", "1", "--b", "2", "--c", "3", "--variations", "10**9"], "invalid"),
        (["arithmetic", "--a", "1", "--b", "2", "--c", "3", "--variations", "1000000000"], "4096"),
        (["walk", "--frames", "100000000"], "--frames: 100000000 images, more than the 4096"),
        (["walk", "--frames", "4096", "--zoom", "64"], "more than 512 MB; ask for fewer images"),
        (["walk", "--zoom", "100000"], "--zoom: 100000 is more than 64"),
        (["sweep", "--dims", "0-99999999999999"], "names more than 4096 dimensions"),
        (["sweep", "--dims", "0-15", "--steps", "1000000"], "--dims x --steps: 16000016 images"),
        (["interpolate", "3:4", "--out", "x.jpg"], "can write .png or .gif files only"),
        (["interpolate", "3:4", "--out", blocked], f"cannot write {blocked}"),
        (["arithmetic", "--a", "", "--b", "1", "--c", "2"], "--a: '' is not a group"),
        (["arithmetic", "--a", "1", "--b", "1,,2", "--c", "2"], "--b: '1,,2' is not a group"),
        (["arithmetic", "--a", "1", "--b", "2", "--c", "-4"], "--c: '-4' is not a group"),
        (["arithmetic", "--a", "1", "--b", "2", "--c", "x"], "--c: 'x' is not a group"),
        (["arithmetic", "--a", "1", "--b", "2", "--c", "3", "--noise", "-1"], "--noise: -1.0"),
        (["arithmetic", "--a", "1", "--b", "2", "--c", "3", "--variations", "-1"], "--variations"),
        (["arithmetic", "--a", "1", "--b", "2", "--c", "3", "--out", "a.gif"], ".png files only"),
        (["walk", "--frames", "1"], "--frames: 1 must be at least 2"),
        (["walk", "--frames", "4", "--keys", "6"], "at least --keys (6)"),
        (["walk", "--keys", "1"], "--keys: 1 must be at least 2"),
        (["walk", "--method", "linear"], "'linear' is not one of"),
        (["walk", "--out", "w.mp4"], "can write .gif or .png files only"),
        (["walk", "--out", blocked.replace(".png", ".gif")], "is not a directory"),
        (["sweep", "--index", "-1"], "--index: -1 is not an image index"),
        (["sweep", "--index", "3.5"], "invalid int value: '3.5'"),
        (["sweep", "--dims", "0-"], "--dims: '0-' is not a list of z dimensions"),
        (["sweep", "--dims", "5-2"], "--dims: '5-2' is not a list"),
        (["sweep", "--dims", ""], "--dims: '' is not a list"),
        (["sweep", "--dims", "0-16"], "--dims: 16 is out of range; this generator's z has"),
        (["sweep", "--range", "0", "nan"], "--range: 0.0 nan must be finite"),
        (["sweep", "--steps", "1"], "--steps: 1 must be at least 2"),
        (["sweep", "--batch-size", "0"], "--batch-size: 0 must be at least 1"),
        (["sweep", "--zoom", "0"], "--zoom: 0 must be at least 1"),
        (["sweep", "--out", "s.gif"], "can write .png files only"),
    ]


def _exit_code(argv: list[str]) -> int:
    """main's return value, or the code argparse exits with for a flag it cannot parse."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def test_every_error_is_one_line_and_exit_2(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for argv, fragment in _bad(tmp_path):
        command, rest = argv[0], argv[1:]
        out = str(tmp_path / ("o.gif" if command == "walk" else "o.png"))
        if "--out" not in rest:
            rest = [*rest, "--out", out] if "--" not in rest else ["--out", out, *rest]
        assert _exit_code([command, str(run), *rest]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("dcgan"), (argv, err)
        assert fragment in err, (argv, err)
        assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.gif").exists()


def test_a_failed_write_is_one_line(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dcgan.images

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dcgan.images, "save_png", full_disk)
    out = tmp_path / "s.png"
    assert main(["sweep", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"dcgan sweep: error: --out: cannot write {out}: No space left on device\n"


def test_missing_source_and_labels_without_grid(tmp_path: Path, capsys) -> None:
    assert main(["walk", str(tmp_path / "nope"), "--out", str(tmp_path / "w.gif")]) == 2
    assert "no generator export" in capsys.readouterr().err
    argv = ["generate", str(tmp_path), "--out", str(tmp_path / "o"), "--index-labels"]
    assert main(argv) == 2
    assert "--index-labels: labels go on the grid; give --grid" in capsys.readouterr().err


def test_help_lists_the_commands(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in ("interpolate", "arithmetic", "walk", "sweep"))
