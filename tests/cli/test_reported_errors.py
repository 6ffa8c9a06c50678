"""The cases reported in issue 19, each one line (or recovered) and never a traceback: a cut
export, an output path that cannot be written, an OS error in any command, and an N too small
for FID."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from conftest import tiny_flags
from dcgan.cli import main
from dcgan.evaluation import features


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reported")
    assert main(["train", *tiny_flags(root)]) == 0
    return root / "runs" / "00000-fake-16"


@pytest.fixture
def copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def _one_line(capsys: pytest.CaptureFixture, starts: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(starts), err
    return err


def _pngs(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.png"))}


@pytest.mark.parametrize("name", ["generator.json", "generator.safetensors"])
@pytest.mark.slow
def test_a_cut_export_is_one_line_naming_it(copy: Path, tmp_path: Path, capsys, name) -> None:
    path = copy / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    argv = ["generate", str(copy / "generator.safetensors"), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = _one_line(capsys, f"dcgan generate: error: {path}: not ")
    assert "use the run directory or a checkpoint .pt as the source instead" in err


@pytest.mark.parametrize("name", ["generator.json", "generator.safetensors"])
def test_a_run_with_a_cut_export_generates_from_its_checkpoint(
    run: Path, copy: Path, tmp_path: Path, capsys, name: str
) -> None:
    assert main(["generate", str(run), "--num", "4", "--out", str(tmp_path / "good")]) == 0
    path = copy / name
    path.write_bytes(path.read_bytes()[:-7])
    capsys.readouterr()
    assert main(["generate", str(copy), "--num", "4", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"dcgan generate: warning: {path}: ") and err.count("\n") == 1
    assert "which holds the same weights" in err
    assert _pngs(tmp_path / "o") == _pngs(tmp_path / "good")


def test_a_flipped_bit_in_the_weights_is_found(copy: Path, tmp_path: Path, capsys) -> None:
    path = copy / "generator.safetensors"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x10  # inside a weight: safetensors alone would load it
    path.write_bytes(bytes(data))
    assert main(["generate", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "fail their SHA-256 check" in _one_line(capsys, f"dcgan generate: error: {path}")


@pytest.mark.parametrize("out", ["/proc/forbidden", "/proc/forbidden/deeper"])
def test_an_output_directory_that_cannot_be_made_is_refused_first(
    run: Path, capsys, monkeypatch, out: str
) -> None:
    import dcgan.run.sources

    def never(*_):
        raise AssertionError("the generator was loaded before --out was checked")

    monkeypatch.setattr(dcgan.run.sources, "load_generator", never)
    assert main(["generate", str(run), "--out", out]) == 2
    _one_line(capsys, f"dcgan generate: error: --out: cannot write {out}: cannot create files in")


def test_an_output_under_a_file_is_refused(run: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    assert main(["generate", str(run), "--out", str(tmp_path / "file" / "o")]) == 2
    _one_line(capsys, "dcgan generate: error: --out: cannot write")
    assert main(["generate", str(run), "--out", str(tmp_path / "o"), "--grid", str(tmp_path)]) == 2
    _one_line(capsys, f"dcgan generate: error: --grid: cannot write {tmp_path}: ")


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (errno.ENOSPC, "No space left on device; free some space and run again"),
        (errno.EACCES, "Permission denied; fix its permissions or choose another path"),
        (errno.EROFS, "read-only file system; choose another path"),
    ],
)
def test_an_os_error_in_any_command_is_one_line_naming_the_path(
    run: Path, tmp_path: Path, capsys, monkeypatch, code: int, hint: str
) -> None:
    import dcgan.sampling

    target = tmp_path / "o" / "000003.png"

    def fail(*_args, **_kwargs):
        raise OSError(code, __import__("os").strerror(code), str(target))

    monkeypatch.setattr(dcgan.sampling, "write_images", fail)
    assert main(["generate", str(run), "--out", str(tmp_path / "o")]) == 2
    err = _one_line(capsys, f"dcgan generate: error: {target}: ")
    assert hint in err


def test_fid_of_one_image_is_refused_before_any_work(run: Path, capsys, monkeypatch) -> None:
    def never(*_args, **_kwargs):
        raise AssertionError("the Inception network was loaded")

    monkeypatch.setattr(features, "InceptionFeatures", never)
    assert main(["evaluate", str(run), "--num-samples", "1", "--metrics", "fid"]) == 2
    err = _one_line(capsys, "dcgan evaluate: error: --num-samples: 1 images are too few for fid")
    assert "needs at least 2" in err and "N > 2048" in err and "--num-real" in err
    assert main(["evaluate", str(run), "--num-real", "3", "--metrics", "kid"]) == 2
    _one_line(capsys, "dcgan evaluate: error: --num-real: 3 images are too few for kid")
    assert main(["ref-stats", "--dataset", "fake", "--num-real", "1", "--out", "x.npz"]) == 2
    _one_line(capsys, "dcgan ref-stats: error: --num-real: 1 must be at least 2")
