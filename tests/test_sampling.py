from pathlib import Path

import pytest
import torch

from dcgan.cli import main
from dcgan.config import Config
from dcgan.images import read_png
from dcgan.run.rundir import latest_checkpoint
from dcgan.seeding import seed_for, z_for_indices
from dcgan.training.loop import train


@pytest.fixture
def trained_run(tiny_config: Config) -> Path:
    return train(tiny_config).run_dir


def _pngs(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.png"))}


def test_batch_size_does_not_change_the_images(trained_run: Path, tmp_path: Path) -> None:
    for b in (4, 64):
        assert (
            main(
                [
                    "generate",
                    str(trained_run),
                    "--num",
                    "10",
                    "--out",
                    str(tmp_path / f"b{b}"),
                    "--batch-size",
                    str(b),
                    "--seed",
                    "7",
                ]
            )
            == 0
        )
    small, large = _pngs(tmp_path / "b4"), _pngs(tmp_path / "b64")
    assert len(small) == 10 and small == large


def test_image_i_comes_from_seed_i(trained_run: Path, tmp_path: Path) -> None:
    main(["generate", str(trained_run), "--num", "3", "--out", str(tmp_path / "a")])
    main(["generate", str(trained_run), "--num", "6", "--out", str(tmp_path / "b")])
    main(["generate", str(trained_run), "--num", "3", "--out", str(tmp_path / "c"), "--seed", "1"])
    a, b, c = _pngs(tmp_path / "a"), _pngs(tmp_path / "b"), _pngs(tmp_path / "c")
    assert all(b[name] == a[name] for name in a)
    assert a["000000.png"] != c["000000.png"]


def test_export_alone_and_checkpoint_give_the_same_images(
    trained_run: Path, tmp_path: Path
) -> None:
    alone = tmp_path / "export"
    alone.mkdir()
    for name in ("generator.safetensors", "generator.json"):
        (alone / name).write_bytes((trained_run / name).read_bytes())
    main(
        [
            "generate",
            str(alone / "generator.safetensors"),
            "--num",
            "4",
            "--out",
            str(tmp_path / "x"),
            "--grid",
            str(tmp_path / "grid.png"),
        ]
    )
    main(
        [
            "generate",
            str(latest_checkpoint(trained_run)),
            "--num",
            "4",
            "--out",
            str(tmp_path / "y"),
        ]
    )
    assert _pngs(tmp_path / "x") == _pngs(tmp_path / "y")
    grid = read_png(tmp_path / "grid.png")
    assert grid.shape == (1, 2 * 16 + 3 * 2, 2 * 16 + 3 * 2)


@pytest.mark.slow
def test_preview_grid_matches_generate(trained_run: Path, tmp_path: Path) -> None:
    """The run's fixed noise is images 0..n-1 of its seed, so the final preview is reproducible."""
    main(
        [
            "generate",
            str(trained_run),
            "--num",
            "16",
            "--out",
            str(tmp_path / "g"),
            "--seed",
            "1",
            "--grid",
            str(tmp_path / "grid.png"),
        ]
    )
    final = sorted((trained_run / "samples").glob("*.png"))[-1]
    assert torch.equal(read_png(tmp_path / "grid.png"), read_png(final))


def test_seeds_are_mixed() -> None:
    assert len({seed_for(s, i) for s in range(20) for i in range(20)}) == 400
    z = z_for_indices(3, [5, 9], 8)
    assert torch.equal(z[1], z_for_indices(3, [9], 8)[0])


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--num", "0"], "--num: 0 must be at least 1"),
        (["--batch-size", "0"], "--batch-size: 0 must be at least 1"),
        (["--seed", "-1"], "--seed: -1 must be >= 0"),
    ],
)
@pytest.mark.slow
def test_generate_rejects_bad_flags(
    trained_run: Path, tmp_path: Path, argv: list[str], fragment: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["generate", str(trained_run), "--out", str(tmp_path / "o"), *argv]) == 2
    assert fragment in capsys.readouterr().err


def test_generate_from_nothing_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["generate", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no generator export" in capsys.readouterr().err
