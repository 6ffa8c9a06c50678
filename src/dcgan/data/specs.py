"""One spec per dataset name: what it is, the files it has and how to get them.

This is the one module that writes a dataset's file names. The catalogue's finders, the
readers (`official`), the label readers (`labels`) and `dcgan download` read them from here,
so adding a dataset means adding its spec below and a finder in `catalogue.FINDERS`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    """One official file: its local name, the mirrors that serve it (tried in order) and its
    checksum as "md5:<hex>" or "sha256:<hex>". `optional` files are only fetched when named
    in `download(files=...)`."""

    name: str
    urls: tuple[str, ...]
    known_hash: str
    optional: bool = False


@dataclass(frozen=True)
class Spec:
    """A dataset name's entry.

    expects: the files, as the error for missing ones and `dcgan datasets` show them.
    has_splits: the files hold an official test split (`--split test|all`).
    labels: "always" (the files carry class labels), "maybe" (when the user's files do) or
        "never".
    remote: the files `dcgan download` fetches, verified by checksum.
    manual: for sets no script can fetch, how to get them by hand (`{root}` is filled in).
    """

    name: str
    summary: str
    expects: str
    has_splits: bool = False
    labels: str = "never"
    remote: tuple[RemoteFile, ...] = ()
    manual: str = ""

    @property
    def downloadable(self) -> bool:
        return bool(self.remote)


def _mirrored(name: str, known_hash: str, *bases: str, optional: bool = False) -> RemoteFile:
    """A RemoteFile served as `base + name` from each base URL."""
    return RemoteFile(name, tuple(base + name for base in bases), known_hash, optional)


# ---------------------------------------------------------------------------- IDX (MNIST)

IDX_PREFIX = {"train": "train", "test": "t10k"}  # a split's file-name prefix
IDX_DIRS = {"mnist": "MNIST/raw", "fashion-mnist": "FashionMNIST/raw"}  # torchvision's layout


def idx_names(prefix: str, kind: str) -> tuple[str, ...]:
    """The names an IDX file of `kind` ("images" or "labels") goes by, most usual first:
    `{prefix}-{kind}-idx{3|1}-ubyte`, gzipped or not, also with the dot some unzip tools
    leave (`{prefix}-{kind}.idx3-ubyte`)."""
    rank = 3 if kind == "images" else 1
    stems = (f"{prefix}-{kind}-idx{rank}-ubyte", f"{prefix}-{kind}.idx{rank}-ubyte")
    return tuple(stem + suffix for stem in stems for suffix in (".gz", ""))


def _idx_remote(sums: tuple[str, str, str, str], *bases: str) -> tuple[RemoteFile, ...]:
    """The four official gzipped IDX files (train images, labels; test images, labels)."""
    names = [idx_names(p, kind)[0] for p in IDX_PREFIX.values() for kind in ("images", "labels")]
    return tuple(_mirrored(n, f"md5:{s}", *bases) for n, s in zip(names, sums, strict=True))


# ---------------------------------------------------------------------------- SVHN

SVHN_EXTRA = "extra"  # the 531k extra training digits, read with --split all when present


def svhn_name(part: str) -> str:
    """The official file of SVHN part "train", "test" or "extra"."""
    return f"{part}_32x32.mat"


# ---------------------------------------------------------------------------- CIFAR

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR = {
    "cifar10": {
        "archive": "cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
        "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test": ("test_batch",),
        "labels": (b"labels", 10),  # the batch key of the class labels, and the class count
        "meta": ("batches.meta", b"label_names"),  # the file naming the classes, and its key
    },
    "cifar100": {
        "archive": "cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
        "train": ("train",),
        "test": ("test",),
        "labels": (b"fine_labels", 100),
        "meta": ("meta", b"fine_label_names"),
    },
}


def _cifar_expects(variant: str) -> str:
    return f"{CIFAR[variant]['archive']} or {CIFAR[variant]['folder']}/"


# ---------------------------------------------------------------------------- the rest

CELEBA_SOURCES = ("img_align_celeba", "img_align_celeba.zip")  # the folder, or its zip
LSUN_DB = "data.mdb"


def lsun_dir(name: str) -> str:
    """The LMDB directory of LSUN class `name` (e.g. bedroom_train)."""
    return f"{name}_lmdb"


HDF5_NAMES = ("data.hy", "data.h5", "data.hdf5")
HDF5_SUFFIXES = (".hy", ".h5", ".hdf5")
HDF5_IDS = "id.txt"
NPZ_SUFFIXES = (".npz", ".npy")

_MNIST = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_SVHN = ("http://ufldl.stanford.edu/housenumbers/",)
_CIFAR = ("https://www.cs.toronto.edu/~kriz/",)
_IDX = "train-images-idx3-ubyte.gz (test: t10k-images-idx3-ubyte.gz; gzipped or not)"

_CELEBA_MANUAL = """\
CelebA cannot be downloaded by dcgan (Google Drive rate-limits scripted downloads).
1. Open the official page https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and follow
   "Align&Cropped Images" to the Google Drive folder; download Img/img_align_celeba.zip (1.4 GB).
2. Put it at {root}/celeba/img_align_celeba.zip, or unzip it so that the folder
   {root}/celeba/img_align_celeba/ holds the 202,599 aligned 178x218 JPEGs
   (000001.jpg ... 202599.jpg).
Expected layout:
  {root}/celeba/img_align_celeba.zip   or   {root}/celeba/img_align_celeba/000001.jpg ..."""

_LSUN_MANUAL = """\
LSUN cannot be downloaded by dcgan (gigabytes per category; bedroom alone is over 40 GB).
1. Get the official downloader: git clone https://github.com/fyu/lsun
2. Download a category, e.g.: python lsun/download.py -c bedroom
   (it fetches bedroom_train_lmdb.zip and bedroom_val_lmdb.zip).
3. Unzip into {root}/lsun/ so that {root}/lsun/bedroom_train_lmdb/data.mdb exists.
Expected layout: one <category>_<split>_lmdb directory per class, each holding data.mdb:
  {root}/lsun/bedroom_train_lmdb/data.mdb
  {root}/lsun/bedroom_val_lmdb/data.mdb"""

# Checksums as published in torchvision's dataset classes for the same files.
SPECS: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec(
            "mnist",
            "handwritten digits, 60k+10k 28x28 grey",
            _IDX,
            has_splits=True,
            labels="always",
            remote=_idx_remote(
                (
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "9fb629c4189551a2d022fa330f9573f3",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                ),
                *_MNIST,
            ),
        ),
        Spec(
            "fashion-mnist",
            "clothing, 60k+10k 28x28 grey",
            _IDX,
            has_splits=True,
            labels="always",
            remote=_idx_remote(
                (
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                ),
                *_FASHION,
            ),
        ),
        Spec(
            "cifar10",
            "10 classes, 50k+10k 32x32 colour",
            _cifar_expects("cifar10"),
            has_splits=True,
            labels="always",
            remote=(
                _mirrored(
                    CIFAR["cifar10"]["archive"], "md5:c58f30108f718f92721af3b95e74349a", *_CIFAR
                ),
            ),
        ),
        Spec(
            "cifar100",
            "100 classes, 50k+10k 32x32 colour",
            _cifar_expects("cifar100"),
            has_splits=True,
            labels="always",
            remote=(
                _mirrored(
                    CIFAR["cifar100"]["archive"], "md5:eb9058c3a382ffc7106e4002c42a8d85", *_CIFAR
                ),
            ),
        ),
        Spec(
            "svhn",
            "house numbers, 73k+26k (+531k extra) 32x32 colour",
            f"{svhn_name('train')}, {svhn_name('test')} "
            f"({svhn_name(SVHN_EXTRA)} joins --split all)",
            has_splits=True,
            labels="always",
            remote=(
                _mirrored(svhn_name("train"), "md5:e26dedcc434d2e4c54c9b2d4a06d8373", *_SVHN),
                _mirrored(svhn_name("test"), "md5:eb5a983be6a315427106f1b164d9cef3", *_SVHN),
                # 1.3 GB of extra training digits: only on request, e.g. files=["extra_32x32.mat"].
                _mirrored(
                    svhn_name(SVHN_EXTRA),
                    "md5:a93ce644f1a588dc4d68dda5feec44a7",
                    *_SVHN,
                    optional=True,
                ),
            ),
        ),
        Spec(
            "celeba",
            "202k aligned faces, 108x108 centre crop",
            f"{CELEBA_SOURCES[0]}/ or {CELEBA_SOURCES[1]}",
            manual=_CELEBA_MANUAL,
        ),
        Spec(
            "lsun",
            "scenes from LMDB (--lsun-classes)",
            f"<class>_lmdb/ directories holding {LSUN_DB}, e.g. {lsun_dir('bedroom_train')}/",
            manual=_LSUN_MANUAL,
        ),
        Spec(
            "folder",
            "any tree of images or a .zip (jpg png bmp webp gif tiff)",
            "--data-root pointing at the folder or .zip",
            labels="maybe",
        ),
        Spec(
            "hdf5",
            "HDF5: per-id `image` entries + id.txt, or an `images` array",
            f"--data-root pointing at {HDF5_NAMES[0]} ({HDF5_IDS} beside it) or a file with "
            "`images`",
            labels="maybe",
        ),
        Spec(
            "npz",
            "NumPy images [N, H, W(, C)], uint8 or float",
            "--data-root pointing at a .npz or .npy file",
            labels="maybe",
        ),
    )
}
