"""Every kind of file dcgan reads, damaged every way below, through the command that reads it.

A good file of each kind comes from a tiny run (or tiny dataset), made once. Each damage then
replaces that file in a fresh copy: cut short at four points, one bit flipped at six places
(near the start, near the end, four at random), replaced by an empty file, a line of text,
random bytes or a valid file of another format, and for zip formats two zip bombs (a record
claiming 4 GB the file does not hold, and 64 MB of zeros deflated into 64 KB). Each command runs
in-process and must end in exit 2 with exactly one line on stderr, or in a correct recovery: the
same images, weights or statistics the good file gives. Never a traceback, a hang or a wrong
result. Everything is seeded; each file kind takes seconds.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import json
import random
import shutil
import signal
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import datafiles
from conftest import PixelFeatures, tiny_flags
from dcgan.cli import main
from dcgan.config import RESUMABLE_FIELDS, diff, to_dict
from dcgan.evaluation import features
from dcgan.run.checkpoint import load_checkpoint
from dcgan.run.rundir import latest_checkpoint, read_config

# 232 cases, over a minute: in `make test` and CI, not in the `make test-fast` loop.
pytestmark = pytest.mark.slow

SEED = 19
TIME_LIMIT_S = 60  # per command: a hang fails the test instead of stalling the suite

CUTS = ("cut to 1 byte", "cut to a third", "cut to half", "cut by the last byte")
FLIPS = ("bit flip near the start", "bit flip near the end")
FLIPS += tuple(f"bit flip at random offset {i}" for i in range(4))
JUNK = ("empty file", "a line of text", "random bytes", "another valid format")
BOMBS = ("zip bomb: a record claiming 4 GB", "zip bomb: 64 MB deflated")
DAMAGES = CUTS + FLIPS + JUNK
ZIP_DAMAGES = DAMAGES + BOMBS


def damaged(damage: str, data: bytes, other: bytes, names: tuple[str, ...] = ("x",)) -> bytes:
    """`data` with `damage` done to it; the same bytes for the same damage and data."""
    rng = random.Random(f"{SEED}:{damage}:{len(data)}")
    n = len(data)
    cuts = dict(zip(CUTS, (1, n // 3, n // 2, n - 1), strict=True))
    if damage in cuts:
        return data[: cuts[damage]]
    if damage in FLIPS:
        near = min(n, 64)
        where = {FLIPS[0]: rng.randrange(near), FLIPS[1]: n - 1 - rng.randrange(near)}
        flipped = bytearray(data)
        flipped[where.get(damage, rng.randrange(n))] ^= 1 << rng.randrange(8)
        return bytes(flipped)
    if damage == BOMBS[0]:
        return claiming_zip(names)
    if damage == BOMBS[1]:
        return deflate_bomb(names[0])
    return {
        "empty file": b"",
        "a line of text": b"this is not the file dcgan wrote here\n",
        "random bytes": rng.randbytes(max(64, n // 2)),
        "another valid format": other,
    }[damage]


def claiming_zip(names: tuple[str, ...]) -> bytes:
    """A zip of small stored records whose headers claim 4 GB each."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in names:
            archive.writestr(name, b"\x93NUMPY" + bytes(58))
    data = bytearray(buffer.getvalue())
    huge = struct.pack("<II", 0xFFFF0000, 0xFFFF0000)
    for signature, offset in ((b"PK\x03\x04", 18), (b"PK\x01\x02", 20)):
        start = data.find(signature)
        while start != -1:
            data[start + offset : start + offset + 8] = huge
            start = data.find(signature, start + 4)
    return bytes(data)


@functools.cache
def deflate_bomb(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, bytes(64 << 20))
    return buffer.getvalue()


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def hung(*_):
        raise TimeoutError(f"the command ran over {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Outcome:
    code: int
    err: str


def call(argv: list) -> int:
    return main([str(a) for a in argv])


def run_cli(argv: list, capsys: pytest.CaptureFixture) -> Outcome:
    capsys.readouterr()
    with time_limit(TIME_LIMIT_S):
        code = call(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return Outcome(code, err)


def one_line_error(outcome: Outcome, command: str) -> None:
    lines = outcome.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dcgan {command}: error: "), outcome.err


# ---------------------------------------------------------------------------- the good files


@dataclass
class Good:
    """The good files (under `root`) and what the commands make of them."""

    root: Path
    images: dict[str, bytes]  # generate --num 4 --seed 3
    weights: dict[str, torch.Tensor]  # G after resuming the run to step 5
    resumed_config: object  # the run's config after that resume
    metrics: dict[str, float]  # evaluate against the run's reference
    stats: dict[str, np.ndarray]  # ref-stats of each dataset, by kind name
    ref_cache: Path  # the cached reference statistics of the run, under root

    @property
    def run(self) -> Path:
        return self.root / "run"


def pngs(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.png"))}


DATASETS = {  # kind -> (flags, the file damaged, whether the format checksums its bytes)
    "dataset .npz": (["--dataset", "npz", "--data-root", "data/images.npz"], "data/images.npz"),
    "dataset MNIST .gz": (
        ["--dataset", "mnist", "--data-root", "data/mnist"],
        "data/mnist/train-images-idx3-ubyte.gz",
    ),
    "dataset CIFAR-10 .tar.gz": (
        ["--dataset", "cifar10", "--data-root", "data/cifar"],
        "data/cifar/cifar-10-python.tar.gz",
    ),
    "dataset image folder": (
        ["--dataset", "folder", "--data-root", "data/folder"],
        "data/folder/img_000.png",
    ),
}
CHECKSUMMED = {"dataset .npz", "dataset MNIST .gz", "dataset CIFAR-10 .tar.gz"}


def write_datasets(root: Path) -> None:
    (root / "data").mkdir()
    datafiles.write_npz(root / "data" / "images.npz", n=12, size=(20, 20))
    digits = datafiles.random_pixels(12, 28, 28, None, seed=1)
    datafiles.write_idx(root / "data" / "mnist", "train", digits, np.arange(12, dtype=np.uint8))
    datafiles.write_cifar(root / "data" / "cifar", "cifar10", n_per_batch=3)
    datafiles.write_image_folder(root / "data" / "folder", n=6, formats=("png",), nested=False)


def ref_stats_argv(kind: str, root: Path, out: Path) -> list:
    flags = [root / a if a.startswith("data/") else a for a in DATASETS[kind][0]]
    return ["ref-stats", *flags, "--image-size", 16, "--num-real", 8, "--out", out]


def evaluate_argv(run: Path, *extra) -> list:
    return ["evaluate", run, "--num-samples", 64, "--num-real", 64, "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Good]:
    root = tmp_path_factory.mktemp("good")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(features, "InceptionFeatures", PixelFeatures)
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        mp.chdir(root)
        assert call(["train", *tiny_flags(root), "--deterministic"]) == 0
        shutil.move(root / "runs" / "00000-fake-16", root / "run")
        pristine = root / "pristine-run"
        shutil.copytree(root / "run", pristine)
        assert call(["generate", pristine, "--num", 4, "--seed", 3, "--out", root / "g"]) == 0
        assert call(["train", "--resume", pristine, "--steps", 5]) == 0
        weights = load_checkpoint(latest_checkpoint(pristine)).generator
        assert call(evaluate_argv(root / "run", "--json", root / "e.json")) == 0
        metrics = json.loads((root / "e.json").read_text())["metrics"]
        (ref_cache,) = (root / "xdg").rglob("ref-stats/*.npz")
        assert call(["ref-stats", "--dataset", "fake", "--image-size", 16, "--num-real", 64,
                     "--out", root / "ref.npz"]) == 0  # fmt: skip
        write_datasets(root)
        stats = {}
        for kind in DATASETS:
            assert call(ref_stats_argv(kind, root, root / "s.npz")) == 0
            stats[kind] = dict(np.load(root / "s.npz"))
        config = read_config(pristine)
        cache = ref_cache.relative_to(root)
        yield Good(root, pngs(root / "g"), weights, config, metrics, stats, cache)


@pytest.fixture
def work(good: Good, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the good files, the cache and the working directory in it, and Inception
    replaced by PixelFeatures."""
    shutil.copytree(good.root, tmp_path / "w", ignore=shutil.ignore_patterns("pristine-run"))
    monkeypatch.setattr(features, "InceptionFeatures", PixelFeatures)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "w" / "xdg"))
    monkeypatch.chdir(tmp_path / "w")
    return tmp_path / "w"


def damage_file(path: Path, damage: str, other: bytes, names: tuple[str, ...] = ("x",)) -> None:
    path.write_bytes(damaged(damage, path.read_bytes(), other, names))


PT_NAMES = ("archive/data.pkl", "archive/data/0")
NPZ_NAMES = ("feats.npy", "mu.npy", "sigma.npy", "identity.npy")


def npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, feats=np.zeros((2, 3)))
    return buffer.getvalue()


# ---------------------------------------------------------------------------- run files


@pytest.mark.parametrize("damage", ZIP_DAMAGES)
def test_checkpoint_read_by_generate(good: Good, work: Path, capsys, damage: str) -> None:
    path = work / "run" / "checkpoints" / "step-000004.pt"
    damage_file(path, damage, npz_bytes(), PT_NAMES)
    outcome = run_cli(["generate", path, "--num", 4, "--seed", 3, "--out", work / "o"], capsys)
    if outcome.code == 2:
        one_line_error(outcome, "generate")
    else:
        assert outcome.code == 0 and pngs(work / "o") == good.images


@pytest.mark.parametrize("damage", ZIP_DAMAGES)
def test_latest_checkpoint_read_by_resume(good: Good, work: Path, capsys, damage: str) -> None:
    run = work / "run"
    damage_file(latest_checkpoint(run), damage, npz_bytes(), PT_NAMES)
    outcome = run_cli(["train", "--resume", run, "--steps", 5], capsys)
    assert outcome.code == 0, outcome.err  # step-000004.pt holds the same step
    resumed = load_checkpoint(latest_checkpoint(run)).generator
    assert all(torch.equal(resumed[k], v) for k, v in good.weights.items())


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", ["generator.safetensors", "generator.json"])
def test_export_read_by_generate(good: Good, work: Path, capsys, name: str, damage: str) -> None:
    other = {"generator.json": b"[1, 2, 3]\n"}.get(name, (work / "run/checkpoints/latest.pt"))
    other = other if isinstance(other, bytes) else other.read_bytes()
    damage_file(work / "run" / name, damage, other)
    source = work / "run" / "generator.safetensors"
    outcome = run_cli(["generate", source, "--num", 4, "--seed", 3, "--out", work / "o"], capsys)
    if outcome.code == 2:
        one_line_error(outcome, "generate")
    else:
        assert outcome.code == 0 and pngs(work / "o") == good.images
    # from the run directory, the checkpoint stands in for a damaged export
    outcome = run_cli(["generate", work / "run", "--num", 4, "--seed", 3, "--out", "p"], capsys)
    assert outcome.code == 0 and pngs(work / "p") == good.images, outcome.err


def other_config(work: Path) -> bytes:
    """A valid config of another run: JSON is YAML too."""
    cfg = to_dict(read_config(work / "run"))
    cfg["train"]["lr"] = 0.001
    return json.dumps(cfg).encode()


@pytest.mark.parametrize("damage", DAMAGES)
def test_config_yaml_read_by_resume(good: Good, work: Path, capsys, damage: str) -> None:
    run = work / "run"
    damage_file(run / "config.yaml", damage, other_config(work))
    outcome = run_cli(["train", "--resume", run, "--steps", 5], capsys)
    if outcome.code == 2:
        one_line_error(outcome, "train")
        return
    assert outcome.code == 0
    changed = [k for k, _, _ in diff(good.resumed_config, read_config(run)) if k != "output.out"]
    # a damaged value that is still valid can only be one a resume may change (an edit, as far
    # as anyone can tell); any other is refused or repaired from the checkpoint's copy
    assert all(k.split(".")[1] in RESUMABLE_FIELDS for k in changed), changed
    if not changed:
        resumed = load_checkpoint(latest_checkpoint(run)).generator
        assert all(torch.equal(resumed[k], v) for k, v in good.weights.items())


@pytest.mark.parametrize("damage", DAMAGES)
def test_stats_jsonl_read_by_resume(good: Good, work: Path, capsys, damage: str) -> None:
    run = work / "run"
    damage_file(run / "stats.jsonl", damage, b'{"a": 1}\n{"b": 2}\n')
    outcome = run_cli(["train", "--resume", run, "--steps", 5], capsys)
    if outcome.code == 2:
        one_line_error(outcome, "train")
        assert "stats.jsonl" in outcome.err
    else:
        assert outcome.code == 0
        resumed = load_checkpoint(latest_checkpoint(run)).generator
        assert all(torch.equal(resumed[k], v) for k, v in good.weights.items())


# Valid JSON that is not a stats record: each value where the first record's numbers belong.
HOSTILE_VALUES = {
    "a 400-digit integer": 10**400,
    "a word": "x",
    "null": None,
    "a list": [1.0, 2.0],
    "an object": {"loss": 1.0},
    "true": True,
    "a 100 KB string": "x" * 100_000,
}


@pytest.mark.parametrize("value", list(HOSTILE_VALUES))
@pytest.mark.parametrize("field", ["loss_d", "images_seen", "step"])
def test_hostile_stats_values_read_by_every_command(
    good: Good, work: Path, capsys, tmp_path: Path, field: str, value: str
) -> None:
    """runs, report, export and resume each skip the record, name it, and go on."""
    run = work / "run"
    lines = (run / "stats.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record[field] = HOSTILE_VALUES[value]
    (run / "stats.jsonl").write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    export = tmp_path / "g.safetensors"
    assert run_cli(["runs", work], capsys).code == 0  # the problem listed under the table
    for argv in (
        ["report", run, "--out", tmp_path / "r.html"],
        ["export", run, "--format", "safetensors", "--out", export],
        ["train", "--resume", run, "--steps", 5],
    ):
        outcome = run_cli(argv, capsys)
        assert outcome.code == 0, (argv, outcome.err)
        assert "stats.jsonl: line 1 skipped" in outcome.err, (argv, outcome.err)
        assert max(map(len, outcome.err.splitlines())) < 400
    resumed = load_checkpoint(latest_checkpoint(run)).generator
    assert all(torch.equal(resumed[k], v) for k, v in good.weights.items())


@pytest.mark.parametrize("damage", DAMAGES)
def test_preview_grid_read_into_progress_gif(good: Good, work: Path, capsys, damage: str) -> None:
    run = work / "run"
    damage_file(run / "samples" / "step-000002.png", damage, b"GIF89a" + bytes(20))
    outcome = run_cli(["train", "--resume", run, "--steps", 5], capsys)
    assert outcome.code == 0 and (run / "progress.gif").stat().st_size > 0, outcome.err
    resumed = load_checkpoint(latest_checkpoint(run)).generator
    assert all(torch.equal(resumed[k], v) for k, v in good.weights.items())


@pytest.mark.parametrize("damage", DAMAGES)
def test_metrics_jsonl_appended_by_evaluate(good: Good, work: Path, capsys, damage: str) -> None:
    path = work / "run" / "metrics.jsonl"
    damage_file(path, damage, b'{"a": 1}\n')
    assert run_cli(evaluate_argv(work / "run"), capsys).code == 0
    last = json.loads(path.read_bytes().splitlines()[-1])  # on a line of its own
    assert last["command"] == "evaluate" and last["metrics"] == good.metrics


# ---------------------------------------------------------------------------- evaluation files


@pytest.mark.parametrize("damage", ZIP_DAMAGES)
def test_reference_statistics_read_by_evaluate(good: Good, work: Path, capsys, damage) -> None:
    path = work / "ref.npz"
    damage_file(path, damage, (work / "run/generator.safetensors").read_bytes(), NPZ_NAMES)
    outcome = run_cli(evaluate_argv(work / "run", "--ref-stats", path), capsys)
    if outcome.code == 2:
        one_line_error(outcome, "evaluate")
    else:
        assert outcome.code == 0
        logged = json.loads((work / "run/metrics.jsonl").read_text().splitlines()[-1])
        assert logged["metrics"] == good.metrics


@pytest.mark.parametrize("damage", ZIP_DAMAGES)
def test_cached_reference_statistics_are_computed_again(
    good: Good, work: Path, capsys, damage: str
) -> None:
    path = work / good.ref_cache
    damage_file(path, damage, npz_bytes(), NPZ_NAMES)
    outcome = run_cli(evaluate_argv(work / "run"), capsys)
    assert outcome.code == 0, outcome.err
    logged = json.loads((work / "run/metrics.jsonl").read_text().splitlines()[-1])
    assert logged["metrics"] == good.metrics


# ---------------------------------------------------------------------------- data files


def decoded_caches(work: Path) -> list[Path]:
    return sorted((work / "xdg").rglob("npz-16px-*.npy"))


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("suffix", [".npy", ".json"])
def test_decoded_image_cache_is_decoded_again(
    good: Good, work: Path, capsys, suffix: str, damage: str
) -> None:
    (cache,) = decoded_caches(work)
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((12, 1, 16, 16), np.uint8))  # a valid cache of other images
    other = buffer.getvalue() if suffix == ".npy" else b'{"total": 12, "skipped": []}'
    damage_file(cache.with_suffix(suffix), damage, other)
    out = work / "o.npz"
    # the good dataset file: the cache is keyed by its path, size and time
    outcome = run_cli(ref_stats_argv("dataset .npz", good.root, out), capsys)
    assert outcome.code == 0, outcome.err
    assert "decoding the dataset again" in outcome.err
    assert all(np.array_equal(v, np.load(out)[k]) for k, v in good.stats["dataset .npz"].items())
    assert decoded_caches(work) == [cache]  # decoded again into the same place


def other_dataset(kind: str, work: Path) -> bytes:
    if kind == "dataset .npz":
        return (work / "run/generator.safetensors").read_bytes()
    if kind == "dataset image folder":
        return (work / "run/samples/step-000004.png").read_bytes()  # another valid image
    return gzip.compress(b"\x00" * 100, mtime=0)


DATASET_CASES = [
    (kind, damage)
    for kind in DATASETS
    for damage in (ZIP_DAMAGES if kind == "dataset .npz" else DAMAGES)
]


@pytest.mark.parametrize(("kind", "damage"), DATASET_CASES)
def test_dataset_files_read_by_ref_stats(good: Good, work: Path, capsys, kind, damage) -> None:
    damage_file(work / DATASETS[kind][1], damage, other_dataset(kind, work), ("images.npy",))
    out = work / "o.npz"
    outcome = run_cli(ref_stats_argv(kind, work, out), capsys)
    if outcome.code == 2:
        one_line_error(outcome, "ref-stats")
    else:
        assert outcome.code == 0
        if kind in CHECKSUMMED:  # a damaged byte cannot pass for a good one
            got = np.load(out)
            assert all(np.array_equal(v, got[k]) for k, v in good.stats[kind].items()), outcome


@pytest.mark.parametrize("value", list(HOSTILE_VALUES))
@pytest.mark.parametrize("field", ["fid", "num_samples", "reference", "probe"])
def test_hostile_metrics_values_read_by_report_and_the_card(
    good: Good, work: Path, capsys, tmp_path: Path, field: str, value: str
) -> None:
    """A metrics.jsonl record with any JSON value where a number belongs: the report and the
    model card show it cut to one short cell, and nothing fails."""
    run, hostile = work / "run", HOSTILE_VALUES[value]
    record: dict = {"command": "evaluate", "metrics": {"fid": 1.5}, "num_samples": 64}
    if field == "fid":
        record["metrics"]["fid"] = hostile
    elif field == "probe":
        record = {"command": "probe", "dataset": hostile, "trained_d": {"accuracy_mean": hostile}}
    else:
        record[field] = hostile
    with (run / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    report, export = tmp_path / "r.html", tmp_path / "g.safetensors"
    for argv in (
        ["report", run, "--out", report],
        ["export", run, "--format", "safetensors", "--out", export],
    ):
        assert run_cli(argv, capsys).code == 0, argv
    card = (tmp_path / "README.md").read_text()
    for text in (report.read_text(), card):
        assert "x" * 300 not in text and str(10**400) not in text
    assert all(line.count("|") == 5 for line in card.splitlines() if line.startswith("| FID"))


# Values that pass generator.json's schema but not its weights: a hostile or mixed-up file.
SCHEMA_VALID = [
    ("model", "image_size", 512),
    ("model", "ngf", 8192),
    ("model", "ngf", 4),
    ("model", "nz", 1),
    ("model", "channels", 3),
    ("model", "max_mult", 1),
    ("model", "mbstd_group", 4),
    ("model", "conditional", True),
    ("model", "num_classes", 10**6),
    ("model", "spectral_norm", True),
    (None, "step", 2**63 - 1),
    (None, "ema", 0.0),
    (None, "z_dist", "uniform"),
]


@pytest.mark.parametrize(("section", "key", "value"), SCHEMA_VALID)
def test_schema_valid_generator_json_values_read_by_generate(
    good: Good, work: Path, capsys, memory_limit: int, section, key, value
) -> None:
    """Weights that do not fit the description are one line (the export alone) or the
    checkpoint's images (the run), within the memory limit; a value that changes no weight is
    indistinguishable from an edit and is used."""
    path = work / "run" / "generator.json"
    meta = json.loads(path.read_text())
    (meta[section] if section else meta)[key] = value
    path.write_text(json.dumps(meta))
    outcome = run_cli(
        [
            "generate",
            work / "run" / "generator.safetensors",
            "--num",
            4,
            "--seed",
            3,
            "--out",
            work / "o",
        ],
        capsys,
    )
    if outcome.code == 2:
        one_line_error(outcome, "generate")
    outcome = run_cli(["generate", work / "run", "--num", 4, "--seed", 3, "--out", "p"], capsys)
    assert outcome.code == 0, outcome.err
    assert pngs(work / "p") == good.images or key in ("z_dist", "ema", "step", "mbstd_group")


# ------------------------------------------------------------ header and decompression bombs


def _zeros_stream(write, total: int) -> None:
    chunk = bytes(16 << 20)
    for start in range(0, total, len(chunk)):
        write(chunk[: min(len(chunk), total - start)])


@functools.cache
def header_bomb(kind: str) -> bytes:
    """A small file of `kind` whose header or archive promises about a gigabyte: zeros
    compressed about 1000 times (gzip, a tar member, a PNG's IDAT) or an npy header alone."""
    buffer = io.BytesIO()
    if kind == "dataset .npz":
        with zipfile.ZipFile(buffer, "w") as archive:
            header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000000, 28, 28), }"
            archive.writestr(
                "images.npy",
                b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + header.ljust(117).encode() + b"\n",
            )
    elif kind == "dataset MNIST .gz":
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
            gz.write(struct.pack(">IIII", 0x803, 1_000_000, 28, 28))
            _zeros_stream(gz.write, 784_000_000)
    elif kind == "dataset CIFAR-10 .tar.gz":
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
            info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
            info.size = 1 << 30
            gz.write(info.tobuf())
            _zeros_stream(gz.write, info.size)
            gz.write(bytes(1024))  # the end-of-archive blocks
    else:  # a PNG of 30,000 x 30,000 grey pixels, 900 MB decoded
        side, pack = 30_000, zlib.compressobj(9)
        idat = io.BytesIO()
        _zeros_stream(lambda b: idat.write(pack.compress(b)), side * (side + 1))
        idat.write(pack.flush())

        def chunk(tag: bytes, data: bytes) -> bytes:
            return (
                struct.pack(">I", len(data))
                + tag
                + data
                + struct.pack(">I", zlib.crc32(tag + data))
            )

        buffer.write(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        )
        buffer.write(chunk(b"IDAT", idat.getvalue()) + chunk(b"IEND", b""))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", list(DATASETS))
def test_dataset_bombs_read_by_ref_stats_within_the_memory_limit(
    good: Good, work: Path, capsys, memory_limit: int, kind: str
) -> None:
    bomb = header_bomb(kind)
    assert len(bomb) < 2 << 20
    (work / DATASETS[kind][1]).write_bytes(bomb)
    outcome = run_cli(ref_stats_argv(kind, work, work / "o.npz"), capsys)
    one_line_error(outcome, "ref-stats")
    assert DATASETS[kind][1].rsplit("/", 1)[-1] in outcome.err
    assert "bomb" in outcome.err  # refused by what it declares, before a byte is inflated
