"""The dataset catalogue end to end: official on-disk formats -> cache -> training steps."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datafiles import (
    write_celeba,
    write_cifar,
    write_hdf5,
    write_idx,
    write_image_folder,
    write_image_zip,
    write_lsun,
    write_npz,
    write_svhn,
)
from dcgan.cli import main
from dcgan.config import Config, DataConfig, merge, validate
from dcgan.data import cache, decode, open_images
from dcgan.errors import ConfigError, DataError
from dcgan.training.loop import train


def _digits(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def make_mnist(root: Path, gz: bool = True) -> Path:
    write_idx(root / "mnist", "train", _digits(12), np.zeros(12, np.uint8), gz=gz)
    write_idx(root / "mnist", "t10k", _digits(5, 1), np.zeros(5, np.uint8), gz=gz)
    return root


def make_svhn(root: Path) -> Path:
    write_svhn(root / "svhn", "train", n=8)
    write_svhn(root / "svhn", "test", n=3)
    return root


def make_lsun(root: Path) -> Path:
    (root / "lsun").mkdir(parents=True, exist_ok=True)
    write_lsun(root / "lsun", "bedroom_train", n=6)
    return root


# dataset name -> (writer of the official files under a root, the data_root to pass)
FORMATS = {
    "mnist-gz": ("mnist", lambda r: make_mnist(r)),
    "mnist-raw": ("mnist", lambda r: make_mnist(r, gz=False)),
    "fashion-mnist": (
        "fashion-mnist",
        lambda r: write_idx(r, "train", _digits(9), np.zeros(9, np.uint8)) and r,
    ),
    "cifar10-tarball": ("cifar10", lambda r: write_cifar(r, "cifar10") and r),
    "cifar10-dir": ("cifar10", lambda r: write_cifar(r, "cifar10", as_tarball=False) and r),
    "cifar100": ("cifar100", lambda r: write_cifar(r, "cifar100") and r),
    "svhn": ("svhn", make_svhn),
    "celeba-dir": ("celeba", lambda r: write_celeba(r / "celeba", n=5) and r),
    "celeba-zip": ("celeba", lambda r: write_celeba(r / "celeba", n=5, as_zip=True) and r),
    "lsun": ("lsun", make_lsun),
    "folder": ("folder", lambda r: write_image_folder(r / "pics", n=8)),
    "zip": ("folder", lambda r: write_image_zip(r / "pics.zip", n=8)),
    "hdf5-ids": ("hdf5", lambda r: write_hdf5(r / "h5", n=6, layout="ids")),
    "hdf5-plain": ("hdf5", lambda r: write_hdf5(r / "h5", n=6, layout="plain")),
    "npz": ("npz", lambda r: write_npz(r / "x.npz", n=6, dtype="float32")),
}


def data_config(tmp_path: Path, fmt: str) -> DataConfig:
    name, writer = FORMATS[fmt]
    root = tmp_path / "data"
    root.mkdir(exist_ok=True)
    data_root = writer(root)
    return DataConfig(dataset=name, data_root=str(data_root), cache_dir=str(tmp_path / "cache"))


@pytest.mark.slow  # end to end on every format, size and channel count; readers have unit tests
@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_each_format_trains_two_steps(
    tmp_path: Path, tiny_config: Config, fmt: str, size: int, channels: int
) -> None:
    cfg = dataclasses.replace(tiny_config, data=data_config(tmp_path, fmt))
    cfg = merge(cfg, {"image_size": size, "channels": channels, "steps": 2, "batch_size": 4}, "t")
    result = train(validate(cfg))
    assert result.step == 2
    log = (result.run_dir / "log.txt").read_text()
    assert "data: " in log and "skipped" not in log


@pytest.mark.parametrize("fmt", ["mnist-gz", "cifar10-dir", "svhn", "folder", "hdf5-ids"])
def test_decoded_images_are_real_pixels(tmp_path: Path, fmt: str) -> None:
    images = open_images(data_config(tmp_path, fmt), 32, 3).tensor()
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32)
    assert images.float().std() > 10  # not blank


def test_idx_pixels_survive_exactly(tmp_path: Path) -> None:
    cfg = data_config(tmp_path, "mnist-raw")
    images = open_images(dataclasses.replace(cfg, split="train"), 28, 1).tensor()
    assert np.array_equal(images[:, 0].numpy(), _digits(12))


@pytest.mark.parametrize(("split", "count"), [("train", 12), ("test", 5), ("all", 17)])
def test_mnist_splits(tmp_path: Path, split: str, count: int) -> None:
    cfg = dataclasses.replace(data_config(tmp_path, "mnist-gz"), split=split)
    assert len(open_images(cfg, 16, 1)) == count


def test_svhn_all_includes_extra_when_present(tmp_path: Path) -> None:
    cfg = dataclasses.replace(data_config(tmp_path, "svhn"), split="all")
    assert len(open_images(cfg, 16, 3)) == 11
    write_svhn(Path(cfg.data_root) / "svhn", "extra", n=4)
    assert len(open_images(cfg, 16, 3)) == 15


def test_torchvision_layout_is_found(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw, "train", _digits(7), np.zeros(7, np.uint8), gz=False)
    cfg = DataConfig(dataset="mnist", data_root=str(tmp_path), cache_dir=str(tmp_path / "c"))
    assert len(open_images(cfg, 16, 1)) == 7


def test_lsun_several_classes(tmp_path: Path) -> None:
    (tmp_path / "lsun").mkdir()
    write_lsun(tmp_path / "lsun", "bedroom_train", n=3)
    write_lsun(tmp_path / "lsun", "church_outdoor_train", n=4, fmt="jpeg")
    cfg = DataConfig(
        dataset="lsun",
        data_root=str(tmp_path),
        lsun_classes="bedroom_train,church_outdoor_train",
        cache_dir=str(tmp_path / "c"),
    )
    assert len(open_images(cfg, 16, 3)) == 7


# ---------------------------------------------------------------------------- bad input


def write_bad_files(folder: Path) -> None:
    """A truncated JPEG, a zero-byte PNG and a text file named .png."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("these are my notes, not an image\n")


def good_folder(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.mark.slow
def test_bad_files_are_skipped_and_listed(tmp_path: Path, tiny_config: Config) -> None:
    folder = good_folder(tmp_path / "pics", 300)
    write_bad_files(folder)
    (folder / "README.txt").write_text("not an image suffix: ignored, not counted")
    data = DataConfig(dataset="folder", data_root=str(folder), cache_dir=str(tmp_path / "c"))
    result = train(dataclasses.replace(tiny_config, data=data))
    log = (result.run_dir / "log.txt").read_text()
    listed = [line for line in log.splitlines() if f" skipped {folder}" in line]
    assert "skipped 3 unreadable files" in log
    assert sorted(line.split("skipped ")[1].split(":")[0] for line in listed) == sorted(
        str(folder / n) for n in ("empty.png", "notes.png", "truncated.jpg")
    )
    # the cache remembers the skipped files, so a second run reports them too
    again = train(dataclasses.replace(tiny_config, data=data))
    assert "skipped 3 unreadable files" in (again.run_dir / "log.txt").read_text()


def test_too_many_bad_files_fail_with_one_line(tmp_path: Path) -> None:
    folder = good_folder(tmp_path / "pics", 20)
    write_bad_files(folder)
    cfg = DataConfig(dataset="folder", data_root=str(folder), cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match=r"3 of 23 image files .* max_bad_fraction") as e:
        open_images(cfg, 16, 1)
    assert "\n" not in str(e.value)
    assert not list((tmp_path / "c").glob("*.npy")), "no cache for a failed decode"
    assert len(open_images(dataclasses.replace(cfg, max_bad_fraction=0.2), 16, 1)) == 20


def test_decompression_bombs_stay_refused(tmp_path: Path, monkeypatch) -> None:
    folder = good_folder(tmp_path / "pics", 200)
    Image.new("L", (300, 300)).save(folder / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 300 // 2)
    cfg = DataConfig(dataset="folder", data_root=str(folder), cache_dir=str(tmp_path / "c"))
    data = open_images(cfg, 16, 1)
    assert len(data) == 200
    assert [Path(p).name for p, _ in data.skipped] == ["huge.png"]
    assert "DecompressionBomb" in data.skipped[0][1]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mnist", "train-images-idx3-ubyte.gz.*dcgan download --dataset mnist"),
        ("cifar10", "cifar-10-python.tar.gz or cifar-10-batches-py/"),
        ("svhn", "train_32x32.mat"),
        ("celeba", "img_align_celeba.*prints where to get it"),
        ("lsun", "bedroom_train_lmdb/"),
        ("folder", "does not exist"),
        ("npz", "does not exist"),
    ],
)
def test_missing_files_name_what_is_expected(tmp_path: Path, name: str, expected: str) -> None:
    cfg = DataConfig(dataset=name, data_root=str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=expected) as e:
        open_images(cfg, 16, 1)
    assert "\n" not in str(e.value)


def test_empty_folder_and_fake_cifar_have_their_own_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        open_images(DataConfig(dataset="folder", data_root=str(tmp_path / "empty")), 16, 1)
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "cifar-10-python.tar.gz").write_bytes(b"definitely not a tarball")
    with pytest.raises(DataError, match="not a CIFAR tarball"):
        open_images(DataConfig(dataset="cifar10", data_root=str(tmp_path)), 16, 1)


def test_split_test_on_a_dataset_without_one_is_an_error(tmp_path: Path) -> None:
    cfg = dataclasses.replace(data_config(tmp_path, "folder"), split="test")
    with pytest.raises(ConfigError, match="no official test split"):
        open_images(cfg, 16, 1)


# ---------------------------------------------------------------------------- cache


def test_second_load_decodes_nothing(tmp_path: Path, monkeypatch) -> None:
    cfg = data_config(tmp_path, "folder")
    first = open_images(cfg, 16, 3).tensor().clone()

    def fail(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache, "decode_into", fail)
    second = open_images(cfg, 16, 3)
    assert torch.equal(first, second.tensor()) and "cached" in second.source


def test_cache_is_keyed_by_files_size_and_channels(tmp_path: Path) -> None:
    cfg = data_config(tmp_path, "npz")
    open_images(cfg, 16, 1)
    open_images(cfg, 16, 3)
    open_images(cfg, 32, 1)
    assert len(list(Path(cfg.cache_dir).glob("*.npy"))) == 3
    write_npz(Path(cfg.data_root), n=7, dtype="float32", seed=5)  # the source file changes
    assert len(open_images(cfg, 16, 1)) == 7
    assert len(list(Path(cfg.cache_dir).glob("*.npy"))) == 4
    metas = [json.loads(p.read_text()) for p in Path(cfg.cache_dir).glob("*.json")]
    assert all(m["skipped"] == [] for m in metas)


def test_cache_files_are_plain_npy(tmp_path: Path) -> None:
    cfg = data_config(tmp_path, "cifar10-dir")
    data = open_images(cfg, 16, 3)
    (path,) = Path(cfg.cache_dir).glob("*.npy")
    assert np.array_equal(np.load(path, allow_pickle=False), data.tensor().numpy())
    assert not list(Path(cfg.cache_dir).glob("*tmp*"))


def test_worker_processes_decode_the_same_pixels(tmp_path: Path) -> None:
    cfg = data_config(tmp_path, "folder")
    inline = open_images(dataclasses.replace(cfg, workers=0), 16, 3).tensor().clone()
    for p in Path(cfg.cache_dir).iterdir():
        p.unlink()
    pooled = open_images(dataclasses.replace(cfg, workers=2), 16, 3).tensor()
    assert torch.equal(inline, pooled)


def test_memmap_dataset_with_holdout_streams_rows(tmp_path: Path) -> None:
    cfg = dataclasses.replace(data_config(tmp_path, "mnist-gz"), split="all", holdout=4)
    train_part, held = open_images(cfg, 16, 1), open_images(cfg, 16, 1, "holdout")
    assert len(train_part) == 13 and len(held) == 4
    assert train_part.rows is not None and isinstance(train_part.images, torch.Tensor)
    rows = set(train_part.rows.tolist()) | set(held.rows.tolist())
    assert rows == set(range(17))


# ---------------------------------------------------------------------------- pixels


def _decode(img: Image.Image, channels: int, size: int = 4, fmt: str = "PNG") -> np.ndarray:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return decode.decode_one(buf.getvalue(), size, channels, None)


def test_mode_conversions() -> None:
    transparent = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert (_decode(transparent, 3) == 255).all()  # transparent pixels over white
    grey16 = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    assert (_decode(grey16, 1) == 255).all()  # scaled, not clipped
    half16 = Image.fromarray(np.full((8, 8), 32896, np.uint16))
    assert (_decode(half16, 1) == 128).all()
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    red = _decode(cmyk, 3, fmt="JPEG")
    assert red[0].mean() > 200 and red[1].mean() < 60
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 255] + [0] * 765)
    assert _decode(palette, 3)[2].mean() == 255
    assert _decode(Image.new("L", (8, 8), 77), 3).tolist() == [[[77] * 4] * 4] * 3


def test_non_square_images_are_centre_cropped() -> None:
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 255  # only the centre square is white
    out = _decode(Image.fromarray(wide), 3, size=10)
    assert (out == 255).all()


def test_celeba_crop_keeps_the_centre_of_the_face(tmp_path: Path) -> None:
    face = np.zeros((218, 178, 3), np.uint8)
    face[55:163, 35:143] = 255  # the 108x108 centre
    buf = io.BytesIO()
    Image.fromarray(face).save(buf, "PNG")
    out = decode.decode_one(buf.getvalue(), 16, 3, decode.CELEBA_CROP)
    assert (out == 255).all()


# ---------------------------------------------------------------------------- flips and CLI


def test_flip_mirrors_about_half_and_is_seeded(tiny_config: Config) -> None:
    from dcgan.data import ImageSet
    from dcgan.training.batches import real_batch

    x = torch.arange(2 * 16, dtype=torch.uint8).view(1, 1, 2, 16).repeat(64, 1, 1, 1)
    data = ImageSet(x)
    idx = torch.arange(64)
    a = real_batch(data, idx, True, 0, 7, torch.device("cpu"))
    b = real_batch(data, idx, True, 0, 7, torch.device("cpu"))
    plain = real_batch(data, idx, False, 0, 7, torch.device("cpu"))
    flipped = (a != plain).flatten(1).any(1)
    assert torch.equal(a, b) and 16 < flipped.sum() < 48
    assert torch.equal(a[flipped], plain[flipped].flip(-1))


@pytest.mark.slow
def test_flip_reaches_training_and_nothing_else(tiny_config: Config) -> None:
    """Mirror-symmetric images: --flip changes no real batch, so it must change no weight (its
    draws have their own stream). Lopsided images: it must change the weights."""
    half = torch.randint(0, 256, (64, 1, 16, 8), generator=torch.Generator().manual_seed(0))
    mirrored = torch.cat([half, half.flip(-1)], -1).to(torch.uint8)
    lopsided = torch.cat([half, torch.zeros_like(half)], -1).to(torch.uint8)

    def weights(images: torch.Tensor, flip: bool) -> list[torch.Tensor]:
        result = train(merge(tiny_config, {"flip": flip, "steps": 2}, "t"), images)
        return [p.detach().clone() for p in result.generator.parameters()]

    def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    assert same(weights(mirrored, True), weights(mirrored, False))
    assert not same(weights(lopsided, True), weights(lopsided, False))


def test_datasets_command_lists_names_and_presence(tmp_path: Path, capsys) -> None:
    make_mnist(tmp_path)
    assert main(["datasets", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("mnist", "fashion-mnist", "cifar10", "svhn", "celeba", "lsun", "folder", "npz"):
        assert f"  {name} " in out
    mnist_block = out.split("  mnist ")[1].split("\n  fashion-mnist")[0]
    assert "present" in mnist_block and str(tmp_path / "mnist") in mnist_block
    assert "missing" in out.split("  cifar10 ")[1].split("\n  cifar100")[0]


def test_download_command_prints_manual_instructions(tmp_path: Path, capsys) -> None:
    assert main(["download", "--dataset", "celeba", "lsun", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "img_align_celeba" in out and "bedroom_train_lmdb" in out and str(tmp_path) in out


def test_train_cli_on_a_folder(tmp_path: Path, capsys) -> None:
    from conftest import tiny_flags

    folder = write_image_folder(tmp_path / "pics", n=8)
    argv = ["train", *tiny_flags(tmp_path, dataset="folder", data_root=folder, steps=2)]
    assert main(argv) == 0
    assert main(["train", *tiny_flags(tmp_path, dataset="folder", data_root=tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith("dcgan train: error: folder: data_root") and "does not exist" in last


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("split", "val", "split: 'val' is not one of train, test, all"),
        ("max_bad_fraction", 1.5, "max_bad_fraction: 1.5 must be in"),
        ("workers", -1, "workers: -1 must be >= 0"),
    ],
)
def test_data_settings_are_validated(flag: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(merge(Config(), {flag: value}, "flag"))


def test_download_failure_is_one_line_through_the_cli(tmp_path: Path, monkeypatch, capsys) -> None:
    from dcgan.data import download

    dead = download.RemoteFile(
        "t10k-images-idx3-ubyte.gz", ("http://127.0.0.1:9/x.gz",), "md5:" + "0" * 32
    )
    monkeypatch.setitem(download.REMOTE, "mnist", (dead,))
    assert main(["download", "--dataset", "mnist", "--root", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "http://127.0.0.1:9/x.gz" in err
    assert str(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz") in err


def test_folder_walk_reads_each_directory_once_and_only_regular_files(tmp_path: Path) -> None:
    """Two link loops, a link out of the folder, a FIFO named like an image and a name that is
    not UTF-8: each image once, nothing outside read, no hang, no traceback."""
    import os
    import warnings

    from dcgan.errors import Recovered

    root = tmp_path / "pics"
    write_image_folder(root / "sub", n=3, nested=False)
    odd = os.fsencode(root) + b"/odd-\xff.png"
    Image.new("RGB", (8, 8), (9, 9, 9)).save(os.fsdecode(odd))
    outside = write_image_folder(tmp_path / "elsewhere", n=2)
    (root / "a").symlink_to(".")
    (root / "b").symlink_to(".")
    (root / "sub" / "up").symlink_to("..")
    (root / "out").symlink_to(outside)
    os.mkfifo(root / "x.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keys = decode.list_folder(root)
    subs = sorted(f"sub/{p.name}" for p in (root / "sub").iterdir() if not p.is_symlink())
    assert len(subs) == 3
    assert keys == tuple(sorted([os.fsdecode(b"odd-\xff.png"), *subs]))
    (warning,) = [w for w in caught if issubclass(w.category, Recovered)]
    assert "1 link(s) lead out of the folder" in str(warning.message)
    assert "'out'" in str(warning.message)
    cfg = validate(merge(Config(), {"dataset": "folder", "data_root": str(root)}, "test"))
    with pytest.warns(Recovered, match="lead out of the folder"):
        images = open_images(cfg.data, 16, 3, "train")
    assert len(images) == len(keys)  # decoded and cached, the odd name included
