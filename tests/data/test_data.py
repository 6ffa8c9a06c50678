from pathlib import Path

import pytest
import torch

from dcgan.config import DataConfig
from dcgan.data import dataset_names, load_images
from dcgan.data.sources import mnist_sample_arrays
from dcgan.data.transforms import convert_channels, resize
from dcgan.errors import ConfigError


def test_mnist_sample_is_the_real_5000_digits() -> None:
    images, labels = mnist_sample_arrays()
    assert images.shape == (5000, 28, 28) and images.dtype.name == "uint8"
    assert torch.bincount(torch.from_numpy(labels).long()).tolist() == [500] * 10
    assert images.max() == 255 and (images == 0).mean() > 0.7  # white digits on black


@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.slow
def test_mnist_sample_at_sizes_and_channels(size: int, channels: int) -> None:
    x = load_images(DataConfig(), size, channels)
    assert x.shape == (5000, channels, size, size) and x.dtype == torch.uint8


@pytest.mark.slow
def test_holdout_is_disjoint_and_stable() -> None:
    cfg = DataConfig(holdout=500)
    train, held = load_images(cfg, 16, 1, "train"), load_images(cfg, 16, 1, "holdout")
    assert len(train) == 4500 and len(held) == 500
    flat = lambda x: {bytes(row) for row in x.flatten(1).numpy()}  # noqa: E731
    assert not flat(train) & flat(held) or len(flat(train) & flat(held)) < 5  # duplicates in MNIST
    assert torch.equal(held, load_images(cfg, 16, 1, "holdout"))
    with pytest.raises(ConfigError, match="leaves no training images"):
        load_images(DataConfig(holdout=5000), 16, 1)


def test_resize_keeps_range_and_shape() -> None:
    x = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 10:18, 10:18] = 255
    y = resize(x, 32)
    assert y.shape == (2, 1, 32, 32) and y.dtype == torch.uint8 and y.max() == 255 and y.min() == 0
    assert resize(x, 28) is x


def test_channel_conversion() -> None:
    grey = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    rgb = convert_channels(grey, 3)
    assert torch.equal(rgb[:, 0], grey[:, 0]) and torch.equal(rgb[:, 2], grey[:, 0])
    assert torch.equal(convert_channels(rgb, 1), grey)  # luminance of equal channels
    red = torch.zeros(1, 3, 1, 1, dtype=torch.uint8)
    red[0, 0] = 255
    assert convert_channels(red, 1).item() == 76  # 0.299 * 255


def test_registry_names() -> None:
    assert {"mnist-sample", "fake", "mnist", "folder", "lsun"} <= set(dataset_names())


def test_the_config_names_exactly_the_datasets_that_have_readers() -> None:
    from dcgan.config import BUILT_IN_DATASETS, FILE_DATASETS
    from dcgan.data.catalogue import FINDERS
    from dcgan.data.dataset import BUILT_IN
    from dcgan.data.specs import SPECS

    assert tuple(BUILT_IN) == BUILT_IN_DATASETS
    assert tuple(SPECS) == FILE_DATASETS
    assert tuple(FINDERS) == FILE_DATASETS


def test_only_the_specs_module_writes_a_datasets_file_names() -> None:
    """Adding or renaming a dataset's files is one edit: no other module of the package spells
    them out (messages and finders build them from `dcgan.data.specs`)."""
    import dcgan

    package = Path(dcgan.__file__).parent
    names = ("_32x32.mat", "idx3-ubyte", "idx1-ubyte", "cifar-10-", "cifar-100-", "img_align")
    names += ("data.mdb", "id.txt", "data.hy", '_lmdb"', "_lmdb/", "data_batch_", "batches.meta")
    spelled = {
        f"{path.relative_to(package)}: {name}"
        for path in package.rglob("*.py")
        if path.name != "specs.py"
        for name in names
        if name in path.read_text()
    }
    assert not spelled


def test_sigterm_while_the_cache_is_written_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """SIGTERM's default action would end the process on the spot; under `dcgan` it unwinds,
    so the half-written cache file goes (and a kill's orphans go on the next build)."""
    import os
    import signal

    from conftest import tiny_flags
    from datafiles import write_image_folder
    from dcgan.cli import main
    from dcgan.data import cache

    folder = write_image_folder(tmp_path / "pics", n=8)
    cache_dir = tmp_path / "cache"
    dead = _dead_pid()

    def killed_midway(cfg, found, size, channels, out):
        out.write_bytes(b"half a dataset")
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the write")

    monkeypatch.setattr(cache, "write_encoded", killed_midway)
    flags = tiny_flags(tmp_path, dataset="folder", data_root=folder, cache_dir=cache_dir)
    assert main(["train", *flags]) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in capsys.readouterr().err
    assert list(cache_dir.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back after the command

    monkeypatch.undo()
    orphan = cache_dir / f"folder-16px-1ch-0123.{dead}.tmp.npy"
    mine = cache_dir / f"folder-16px-1ch-0123.{os.getpid()}.tmp.npy"
    for path in (orphan, mine, orphan.with_suffix(".compact.npy")):
        path.write_bytes(b"x")
    cache.remove_orphans(cache_dir / "folder-16px-1ch-0123.npy")
    assert sorted(p.name for p in cache_dir.iterdir()) == [mine.name]


def _dead_pid() -> int:
    """The id of a process that has ended."""
    import subprocess

    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid
