"""Evaluation plumbing: references and their cache, records, training-time FID, the CLI.

The Inception network is replaced by a small deterministic feature map here so these tests take
seconds; tests/evaluation/test_features.py covers the real network.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import conftest
from dcgan.cli import main
from dcgan.config import Config, DataConfig, merge
from dcgan.errors import ConfigError
from dcgan.evaluation import features
from dcgan.evaluation.evaluate import evaluate, fake_images
from dcgan.evaluation.reference import (
    load_reference,
    make_reference,
    real_images,
    reference_features,
    reference_part,
)
from dcgan.run.checkpoint import load_checkpoint
from dcgan.run.rundir import latest_checkpoint
from dcgan.run.sources import load_generator
from dcgan.training.loop import train


class PixelFeatures(conftest.PixelFeatures):
    """Stands in for Inception: 8x8 grey thumbnails plus their squares as 128-d features."""

    resize = "area-8"
    side = 8


@pytest.fixture
def pixel_features(monkeypatch: pytest.MonkeyPatch) -> type[PixelFeatures]:
    monkeypatch.setattr(features, "InceptionFeatures", PixelFeatures)
    return PixelFeatures


def digits(tmp_path: Path, holdout: int = 0) -> DataConfig:
    return DataConfig(holdout=holdout, cache_dir=str(tmp_path / "cache"))


def test_reference_part_rules() -> None:
    assert reference_part(DataConfig(holdout=10), "auto")[1] == "holdout"
    assert reference_part(DataConfig(), "auto")[1] == "train"
    assert reference_part(DataConfig(dataset="mnist"), "test")[0].split == "test"
    with pytest.raises(ConfigError, match="kept no images out"):
        reference_part(DataConfig(), "holdout")
    with pytest.raises(ConfigError, match="not one of"):
        reference_part(DataConfig(), "val")


def test_real_images_are_a_fixed_subset_of_the_part(tmp_path: Path) -> None:
    cfg = digits(tmp_path, holdout=300)
    held, name = real_images(cfg, 16, 1, "holdout", 200)
    assert held.shape == (200, 1, 16, 16) and name == "mnist-sample:train:holdout"
    assert torch.equal(held, real_images(cfg, 16, 1, "holdout", 200)[0])
    assert len(real_images(cfg, 16, 1, "holdout", 10_000)[0]) == 300  # capped at the part


def test_reference_features_are_cached_as_npz(tmp_path: Path) -> None:
    extractor = PixelFeatures()
    cfg = digits(tmp_path)
    first = reference_features(extractor, cfg, 16, 1, "train", 300)
    again = reference_features(extractor, cfg, 16, 1, "train", 300)
    assert extractor.calls == 1 and np.allclose(first.mu, again.mu)
    reference_features(extractor, cfg, 16, 1, "train", 301)  # another N, another entry
    files = list((tmp_path / "cache" / "ref-stats").glob("*.npz"))
    assert extractor.calls == 2 and len(files) == 2
    with np.load(files[0], allow_pickle=False) as z:
        assert {"feats", "mu", "sigma", "identity"} <= set(z.files)
    assert first.identity["network_sha256"] == "0" * 64 and first.identity["count"] == 300


@pytest.mark.slow
def test_evaluate_is_repeatable_and_zero_for_the_reference_itself(tmp_path: Path) -> None:
    from dcgan.nn.models import Generator

    extractor = PixelFeatures()
    ref = reference_features(extractor, digits(tmp_path), 16, 1, "train", 200)
    g = Generator(merge(Config(), {"image_size": 16, "ngf": 8, "nz": 8}, "t").model)
    a = evaluate(g, "normal", ref, extractor, 100, seed=3)
    b = evaluate(g, "normal", ref, extractor, 100, seed=3)
    assert a["metrics"] == b["metrics"] and set(a["metrics"]) == {
        "fid",
        "kid_mean",
        "kid_std",
        "precision",
        "recall",
    }
    assert a["num_samples"] == 100 and a["seed"] == 3 and a["reference"]["count"] == 200
    itself = make_reference(ref.feats, ref.identity)
    from dcgan.evaluation.metrics import fid

    assert abs(fid(itself.mu, itself.sigma, ref.mu, ref.sigma)) < 1e-6


def test_fake_images_do_not_depend_on_batch_size(tiny_config: Config) -> None:
    from dcgan.nn.models import Generator

    g = Generator(tiny_config.model)
    assert torch.equal(fake_images(g, 10, 1, "normal", 3), fake_images(g, 10, 1, "normal", 10))


@pytest.mark.slow
def test_training_records_fid_and_keeps_the_best(
    tiny_config: Config, tmp_path: Path, pixel_features
) -> None:
    cfg = merge(
        tiny_config,
        {
            "dataset": "mnist-sample",
            "holdout": 100,
            "eval_every": 2,
            "eval_samples": 50,
            "cache_dir": str(tmp_path / "cache"),
        },
        "t",
    )
    result = train(cfg)
    rows = [json.loads(x) for x in (result.run_dir / "stats.jsonl").read_text().splitlines()]
    fids = [r for r in rows if "fid" in r]
    assert [r["step"] for r in fids] == [2, 4]
    assert fids[-1]["best_fid"] == min(r["fid"] for r in fids)
    best, _ = load_generator(result.run_dir / "generator-best.safetensors")
    meta = json.loads((result.run_dir / "generator-best.json").read_text())
    assert meta["fid"] == pytest.approx(fids[-1]["best_fid"], abs=1e-3)
    assert best.cfg.image_size == 16
    state = load_checkpoint(latest_checkpoint(result.run_dir))
    assert state.best_fid == pytest.approx(fids[-1]["best_fid"], abs=1e-3)


@pytest.mark.slow
def test_an_ill_conditioned_fid_during_training_names_the_flag(
    tiny_config: Config, tmp_path: Path, pixel_features, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcgan.evaluation import evaluate

    def ill_conditioned(self, generator):
        raise ValueError("fid: the matrix square root has an imaginary component")

    monkeypatch.setattr(evaluate.FIDTracker, "__call__", ill_conditioned)
    flat = {"dataset": "mnist-sample", "eval_every": 2, "cache_dir": str(tmp_path / "cache")}
    with pytest.raises(ConfigError, match=r"eval_samples: fid: .*; raise --eval-samples"):
        train(merge(tiny_config, flat, "t"))


@pytest.mark.slow
def test_evaluate_cli_writes_json_and_metrics(
    tiny_config: Config, tmp_path: Path, pixel_features
) -> None:
    run = train(merge(tiny_config, {"dataset": "mnist-sample", "holdout": 64}, "t")).run_dir
    out = tmp_path / "eval.json"
    argv = ["evaluate", str(run), "--num-samples", "40", "--json", str(out), "--device", "cpu"]
    assert main(argv) == 0
    record = json.loads(out.read_text())
    assert record["reference"]["dataset"] == "mnist-sample:train:holdout"
    assert record["reference"]["count"] == 40 and record["num_samples"] == 40
    assert record["feature_network_sha256"] == "0" * 64 and record["resize"] == "area-8"
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["metrics"] == record["metrics"]


@pytest.mark.slow
def test_ref_stats_cli_and_reuse(tiny_config: Config, tmp_path: Path, pixel_features) -> None:
    stats = tmp_path / "ref.npz"
    argv = [
        "ref-stats",
        "--dataset",
        "mnist-sample",
        "--image-size",
        "16",
        "--num-real",
        "60",
        "--out",
        str(stats),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    assert load_reference(stats).identity["count"] == 60
    run = train(tiny_config).run_dir
    argv = [
        "evaluate",
        str(run / "generator.safetensors"),
        "--ref-stats",
        str(stats),
        "--num-samples",
        "30",
        "--metrics",
        "fid",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics", "fid,is"], "--metrics"),
        (["--num-samples", "0"], "--num-samples: 0 must be at least 1"),
        (["--reference", "holdout"], "kept no images out"),
    ],
)
@pytest.mark.slow
def test_evaluate_cli_errors_are_one_line(
    tiny_config: Config, capsys, pixel_features, argv: list[str], message: str
) -> None:
    run = train(tiny_config).run_dir
    assert main(["evaluate", str(run), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]


@pytest.mark.slow
def test_export_without_a_run_needs_a_dataset(tiny_config: Config, tmp_path: Path, capsys) -> None:
    run = train(tiny_config).run_dir
    lone = tmp_path / "lone"
    lone.mkdir()
    for name in ("generator.safetensors", "generator.json"):
        (lone / name).write_bytes((run / name).read_bytes())
    assert main(["evaluate", str(lone / "generator.safetensors")]) == 2
    assert "--dataset: required" in capsys.readouterr().err


@pytest.mark.slow
def test_nearest_grid(tiny_config: Config, tmp_path: Path, pixel_features) -> None:
    run = train(merge(tiny_config, {"dataset": "mnist-sample"}, "t")).run_dir
    out = tmp_path / "near.png"
    argv = [
        "nearest",
        str(run),
        "--num",
        "3",
        "--k",
        "2",
        "--pool",
        "50",
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    with Image.open(out) as img:
        cols, rows = 3 + 2 * 2, 3
        assert img.size == (cols * 16 + (cols + 1) * 2, rows * 16 + (rows + 1) * 2)


@pytest.mark.slow
def test_probe_cli_compares_trained_and_random_d(tiny_config: Config, tmp_path: Path) -> None:
    run = train(merge(tiny_config, {"dataset": "mnist-sample", "steps": 2}, "t")).run_dir
    out = tmp_path / "probe.json"
    argv = [
        "probe",
        str(run),
        "--labels-per-class",
        "5",
        "--draws",
        "2",
        "--json",
        str(out),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    record = json.loads(out.read_text())
    assert record["n_test"] == 1000 and record["n_pool"] == 4000
    for name in ("trained_d", "random_d"):
        assert 0.1 < record[name]["accuracy_mean"] <= 1.0 and len(record[name]["accuracies"]) == 2
    logged = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert logged["command"] == "probe"
    unlabelled = ["--dataset", "celeba", "--data-root", str(tmp_path)]
    assert main(["probe", str(run), *unlabelled]) == 2


def test_metric_names_are_checked_once_for_the_flag_and_the_api() -> None:
    from dcgan.evaluation.evaluate import Request, check_request, parse_metrics

    assert parse_metrics(" fid , kid ") == ("fid", "kid")
    for text in ("fid,bogus", "", " , "):
        with pytest.raises(ConfigError, match=r"^--metrics: .*choose from fid,"):
            parse_metrics(text)
    with pytest.raises(ConfigError, match=r"^metrics: 'nope'; choose from fid,"):
        check_request(Request(metrics=("nope",)))
