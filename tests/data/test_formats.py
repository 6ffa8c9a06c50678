"""The raw-array dataset readers against files in the official on-disk formats."""

from __future__ import annotations

import gzip
import io
import multiprocessing
import os
import pickle
import shutil
import tarfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from datafiles import (
    CIFAR,
    IMAGE_FORMATS,
    ZIP_JUNK,
    cifar_files,
    cifar_images,
    cifar_rows,
    image_specs,
    lsun_items,
    py2_pickle,
    random_pixels,
    write_celeba,
    write_cifar,
    write_hdf5,
    write_idx,
    write_image_folder,
    write_image_zip,
    write_lsun,
    write_npz,
    write_svhn,
    write_tar_gz,
)
from dcgan.data import containers
from dcgan.data.arrays import to_uint8_array
from dcgan.data.containers import lmdb_keys, lmdb_read, read_hdf5, read_npz
from dcgan.data.official import read_cifar, read_idx, read_svhn
from dcgan.errors import DataError


def data_error(call, *args, names: object) -> str:
    """Run call(*args), expecting a DataError whose message is one line naming `names`."""
    with pytest.raises(DataError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message, message
    assert str(names) in message, message
    return message


def collect(result: tuple[int, object]) -> tuple[int, list[np.ndarray]]:
    count, chunks = result
    return count, list(chunks)


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images = random_pixels(7, 28, 28, None, seed=3)
    labels = np.arange(7, dtype=np.uint8)
    path = write_idx(tmp_path, "t10k", images, labels, gz=gz)
    assert path.name == "t10k-images-idx3-ubyte" + (".gz" if gz else "")
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (7, 28, 28, 1)
    np.testing.assert_array_equal(out[..., 0], images)
    np.testing.assert_array_equal(
        read_idx(path.with_name(path.name.replace("images-idx3", "labels-idx1"))), labels
    )


def test_idx_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    images = random_pixels(3, 5, 6, None)
    gz = write_idx(tmp_path / "a", "train", images, np.zeros(3, np.uint8), gz=True)
    raw = write_idx(tmp_path / "b", "train", images, np.zeros(3, np.uint8), gz=False)
    gz_no_suffix, raw_with_suffix = tmp_path / "gz-plain-name", tmp_path / "raw.gz"
    shutil.copy(gz, gz_no_suffix)
    shutil.copy(raw, raw_with_suffix)
    for path in (gz_no_suffix, raw_with_suffix):
        np.testing.assert_array_equal(read_idx(path)[..., 0], images)


def test_idx_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x09\x03" + bytes(16))
    message = data_error(read_idx, path, names=path)
    assert "not an IDX file (bad magic 0x00000903" in message


def test_idx_truncated_payload(tmp_path: Path) -> None:
    path = write_idx(
        tmp_path, "train", random_pixels(4, 28, 28, None), np.zeros(4, np.uint8), gz=False
    )
    path.write_bytes(path.read_bytes()[:-100])
    message = data_error(read_idx, path, names=path)
    assert "truncated" in message and f"expected {4 * 28 * 28} bytes" in message


def test_idx_truncated_header_and_gzip(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    assert "truncated" in data_error(read_idx, short, names=short)
    path = write_idx(tmp_path, "train", random_pixels(4, 28, 28, None), np.zeros(4, np.uint8))
    path.write_bytes(path.read_bytes()[:-40])
    assert "gzip" in data_error(read_idx, path, names=path)


def test_idx_missing_file_or_directory(tmp_path: Path) -> None:
    assert "no such file" in data_error(read_idx, tmp_path / "no.gz", names=tmp_path / "no.gz")
    assert "is a directory" in data_error(read_idx, tmp_path, names=tmp_path)


# ---------------------------------------------------------------- CIFAR


def expected_cifar(variant: str, split: str) -> np.ndarray:
    images = cifar_images(variant)
    names = list(images)
    train, test = names[:-1], names[-1:]
    chosen = {"train": train, "test": test, "all": train + test}[split]
    return np.concatenate([images[n] for n in chosen])


@pytest.mark.parametrize("variant", ["cifar10", "cifar100"])
@pytest.mark.parametrize("as_tarball", [True, False])
def test_cifar_round_trip(tmp_path: Path, variant: str, as_tarball: bool) -> None:
    source = write_cifar(tmp_path, variant, as_tarball=as_tarball)
    assert source.name == CIFAR[variant]["archive" if as_tarball else "folder"]
    for split, count in (("train", 5 if variant == "cifar10" else 1), ("test", 1), ("all", None)):
        out = read_cifar(source, variant, split)
        want = expected_cifar(variant, split)
        assert out.dtype == np.uint8 and out.shape[1:] == (32, 32, 3)
        assert count is None or len(out) == 4 * count
        np.testing.assert_array_equal(out, want)


def test_cifar_tarball_is_not_extracted(tmp_path: Path) -> None:
    path = write_cifar(tmp_path, "cifar10")
    read_cifar(path, "cifar10", "all")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_cifar_directory_parent_accepted(tmp_path: Path) -> None:
    write_cifar(tmp_path, "cifar10", as_tarball=False)
    np.testing.assert_array_equal(
        read_cifar(tmp_path, "cifar10", "test"), expected_cifar("cifar10", "test")
    )


def test_cifar_files_are_python2_style_pickles() -> None:
    batch = cifar_files("cifar10")["data_batch_1"]
    assert b"numpy.core.multiarray\n_reconstruct" in batch and b"_codecs" not in batch
    loaded = pickle.loads(batch, encoding="bytes")
    assert set(loaded) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert loaded[b"data"].dtype == np.uint8 and loaded[b"data"].shape == (4, 3072)
    # The writer itself stores CHW rows: the first 1024 values are the red plane.
    red = cifar_images("cifar10")["data_batch_1"][..., 0].reshape(4, 1024)
    np.testing.assert_array_equal(loaded[b"data"][:, :1024], red)
    meta = pickle.loads(cifar_files("cifar100")["meta"], encoding="bytes")
    assert len(meta[b"fine_label_names"]) == 100 and len(meta[b"coarse_label_names"]) == 20


def test_cifar_chw_rows_become_hwc_pixels(tmp_path: Path) -> None:
    # A known pattern, built without the writer's own conversion: red = position, green and
    # blue constant, so a reader that reshapes rows straight to HWC gets it wrong.
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    position = (np.arange(1024) % 251).astype(np.uint8)
    row = np.concatenate([position, np.full(1024, 100, np.uint8), np.full(1024, 50, np.uint8)])
    data = np.stack([row, row])
    for name in ("train", "test"):
        (folder / name).write_bytes(py2_pickle({b"data": data, b"fine_labels": [0, 1]}))
    out = read_cifar(folder, "cifar100", "train")
    assert out.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(out[1, :, :, 0], position.reshape(32, 32))
    assert (out[..., 1] == 100).all() and (out[..., 2] == 50).all()
    assert out[0, 1, 0, 0] == 32  # row 1, column 0 is element 32 of the red plane


def test_cifar_python3_pickles_also_load(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    images = random_pixels(3, 32, 32, 3)
    for name in ("train", "test"):
        batch = {b"data": cifar_rows(images), b"fine_labels": [0, 1, 2]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    np.testing.assert_array_equal(read_cifar(folder, "cifar100", "test"), images)


def test_cifar_not_a_tarball(tmp_path: Path) -> None:
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(b"this is not a tar archive at all" * 20)
    assert "not a CIFAR tarball" in data_error(read_cifar, path, "cifar10", "train", names=path)


def test_cifar_tarball_missing_members(tmp_path: Path) -> None:
    files = cifar_files("cifar10")
    del files["data_batch_3"], files["test_batch"]
    path = write_tar_gz(
        tmp_path / "cifar-10-python.tar.gz",
        {f"cifar-10-batches-py/{k}": v for k, v in files.items()},
    )
    message = data_error(read_cifar, path, "cifar10", "all", names=path)
    assert "cifar-10-batches-py/data_batch_3" in message and "test_batch" in message
    assert "data_batch_1" not in message


def test_cifar100_given_as_cifar10_says_so(tmp_path: Path) -> None:
    for as_tarball in (True, False):
        path = write_cifar(tmp_path, "cifar100", as_tarball=as_tarball)
        message = data_error(read_cifar, path, "cifar10", "train", names=path)
        assert "data_batch_1" in message and "set the variant to cifar100" in message


def test_cifar_truncated_tarball(tmp_path: Path) -> None:
    path = write_cifar(tmp_path, "cifar10", n_per_batch=50)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = data_error(read_cifar, path, "cifar10", "all", names=path)
    assert "truncated or corrupt" in message


def test_cifar_directory_missing_batches(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path, "cifar10", as_tarball=False)
    (folder / "data_batch_5").unlink()
    assert "data_batch_5" in data_error(read_cifar, folder, "cifar10", "train", names=folder)
    assert len(read_cifar(folder, "cifar10", "test")) == 4  # the test split is still whole


def test_cifar_bad_variant_and_split(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path, "cifar10", as_tarball=False)
    assert "cifar100" in data_error(read_cifar, folder, "cifar1000", "train", names=folder)
    assert "train, test or all" in data_error(read_cifar, folder, "cifar10", "val", names=folder)


def test_cifar_batch_without_data(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path, "cifar100", as_tarball=False)
    (folder / "test").write_bytes(py2_pickle({b"labels": [1, 2]}))
    data_error(read_cifar, folder, "cifar100", "test", names=folder / "test")
    (folder / "test").write_bytes(b"\x80\x02}q\x00(U\x04data")  # truncated pickle
    data_error(read_cifar, folder, "cifar100", "test", names=folder / "test")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("as_tarball", [True, False])
def test_cifar_unpickler_refuses_code_execution(tmp_path: Path, as_tarball: bool) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Exploit(marker)}, protocol=2)
    assert b"system" in evil  # the payload is really there, and would run under pickle.loads
    files = cifar_files("cifar10")
    files["test_batch"] = evil
    if as_tarball:
        members = {f"cifar-10-batches-py/{k}": v for k, v in files.items()}
        source = write_tar_gz(tmp_path / "cifar-10-python.tar.gz", members)
    else:
        source = tmp_path / "cifar-10-batches-py"
        source.mkdir()
        for name, data in files.items():
            (source / name).write_bytes(data)
    message = data_error(read_cifar, source, "cifar10", "test", names=source)
    assert "system" in message and "test_batch" in message
    assert not marker.exists()


def test_cifar_unpickler_refuses_other_codecs(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    # _codecs.encode is allowed only for the latin1 bytes Python 3 writes at protocol 2.
    evil = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
    for name in ("train", "test"):
        (folder / name).write_bytes(evil)
    assert "rot13" in data_error(read_cifar, folder, "cifar100", "train", names=folder / "train")


# ---------------------------------------------------------------- SVHN


def test_svhn_round_trip_and_order(tmp_path: Path) -> None:
    train = write_svhn(tmp_path, "train", n=5, seed=1)
    test = write_svhn(tmp_path, "test", n=3, seed=2)
    mat = scipy.io.loadmat(train)
    assert mat["X"].shape == (32, 32, 3, 5) and mat["y"].shape == (5, 1)
    assert mat["X"].dtype == np.uint8
    out = read_svhn([test, train])
    assert out.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(out[:3], random_pixels(3, 32, 32, 3, seed=2))
    np.testing.assert_array_equal(out[3:], random_pixels(5, 32, 32, 3, seed=1))
    np.testing.assert_array_equal(read_svhn(train), random_pixels(5, 32, 32, 3, seed=1))


def test_svhn_errors(tmp_path: Path) -> None:
    junk = tmp_path / "train_32x32.mat"
    junk.write_bytes(b"not a mat file" * 50)
    assert "not a MATLAB" in data_error(read_svhn, [junk], names=junk)
    no_x = tmp_path / "test_32x32.mat"
    scipy.io.savemat(no_x, {"y": np.zeros((3, 1), np.uint8)}, format="5")
    assert "variable X" in data_error(read_svhn, [no_x], names=no_x)
    data_error(read_svhn, [], names="SVHN")


# ---------------------------------------------------------------- HDF5


@pytest.mark.parametrize("channels", [3, 1, None])
def test_hdf5_ids_round_trip(tmp_path: Path, channels: int | None) -> None:
    path = write_hdf5(tmp_path, n=5, layout="ids", size=(20, 12), channels=channels, seed=4)
    assert path.name == "data.hy" and (tmp_path / "id.txt").is_file()
    count, chunks = collect(read_hdf5(path))
    want = random_pixels(5, 12, 20, channels, seed=4)
    want = want[..., None] if channels is None else want
    assert count == 5 and [c.shape for c in chunks] == [(1, 12, 20, channels or 1)] * 5
    np.testing.assert_array_equal(np.concatenate(chunks), want)


def test_hdf5_ids_sizes_vary_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.hy"
    images = {"a": random_pixels(1, 8, 6, 3)[0], "b": random_pixels(1, 5, 9, 3, seed=1)[0]}
    with h5py.File(path, "w") as f:
        for ident, image in images.items():
            f.create_group(ident)["image"] = image
    ids = tmp_path / "list.txt"
    ids.write_text("\nb\n\n  a \n\n")
    count, chunks = collect(read_hdf5(path, ids))
    assert count == 2
    np.testing.assert_array_equal(chunks[0][0], images["b"])
    np.testing.assert_array_equal(chunks[1][0], images["a"])


def test_hdf5_plain_streams_chunks(tmp_path: Path) -> None:
    path = write_hdf5(tmp_path, n=2100, layout="plain", size=(4, 3), channels=3, seed=5)
    count, chunks = collect(read_hdf5(path))
    assert count == 2100 and [len(c) for c in chunks] == [1024, 1024, 52]
    np.testing.assert_array_equal(np.concatenate(chunks), random_pixels(2100, 3, 4, 3, seed=5))


def test_hdf5_plain_float_uses_one_scale_for_the_whole_file(tmp_path: Path) -> None:
    # The first chunk alone spans [0, 1], but the file spans [0, 255]: no chunk gets * 255.
    images = np.zeros((1030, 2, 2), np.float32)
    images[:1024] = 1.0
    images[-1] = 255.0
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["images"] = images
    count, chunks = collect(read_hdf5(path))
    out = np.concatenate(chunks)
    assert count == 1030 and out.shape == (1030, 2, 2, 1)
    assert out[0, 0, 0, 0] == 1 and out[-1, 0, 0, 0] == 255


def test_hdf5_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"nope" * 100)
    assert "not an HDF5 file" in data_error(read_hdf5, junk, names=junk)
    empty = tmp_path / "empty" / "data.hy"
    empty.parent.mkdir()
    with h5py.File(empty, "w") as f:
        f["other"] = np.zeros(3)
    assert "id.txt" in data_error(read_hdf5, empty, names=empty)

    path = write_hdf5(tmp_path / "ids", n=3)
    (path.parent / "id.txt").write_text("0\n1\n7\n")
    assert "'7'" in data_error(read_hdf5, path, names=path)
    with h5py.File(path, "a") as f:
        f.create_group("7")["label"] = np.zeros(10)
    assert "'7'" in data_error(read_hdf5, path, names=path)


# ---------------------------------------------------------------- NumPy


@pytest.mark.parametrize("channels", [None, 1, 3])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_npz_round_trip(tmp_path: Path, channels: int | None, dtype: str) -> None:
    path = write_npz(tmp_path / "x.npz", n=6, size=(20, 10), channels=channels, dtype=dtype, seed=6)
    out = read_npz(path)
    want = random_pixels(6, 10, 20, channels, seed=6)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, want[..., None] if channels is None else want)


def test_npy_and_channels_first(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "x.npy", channels=3, seed=7)
    want = random_pixels(6, 20, 20, 3, seed=7)
    np.testing.assert_array_equal(read_npz(path), want)
    np.save(path, want.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(read_npz(path), want)


def test_npz_key_choice(tmp_path: Path) -> None:
    a, b = random_pixels(2, 4, 4, 3), random_pixels(3, 4, 4, 3, seed=1)
    path = tmp_path / "k.npz"
    np.savez(path, x_test=b, x_train=a, y_train=np.zeros(2))
    np.testing.assert_array_equal(read_npz(path), a)
    np.savez(path, pics=b, labels=np.zeros(3))
    np.testing.assert_array_equal(read_npz(path), b)
    np.savez(path, first=a, second=b)
    message = data_error(read_npz, path, names=path)
    assert "first, second" in message


def test_npz_errors(tmp_path: Path) -> None:
    objects = tmp_path / "o.npz"
    np.savez(objects, images=np.array([{"a": 1}], dtype=object))
    data_error(read_npz, objects, names=objects)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"\x80\x04junk" * 10)
    assert "not a NumPy" in data_error(read_npz, junk, names=junk)
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(10))
    data_error(read_npz, flat, names=flat)


# ---------------------------------------------------------------- to_uint8_array


@pytest.mark.parametrize(
    ("values", "want"),
    [
        ([0.0, 0.5, 1.0], [0, 128, 255]),
        ([-1.0, 0.0, 1.0], [0, 128, 255]),
        ([0.0, 127.4, 255.0], [0, 127, 255]),
        ([0.0, 2 / 255, 254 / 255], [0, 2, 254]),
    ],
)
def test_to_uint8_float_ranges(values: list[float], want: list[int]) -> None:
    for dtype in (np.float16, np.float32, np.float64):
        x = np.array(values, dtype=dtype).reshape(1, 1, 3)
        out = to_uint8_array(x, "src")
        assert out.dtype == np.uint8 and out.shape == (1, 1, 3, 1)
        assert out.ravel().tolist() == want


@pytest.mark.parametrize("bad", [[0.0, 300.0], [-2.0, 0.5], [0.0, np.nan], [np.inf, 0.0]])
def test_to_uint8_rejects_other_floats(bad: list[float]) -> None:
    data_error(to_uint8_array, np.array(bad).reshape(1, 1, 1, 2), "my-source", names="my-source")


def test_to_uint8_integers() -> None:
    x = np.array([0, 257, 32768, 65535], np.uint16).reshape(1, 2, 2)
    assert to_uint8_array(x, "s").ravel().tolist() == [0, 1, 128, 255]
    x8 = random_pixels(2, 3, 3, 3)
    assert to_uint8_array(x8, "s") is x8
    assert to_uint8_array(x8.astype(np.int64), "s").tolist() == x8.tolist()
    data_error(to_uint8_array, np.array([[[-1, 3]]], np.int16), "s16", names="s16")
    data_error(to_uint8_array, np.array([[[1, 256]]], np.int32), "s32", names="s32")
    data_error(to_uint8_array, np.zeros((1, 2, 2), bool), "sbool", names="sbool")


# ---------------------------------------------------------------- LSUN LMDB


@pytest.mark.parametrize("fmt", ["webp", "jpeg"])
def test_lmdb_round_trip(tmp_path: Path, fmt: str) -> None:
    path = write_lsun(tmp_path, "bedroom_train", n=6, size=(40, 30), fmt=fmt, seed=8)
    assert path.name == "bedroom_train_lmdb" and (path / "data.mdb").is_file()
    items = dict(lsun_items(6, (40, 30), fmt, seed=8))
    keys = lmdb_keys(path)
    assert keys == sorted(items) and all(len(k) == 40 for k in keys)
    values = lmdb_read(path, keys[::-1])
    assert values == [items[k] for k in keys[::-1]]
    image = Image.open(io.BytesIO(values[0]))
    assert image.format == fmt.upper() and image.size == (40, 30)


def test_lmdb_env_is_cached_per_process(tmp_path: Path) -> None:
    path = write_lsun(tmp_path, "church_outdoor_train", n=2)
    lmdb_keys(path)
    env = containers._LMDB_ENVS[os.path.abspath(path)]
    lmdb_read(path, lmdb_keys(path))
    assert containers._LMDB_ENVS[os.path.abspath(path)] is env


def _read_in_child(path: Path, queue) -> None:
    values = lmdb_read(path, lmdb_keys(path))
    queue.put((len(values), containers._LMDB_PID[0] == os.getpid()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_lmdb_forked_worker_opens_its_own_env(tmp_path: Path) -> None:
    path = write_lsun(tmp_path, "tower_train", n=3)
    lmdb_keys(path)  # the parent's environment is cached before the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(path, queue))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0 and queue.get(timeout=5) == (3, True)
    assert len(lmdb_read(path, lmdb_keys(path))) == 3  # the parent's env still works


def test_lmdb_errors(tmp_path: Path) -> None:
    data_error(lmdb_keys, tmp_path / "missing_lmdb", names=tmp_path / "missing_lmdb")
    not_lmdb = tmp_path / "bedroom_train_lmdb"
    not_lmdb.mkdir()
    (not_lmdb / "data.mdb").write_bytes(b"garbage" * 1000)
    assert "not an LMDB" in data_error(lmdb_keys, not_lmdb, names=not_lmdb)
    path = write_lsun(tmp_path, "kitchen_train", n=2)
    assert "b'nope'" in data_error(lmdb_read, path, [b"nope"], names=path)


# ---------------------------------------------------------------- the writers themselves


def test_image_folder_formats_and_modes(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, n=8, size=(24, 18))
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) == 8 and {p.parent for p in files} == {
        root,
        root / "sub",
        root / "sub/deeper",
    }
    seen = set()
    for path, (fmt, mode) in zip(sorted(files, key=lambda p: p.name), image_specs(8), strict=True):
        with Image.open(path) as image:
            assert path.suffix == f".{fmt}" and image.mode == mode and image.size == (24, 18)
            seen.add((fmt, image.mode))
    want = {("png", "RGBA"), ("gif", "P"), ("png", "L"), ("png", "I;16"), ("jpg", "CMYK")}
    assert want <= seen and {f for f, _ in seen} == set(IMAGE_FORMATS)


def test_image_zip_has_macos_junk(tmp_path: Path) -> None:
    path = write_image_zip(tmp_path / "faces.zip", n=6)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        real = [n for n in names if not n.endswith("/") and n not in ZIP_JUNK]
        assert len(real) == 6 and any("/" in n for n in real)
        assert "__MACOSX/._img_000.png" in names and ".DS_Store" in names
        for name in real:
            Image.open(io.BytesIO(zf.read(name))).load()


@pytest.mark.parametrize("as_zip", [False, True])
def test_celeba_layout(tmp_path: Path, as_zip: bool) -> None:
    path = write_celeba(tmp_path, n=3, as_zip=as_zip)
    if as_zip:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".jpg")]
            first = zf.read(names[0])
    else:
        names = sorted(p.name for p in path.iterdir())
        first = (path / names[0]).read_bytes()
    assert path.name.startswith("img_align_celeba")
    assert [n.rsplit("/", 1)[-1] for n in names] == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert Image.open(io.BytesIO(first)).size == (178, 218)


def test_written_idx_is_byte_exact(tmp_path: Path) -> None:
    images = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    path = write_idx(tmp_path, "train", images, np.array([1, 2, 3], np.uint8), gz=True)
    raw = gzip.decompress(path.read_bytes())
    assert raw == b"\x00\x00\x08\x03" + b"\x00\x00\x00\x03\x00\x00\x00\x02\x00\x00\x00\x02" + bytes(
        range(12)
    )
    with tarfile.open(write_cifar(tmp_path, "cifar10")) as tar:
        assert "cifar-10-batches-py/batches.meta" in tar.getnames()


# ---------------------------------------------------------------- headers that lie


def _npy_bomb(shape: tuple[int, ...]) -> bytes:
    """An .npy whose header declares `shape` of uint8 but that holds no data."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(  # the magic bytes and the header, no data
        out, {"descr": "|u1", "fortran_order": False, "shape": shape}
    )
    return out.getvalue()


@pytest.mark.parametrize("bare", [False, True])
def test_an_npz_header_declaring_terabytes_is_refused_unread(tmp_path: Path, bare: bool) -> None:
    path = tmp_path / ("x.npy" if bare else "x.npz")
    if bare:
        path.write_bytes(_npy_bomb((10**12, 28, 28)))
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("images.npy", _npy_bomb((10**12, 28, 28)))
    assert path.stat().st_size < 500
    with pytest.raises(DataError, match=r"declares 784000\.0 GB of data, but the file holds"):
        read_npz(path)


def test_an_hdf5_declaring_ten_million_unwritten_images_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", shape=(10**7, 28, 28), dtype="u1")  # never written
    assert path.stat().st_size < 4096
    with pytest.raises(DataError, match=r"x\.h5 \(images\): its header declares 7\.8 GB"):
        read_hdf5(path)


def test_a_gzip_idx_that_would_inflate_to_gigabytes_is_refused_first(tmp_path: Path) -> None:
    header = (0x00000803).to_bytes(4, "big") + b"".join(
        n.to_bytes(4, "big") for n in (2_700_000, 28, 28)
    )
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + bytes(1 << 20)))  # 1 MB of the 2.1 GB it declares
    with pytest.raises(DataError, match=r"declares 2\.1 GB of data, but the file holds"):
        read_idx(path)


def test_a_zip_member_that_inflates_past_a_pictures_size_is_skipped(tmp_path: Path) -> None:
    from dcgan.data import decode

    path = tmp_path / "pics.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.png", bytes(decode.MAX_FILE_BYTES + 1))
        zf.writestr("ok.png", b"\x89PNG")
    assert path.stat().st_size < decode.MAX_FILE_BYTES // 100
    with pytest.raises(ValueError, match="more than a picture's"):
        decode.read_bytes("zip", str(path), "bomb.png")
    assert decode.read_bytes("zip", str(path), "ok.png") == b"\x89PNG"


def test_a_class_label_of_two_billion_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, images=np.zeros((2, 8, 8), np.uint8), labels=np.array([0, 2 * 10**9]))
    with pytest.raises(DataError, match="class label 2000000000 is beyond the 100000 classes"):
        containers.read_npz_labels(path)
