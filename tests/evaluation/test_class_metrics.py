"""Class metrics of conditional generators: the within-class FID, and how often a classifier
fitted on real labelled images names the generated class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ThumbnailFeatures, tiny_flags
from dcgan.cli import main
from dcgan.config import DataConfig
from dcgan.data import open_images
from dcgan.evaluation import features
from dcgan.evaluation.conditional import class_diversity, classifier_accuracy, intra_fid
from dcgan.evaluation.metrics import feature_stats, fid, fid_of_samples


class CountingFeatures(ThumbnailFeatures):
    """The thumbnail stand-in, counting the images it is given."""

    images = 0

    def __call__(self, images) -> np.ndarray:
        CountingFeatures.images += len(images)
        return super().__call__(images)


def test_sample_fid_is_the_fid_and_stays_exact_with_few_samples() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 20)), rng.normal(1.0, 2.0, size=(250, 20))
    assert fid_of_samples(a, b) == pytest.approx(fid(*feature_stats(a), *feature_stats(b)))
    few = rng.normal(size=(12, 200))  # fewer samples than features: singular covariances
    assert fid_of_samples(few, few) == pytest.approx(0.0, abs=1e-8)
    assert fid_of_samples(few, few + 1.0) == pytest.approx(200.0)  # only the means differ


def clustered(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n features in k well separated clusters, and their cluster labels."""
    labels = np.arange(n) % k
    centres = rng.normal(0, 5, size=(k, 8))
    return centres[labels] + rng.normal(size=(n, 8)), labels


def test_the_classifier_names_separable_classes_and_not_shuffled_ones() -> None:
    rng = np.random.default_rng(1)
    real = clustered(400, 4, rng)
    right = classifier_accuracy(real, real)
    assert right["real_accuracy"] == 1.0 and right["accuracy"] == 1.0
    assert right["classifier_fit_images"] == right["classifier_test_images"] == 200
    wrong = classifier_accuracy(real, (real[0], (real[1] + 1) % 4))
    assert wrong["accuracy"] == 0.0


def test_intra_fid_scores_each_class_against_its_own() -> None:
    rng = np.random.default_rng(2)
    real = clustered(200, 2, rng)
    same = intra_fid(real, real, 2)
    assert set(same) == {0, 1} and all(v == pytest.approx(0.0, abs=1e-8) for v in same.values())
    swapped = intra_fid(real, (real[0], 1 - real[1]), 2)
    assert all(v > 10 for v in swapped.values())


def test_diversity_tells_real_digits_from_a_collapsed_generator() -> None:
    digits = open_images(DataConfig(dataset="mnist-sample"), 32, 1, "all", labels=True)
    feats = ThumbnailFeatures()(digits.tensor())
    labels = digits.take_labels(torch.arange(len(digits))).numpy()
    real = (feats[0::2], labels[0::2])  # the set is sorted by class: alternate rows
    other_real = (feats[1::2], labels[1::2])  # other digits of every class
    # one image per class, repeated: the first real digit of each class, as often as real ones
    first = {c: np.flatnonzero(labels == c)[0] for c in range(10)}
    collapsed = (feats[[first[c] for c in other_real[1]]], other_real[1])
    varied = class_diversity(real, other_real, 10)
    copies = class_diversity(real, collapsed, 10)
    assert set(varied) == set(copies) == set(range(10))
    assert all(0.9 < v < 1.1 for v in varied.values())  # real against real: about 1
    assert all(v == 0.0 for v in copies.values())  # near copies are a number: 0


@pytest.mark.slow
def test_evaluate_a_conditional_run_scores_classes(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(features, "InceptionFeatures", CountingFeatures)
    flags = tiny_flags(tmp_path, dataset="mnist-sample", holdout=500, batch_size=16)
    assert main(["train", *flags, "--conditional"]) == 0
    run = next((tmp_path / "runs").iterdir())
    out = tmp_path / "scores.json"
    wanted = "fid,ifid,accuracy,diversity"
    args = ["evaluate", str(run), "--num-samples", "200", "--metrics", wanted]
    CountingFeatures.images = 0
    assert main([*args, "--json", str(out)]) == 0
    assert CountingFeatures.images == 200 + 200  # the reference's features serve the classes too
    metrics = json.loads(out.read_text())["metrics"]
    assert set(metrics["ifid_per_class"]) == {str(c) for c in range(10)}
    assert metrics["ifid"] == pytest.approx(np.mean(list(metrics["ifid_per_class"].values())))
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["real_accuracy"] > 0.5  # real digits
    assert set(metrics["diversity_per_class"]) == {str(c) for c in range(10)}
    assert metrics["diversity"] == pytest.approx(
        np.mean(list(metrics["diversity_per_class"].values())), abs=1e-4
    )
    shown = capsys.readouterr().out
    assert "ifid by class" in shown and "diversity by class" in shown


@pytest.mark.slow
def test_class_metrics_of_an_unconditional_run_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["train", *tiny_flags(tmp_path)]) == 0
    run = next((tmp_path / "runs").iterdir())
    capsys.readouterr()
    assert main(["evaluate", str(run), "--metrics", "fid,accuracy", "--num-samples", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "accuracy score a conditional model's classes" in err and "\n" not in err


@pytest.mark.slow
def test_the_probe_reads_a_projection_d_and_refuses_a_concat_one(tmp_path: Path, capsys) -> None:
    for cond_d in ("projection", "concat"):
        out = tmp_path / cond_d
        flags = tiny_flags(out, dataset="mnist-sample", batch_size=16)
        assert main(["train", *flags, "--conditional", "--cond-d", cond_d]) == 0
        run = next((out / "runs").iterdir())
        capsys.readouterr()
        code = main(["probe", str(run), "--labels-per-class", "5", "--draws", "1"])
        err = capsys.readouterr().err.strip()
        if cond_d == "projection":
            assert code == 0, err
        else:
            assert code == 2 and "the class is what the probe predicts" in err and "\n" not in err
