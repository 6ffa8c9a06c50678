"""Writers of tiny dataset files in the exact on-disk formats of their official sources.

Each writer takes or draws uint8 pixels and returns the path it wrote. Pixel content that a
writer draws itself comes from `random_pixels` (or `cifar_images`, `lsun_items`) with the same
seed, so a test can rebuild exactly what was written and compare.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_FORMATS = ("png", "jpg", "bmp", "webp", "gif", "tiff")

# (format, Pillow mode) of the i-th image of write_image_folder / write_image_zip, cycled.
# The first six cover every default format and the awkward modes (16-bit grey, CMYK, palette,
# alpha, grey); the first eight also hold the RGBA and grey PNGs.
IMAGE_SPECS = (
    ("png", "I;16"),
    ("jpg", "CMYK"),
    ("gif", "P"),
    ("webp", "RGBA"),
    ("tiff", "L"),
    ("bmp", "RGB"),
    ("png", "RGBA"),
    ("png", "L"),
    ("jpg", "L"),
    ("webp", "RGB"),
    ("tiff", "RGB"),
    ("png", "P"),
    ("png", "LA"),
    ("bmp", "L"),
)
SUBFOLDERS = ("", "sub", "sub/deeper")

# Label names of the meta files, space-separated.
CIFAR10_LABELS = "airplane automobile bird cat deer dog frog horse ship truck"
CIFAR100_COARSE = """aquatic_mammals fish flowers food_containers fruit_and_vegetables
household_electrical_devices household_furniture insects large_carnivores
large_man-made_outdoor_things large_natural_outdoor_scenes large_omnivores_and_herbivores
medium_mammals non-insect_invertebrates people reptiles small_mammals trees vehicles_1
vehicles_2"""
CIFAR100_FINE = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy
bridge bus butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach
couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail
snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger
tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"""

CIFAR = {
    "cifar10": {
        "archive": "cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
        "batches": (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"),
        "extras": {"readme.html": b"<html><body>CIFAR-10</body></html>\n"},
    },
    "cifar100": {
        "archive": "cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
        "batches": ("train", "test"),
        "extras": {"file.txt~": b""},
    },
}


def random_pixels(
    n: int, height: int, width: int, channels: int | None = 3, seed: int = 0
) -> np.ndarray:
    """uint8 (n, height, width, channels), or (n, height, width) when channels is None."""
    shape = (n, height, width) if channels is None else (n, height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# ---------------------------------------------------------------- MNIST IDX


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 0x0000080<ndim>, big-endian dims, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(
    directory: str | Path,
    prefix: str,
    images: np.ndarray,
    labels: np.ndarray,
    gz: bool = True,
) -> Path:
    """`{prefix}-images-idx3-ubyte[.gz]` and `{prefix}-labels-idx1-ubyte[.gz]` as MNIST ships them.

    prefix: "train" or "t10k"; images uint8 (N, H, W); labels uint8 (N,).
    Returns the images file's path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    out = {}
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        data = idx_bytes(array)
        out[kind] = directory / f"{prefix}-{kind}-ubyte{suffix}"
        out[kind].write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return out["images-idx3"]


# ---------------------------------------------------------------- CIFAR


class _Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle did for the CIFAR files: strings as BINSTRING (so they
    come back as bytes under encoding="bytes") and NumPy's reconstructor as numpy.core."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: str | bytes) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj: object, name: str | None = None) -> None:
        name = name or obj.__qualname__
        module = pickle.whichmodule(obj, name)
        if module.startswith("numpy._core"):
            module = "numpy.core" + module[len("numpy._core") :]
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    dispatch[type] = save_global


def py2_pickle(obj: object) -> bytes:
    """`obj` pickled with protocol 2 the way Python 2 wrote the official CIFAR batches."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def cifar_images(variant: str, n_per_batch: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """The pixels write_cifar stores, by batch file name: uint8 (n_per_batch, 32, 32, 3)."""
    rng = np.random.default_rng(seed)
    shape = (n_per_batch, 32, 32, 3)
    return {name: rng.integers(0, 256, shape, dtype=np.uint8) for name in CIFAR[variant]["batches"]}


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """(n, 32, 32, 3) HWC images as CIFAR's (n, 3072) rows: red plane, green, blue."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))


def _cifar_batch(variant: str, name: str, images: np.ndarray, index: int) -> dict:
    n = len(images)
    rng = np.random.default_rng(index)
    filenames = [f"{name}_{i:06d}.png".encode() for i in range(n)]
    if variant == "cifar10":
        train = name.startswith("data_batch")
        label = f"training batch {index + 1} of 5" if train else "testing batch 1 of 1"
        labels = {b"labels": [int(v) for v in rng.integers(0, 10, n)]}
    else:
        label = f"{'training' if name == 'train' else 'testing'} batch 1 of 1"
        fine = [int(v) for v in rng.integers(0, 100, n)]
        labels = {b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine]}
    return {
        b"batch_label": label.encode(),
        **labels,
        b"data": cifar_rows(images),
        b"filenames": filenames,
    }


def _cifar_meta(variant: str, n_per_batch: int) -> tuple[str, dict]:
    if variant == "cifar10":
        meta = {
            b"num_cases_per_batch": n_per_batch,
            b"label_names": [s.encode() for s in CIFAR10_LABELS.split()],
            b"num_vis": 3072,
        }
        return "batches.meta", meta
    meta = {
        b"fine_label_names": [s.encode() for s in CIFAR100_FINE.split()],
        b"coarse_label_names": [s.encode() for s in CIFAR100_COARSE.split()],
    }
    return "meta", meta


def cifar_files(variant: str, n_per_batch: int = 4, seed: int = 0) -> dict[str, bytes]:
    """Every file of the official CIFAR folder, by name, as the bytes write_cifar stores."""
    files = {}
    for index, (name, images) in enumerate(cifar_images(variant, n_per_batch, seed).items()):
        files[name] = py2_pickle(_cifar_batch(variant, name, images, index))
    meta_name, meta = _cifar_meta(variant, n_per_batch)
    files[meta_name] = py2_pickle(meta)
    return {**files, **CIFAR[variant]["extras"]}


def write_tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    """A .tar.gz holding `files` (member name -> content), written without touching disk."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_244_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


def write_cifar(
    directory: str | Path,
    variant: str,
    n_per_batch: int = 4,
    as_tarball: bool = True,
    seed: int = 0,
) -> Path:
    """The full official CIFAR-10 or CIFAR-100 python set with `n_per_batch` images a batch.

    variant "cifar10": cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta};
    "cifar100": cifar-100-python/{train, test, meta}. Pixels: `cifar_images(...)`.
    Returns cifar-10-python.tar.gz / cifar-100-python.tar.gz, or the folder.
    """
    spec = CIFAR[variant]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = cifar_files(variant, n_per_batch, seed)
    if as_tarball:
        members = {f"{spec['folder']}/{name}": data for name, data in files.items()}
        return write_tar_gz(directory / spec["archive"], members)
    folder = directory / spec["folder"]
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


# ---------------------------------------------------------------- SVHN


def write_svhn(directory: str | Path, split: str, n: int = 6, seed: int = 0) -> Path:
    """`{split}_32x32.mat` (MATLAB v5) with X uint8 (32, 32, 3, n) and y uint8 (n, 1) in 1..10.

    Pixels: random_pixels(n, 32, 32, 3, seed), stored image-last as SVHN does.
    """
    import scipy.io

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    images = random_pixels(n, 32, 32, 3, seed)
    labels = np.random.default_rng(seed + 1).integers(1, 11, (n, 1), dtype=np.uint8)
    path = directory / f"{split}_32x32.mat"
    x = np.ascontiguousarray(images.transpose(1, 2, 3, 0))
    scipy.io.savemat(path, {"X": x, "y": labels}, format="5")
    return path


# ---------------------------------------------------------------- LSUN


def encode_image(array: np.ndarray, fmt: str) -> bytes:
    """uint8 (H, W, 3) or (H, W) pixels encoded as `fmt` ("webp", "jpeg", "png", ...)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt.upper(), quality=90)
    return buf.getvalue()


def lsun_items(
    n: int = 6, size: tuple[int, int] = (40, 30), fmt: str = "webp", seed: int = 0
) -> list[tuple[bytes, bytes]]:
    """(key, encoded image) pairs that write_lsun stores: 40-hex-char keys, (w, h) = size."""
    width, height = size
    images = random_pixels(n, height, width, 3, seed)
    keys = [hashlib.sha1(f"{seed}:{i}".encode()).hexdigest().encode() for i in range(n)]
    return [(key, encode_image(image, fmt)) for key, image in zip(keys, images, strict=True)]


def write_lsun(
    directory: str | Path,
    category: str,
    n: int = 6,
    size: tuple[int, int] = (40, 30),
    fmt: str = "webp",
    seed: int = 0,
) -> Path:
    """`{category}_lmdb/` (data.mdb + lock.mdb) holding `lsun_items(n, size, fmt, seed)`."""
    import lmdb

    path = Path(directory) / f"{category}_lmdb"
    items = lsun_items(n, size, fmt, seed)
    map_size = max(1 << 22, 4 * sum(len(v) for _, v in items))
    env = lmdb.open(str(path), map_size=map_size)
    with env.begin(write=True) as txn:
        for key, value in items:
            txn.put(key, value)
    env.close()
    return path


# ---------------------------------------------------------------- HDF5


def write_hdf5(
    directory: str | Path,
    n: int = 5,
    layout: str = "ids",
    size: tuple[int, int] = (20, 20),
    channels: int | None = 3,
    seed: int = 0,
) -> Path:
    """An HDF5 file of random_pixels(n, h, w, channels, seed), with (w, h) = size.

    layout "ids": `data.hy` with one group per id "0".."n-1" holding `image` [h, w, c] and a
    one-hot `label`, plus `id.txt` listing the ids; "plain": `images.h5` with a dataset
    `images` (N, H, W, C). Returns the HDF5 file's path.
    """
    import h5py

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    width, height = size
    images = random_pixels(n, height, width, channels, seed)
    if layout == "plain":
        path = directory / "images.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("images", data=images)
        return path
    if layout != "ids":
        raise ValueError(f"layout must be 'ids' or 'plain', not {layout!r}")
    path = directory / "data.hy"
    with h5py.File(path, "w") as f:
        for i, image in enumerate(images):
            group = f.create_group(str(i))
            group["image"] = image
            group["label"] = np.eye(10, dtype=np.float32)[i % 10]
    (directory / "id.txt").write_text("".join(f"{i}\n" for i in range(n)))
    return path


# ---------------------------------------------------------------- NumPy


def write_npz(
    path: str | Path,
    n: int = 6,
    size: tuple[int, int] = (20, 20),
    channels: int | None = None,
    dtype: str = "uint8",
    seed: int = 0,
) -> Path:
    """random_pixels(n, h, w, channels, seed) under key `images` ((w, h) = size); a path ending
    in .npy gets a bare array. dtype "float32" stores pixels / 255, so values lie in [0, 1]."""
    path = Path(path)
    width, height = size
    images = random_pixels(n, height, width, channels, seed)
    array = images if dtype == "uint8" else (images / 255.0).astype(dtype)
    if path.suffix == ".npy":
        np.save(path, array)
    else:
        np.savez(path, images=array)
    return path


# ---------------------------------------------------------------- image files


def _image_in_mode(rng: np.random.Generator, mode: str, width: int, height: int) -> Image.Image:
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if mode == "I;16":
        # Full 16-bit range: a reader that clips instead of scaling shows up as near-white.
        grey16 = rng.integers(0, 65536, (height, width), dtype=np.uint16)
        return Image.fromarray(grey16)
    if mode in ("RGBA", "LA"):
        alpha = rng.integers(0, 256, (height, width, 1), dtype=np.uint8)
        base = rgb if mode == "RGBA" else rgb[..., :1]
        return Image.fromarray(np.concatenate([base, alpha], axis=2))
    if mode == "P":
        return Image.fromarray(rgb).quantize(colors=32)
    return Image.fromarray(rgb).convert(mode)


def image_specs(n: int, formats: tuple[str, ...] = IMAGE_FORMATS) -> list[tuple[str, str]]:
    """(format, mode) of each of the n images write_image_folder writes for `formats`."""
    specs = [spec for spec in IMAGE_SPECS if spec[0] in formats]
    specs += [(fmt, "RGB") for fmt in formats if fmt not in {s[0] for s in IMAGE_SPECS}]
    return [specs[i % len(specs)] for i in range(n)]


def image_files(
    n: int = 6,
    formats: tuple[str, ...] = IMAGE_FORMATS,
    size: tuple[int, int] = (24, 18),
    nested: bool = True,
    seed: int = 0,
) -> dict[str, bytes]:
    """Relative path -> encoded bytes of the images write_image_folder writes."""
    rng = np.random.default_rng(seed)
    files = {}
    for i, (fmt, mode) in enumerate(image_specs(n, formats)):
        image = _image_in_mode(rng, mode, *size)
        buf = io.BytesIO()
        image.save(buf, format=Image.registered_extensions()[f".{fmt}"])
        folder = SUBFOLDERS[i % len(SUBFOLDERS)] if nested else ""
        files[f"{folder}/img_{i:03d}.{fmt}".lstrip("/")] = buf.getvalue()
    return files


def write_image_folder(
    directory: str | Path,
    n: int = 6,
    formats: tuple[str, ...] = IMAGE_FORMATS,
    size: tuple[int, int] = (24, 18),
    nested: bool = True,
    seed: int = 0,
) -> Path:
    """n images of size (w, h) in mixed formats and Pillow modes (see IMAGE_SPECS), spread over
    `directory`, `sub/` and `sub/deeper/` when nested. Returns the directory."""
    directory = Path(directory)
    for name, data in image_files(n, formats, size, nested, seed).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return directory


# macOS Finder's "Compress" adds these beside the real files; readers must skip them.
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(58)
ZIP_JUNK = {
    "__MACOSX/._img_000.png": APPLEDOUBLE,
    "__MACOSX/sub/._img_001.jpg": APPLEDOUBLE,
    ".DS_Store": b"\x00\x00\x00\x01Bud1" + bytes(24),
    "sub/.DS_Store": b"\x00\x00\x00\x01Bud1" + bytes(24),
}


def write_image_zip(path: str | Path, n: int = 6, seed: int = 0) -> Path:
    """A .zip of `image_files(n, seed=seed)` (some under `sub/`, `sub/deeper/`) as macOS makes
    it: with directory entries, `__MACOSX/._*` AppleDouble files (named like images but not
    decodable) and `.DS_Store` files. A reader must skip `__MACOSX/`, dot-files and directory
    entries and find exactly n images."""
    path = Path(path)
    files = image_files(n, seed=seed)
    folders = sorted({name.rsplit("/", 1)[0] + "/" for name in files if "/" in name})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder in folders:
            zf.writestr(folder, b"")
        for name, data in {**files, **ZIP_JUNK}.items():
            zf.writestr(name, data)
    return path


# ---------------------------------------------------------------- CelebA

CELEBA_SIZE = (178, 218)  # (w, h) of the aligned-and-cropped images


def write_celeba(directory: str | Path, n: int = 4, as_zip: bool = False, seed: int = 0) -> Path:
    """`img_align_celeba/000001.jpg`... (178 x 218 JPEGs) or `img_align_celeba.zip` holding
    that folder, as the official Google Drive download does. Returns the folder or the zip."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    width, height = CELEBA_SIZE
    images = random_pixels(n, height, width, 3, seed)
    files = {
        f"img_align_celeba/{i + 1:06d}.jpg": encode_image(im, "jpeg") for i, im in enumerate(images)
    }
    if as_zip:
        path = directory / "img_align_celeba.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("img_align_celeba/", b"")
            for name, data in files.items():
                zf.writestr(name, data)
        return path
    for name, data in files.items():
        (directory / name).parent.mkdir(exist_ok=True)
        (directory / name).write_bytes(data)
    return directory / "img_align_celeba"


# ---------------------------------------------------------------- labelled folders


def write_class_folder(
    directory: str | Path, classes: dict[str, int], damaged: tuple[str, ...] = ()
) -> Path:
    """A folder of one sub-folder per class: `classes[name]` solid grey 24x18 PNGs each, whose
    grey level is 20 * (the class's index in sorted order) + 3 * (image number), so a decoded
    pixel names its class. `damaged`: relative paths written as bytes no decoder reads."""
    directory = Path(directory)
    for index, name in enumerate(sorted(classes)):
        (directory / name).mkdir(parents=True, exist_ok=True)
        for i in range(classes[name]):
            grey = np.full((18, 24), 20 * index + 3 * i, np.uint8)
            Image.fromarray(grey).save(directory / name / f"img_{i:02d}.png")
    for rel in damaged:
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_bytes(b"\x89PNG but truncated")
    return directory
