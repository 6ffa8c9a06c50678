"""The benchmark scripts still import against the package (they run by hand, not in the suite)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).parent.parent / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_imports(path: Path) -> None:
    spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines its functions; main() runs only as a script
    assert callable(module.main)


def _load(path: Path):
    name = f"benchmark_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


EMOJI = _load(Path(__file__).parent.parent / "benchmarks" / "data" / "emoji.py")


def _fake_tarball(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    """A gzipped tar as `npm pack` writes it: every member under package/."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(f"package/{name}")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


def _png(colour: tuple[int, int, int, int]) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGBA", (64, 64), colour).save(out, format="PNG")
    return out.getvalue()


def test_emoji_extraction_takes_only_the_sets_pngs(tmp_path: Path) -> None:
    members = {
        "img/twitter/64/1f600.png": _png((255, 200, 0, 255)),
        "img/twitter/64/1f42c.png": _png((0, 100, 255, 128)),
        "img/twitter/64/nested/1f4a9.png": _png((0, 0, 0, 255)),  # not in the folder itself
        "img/twitter/32/1f600.png": _png((1, 2, 3, 255)),  # another size
        "img/twitter/64/huge.png": b"\0" * (EMOJI.MAX_MEMBER_BYTES + 1),
        "package.json": b"{}",
    }
    tarball = _fake_tarball(tmp_path / "t.tgz", members, links=("img/twitter/64/link.png",))
    EMOJI.main(["--sets", "twemoji", "--root", str(tmp_path / "data"), "--tarball", str(tarball)])
    folder = tmp_path / "data" / "twemoji-64"
    assert sorted(p.name for p in folder.iterdir()) == ["1f42c.png", "1f600.png"]
    assert (folder / "1f600.png").read_bytes() == members["img/twitter/64/1f600.png"]
    assert not any(p.name.startswith(".") for p in (tmp_path / "data").iterdir())


def test_emoji_by_category_sorts_each_image_and_its_variants_into_its_category(
    tmp_path: Path,
) -> None:
    import json

    emoji = [
        {"image": "1f600.png", "category": "Smileys & Emotion", "has_img_twitter": True},
        {
            "image": "1f44d.png",
            "category": "Food & Drink",
            "has_img_twitter": True,
            "skin_variations": {"1F3FB": {"image": "1f44d-1f3fb.png", "has_img_twitter": True}},
        },
        {"image": "1f9d1.png", "category": "People & Body", "has_img_twitter": True},
        {"image": "1f3fb.png", "category": "Component", "has_img_twitter": True},
        {"image": "1f42c.png", "category": "Animals & Nature", "has_img_twitter": False},
    ]
    names = ["1f600", "1f44d", "1f44d-1f3fb", "1f9d1", "1f3fb", "1f42c"]
    members = {f"img/twitter/64/{n}.png": _png((i * 40, 0, 0, 255)) for i, n in enumerate(names)}
    members["emoji.json"] = json.dumps(emoji).encode()
    tarball = _fake_tarball(tmp_path / "t.tgz", members)
    root = tmp_path / "data"
    EMOJI.main(
        ["--sets", "twemoji", "--root", str(root), "--tarball", str(tarball), "--by-category"]
    )
    folder = root / "twemoji-64-categories"
    found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png"))
    assert found == [
        "food-drink/1f44d-1f3fb.png",  # a skin-tone variant goes with its emoji
        "food-drink/1f44d.png",
        "smileys-emotion/1f600.png",
    ]  # People & Body and Component left out; an emoji this set does not draw too
    assert (folder / "smileys-emotion" / "1f600.png").read_bytes() == members[
        "img/twitter/64/1f600.png"
    ]
    assert not (root / "twemoji-64").exists()  # the flat set is another folder
    del members["emoji.json"]
    bare = _fake_tarball(tmp_path / "bare.tgz", members)
    with pytest.raises(SystemExit, match=r"package/emoji\.json: missing"):
        EMOJI.main(["--sets", "noto", "--root", str(root), "--tarball", str(bare), "--by-category"])
    assert not (root / "noto-64-categories").exists()


def test_emoji_script_says_what_to_do(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    with pytest.raises(SystemExit) as stop:
        EMOJI.main(["--sets", "noto", "--root", str(tmp_path / "data")])
    message = str(stop.value)
    assert "npm not found" in message and "--tarball" in message
    assert EMOJI.SETS["noto"].url in message
    empty = _fake_tarball(tmp_path / "e.tgz", {"package.json": b"{}"})
    with pytest.raises(SystemExit, match="no PNG under package/img/google/64/"):
        EMOJI.main(["--sets", "noto", "--root", str(tmp_path / "data"), "--tarball", str(empty)])
    assert not (tmp_path / "data" / "noto-64").exists()


@pytest.mark.slow
def test_the_gpu_checks_dry_run_writes_its_table(tmp_path: Path) -> None:
    """benchmarks/gpu_check.py --dry-run: every part of the check on the CPU at tiny sizes."""
    import json
    import subprocess

    script = Path(__file__).parent.parent / "benchmarks" / "gpu_check.py"
    done = subprocess.run(
        [sys.executable, str(script), "--dry-run", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["tests"]["returncode"] == 5 or "skipped" in report["tests"]["summary"]
    shapes = [(r["shape"], r["batch"]) for r in report["throughput"]]
    assert shapes == [("32x32x1", 8), ("32x32x1", 8), ("64x64x3", 8)]
    assert all(r["ours_to_reference"]["median"] > 0 for r in report["throughput"])
    demo = report["demo"]
    assert demo["fid_cpu"] > 0 and demo["fid_gpu_minus_cpu"] == 0 and demo["n"] == 8
    table = (tmp_path / "gpu-check.md").read_text()
    assert "| 64x64x3 | 8 |" in table and "CPU (dry run)" in table


TONE = _load(Path(__file__).parent.parent / "benchmarks" / "sample_tone.py")


def test_sample_tone_reads_each_tile_of_a_preview_grid(tmp_path: Path, capsys) -> None:
    import torch
    from PIL import Image

    from dcgan.images import make_grid

    # six 8px tiles in a 4-wide grid (two cells empty): black, white, then grey 0.5
    values = [0, 255, 128, 128, 128, 128]
    images = torch.stack([torch.full((3, 8, 8), v, dtype=torch.uint8) for v in values])
    grid = make_grid(images, nrow=4).permute(1, 2, 0).numpy()
    cut = TONE.tiles(grid, 8)
    assert cut.shape == (8, 8, 8, 3)  # every cell of the 2 x 4 grid
    assert [round(t.mean() * 255) for t in cut[:6]] == values
    mean, dark = TONE.tone(cut[:6])
    assert abs(mean - (255 + 4 * 128) / 255 / 6) < 1e-9 and dark == 1 / 6
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    for step in (500, 1000):
        Image.fromarray(grid).save(run / "samples" / f"step-{step:06d}.png")
    TONE.main([str(run), "--image-size", "8"])
    out = capsys.readouterr().out
    assert "500" in out and "1000" in out and "37.5%" in out  # 1 black tile, 2 empty cells
