"""--holdout splits a dataset exactly: the parts are disjoint, together they are the whole set,
the held-out part has exactly N images, and the split depends on nothing but the dataset and N
(never the run seed). Training batches only ever come from the training part.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from conftest import with_settings
from dcgan.config import Config, DataConfig
from dcgan.data import ImageSet, open_images
from dcgan.data.sources import mnist_sample_arrays
from dcgan.training.batches import RealBatches, prepare_images

SIZE = 16
CASES = [("mnist-sample", 500), ("mnist-sample", 1), ("fake", 64), ("fake", 511)]


def parts(dataset: str, holdout: int) -> tuple[ImageSet, ImageSet, ImageSet]:
    cfg = DataConfig(dataset=dataset, holdout=holdout)
    return tuple(open_images(cfg, SIZE, 1, part=p) for p in ("all", "train", "holdout"))


def image_bytes(images: torch.Tensor) -> Counter:
    """How often each distinct image (by its bytes) occurs in uint8 (N, C, S, S)."""
    return Counter(bytes(row) for row in images.flatten(1).numpy())


@pytest.mark.parametrize(("dataset", "holdout"), CASES)
def test_parts_are_disjoint_and_cover_the_dataset_by_rows(dataset: str, holdout: int) -> None:
    full, train, held = parts(dataset, holdout)
    assert full.rows is None and train.rows is not None and held.rows is not None
    assert len(held) == holdout and len(train) == len(full) - holdout
    rows_train, rows_held = set(train.rows.tolist()), set(held.rows.tolist())
    assert len(rows_train) == len(train) and len(rows_held) == len(held)  # no row twice
    assert not rows_train & rows_held
    assert rows_train | rows_held == set(range(len(full)))
    # each part's images are exactly the dataset's images at its rows
    assert torch.equal(train.tensor(), full.images[train.rows])
    assert torch.equal(held.tensor(), full.images[held.rows])


@pytest.mark.parametrize(("dataset", "holdout"), CASES)
@pytest.mark.slow
def test_parts_are_disjoint_and_cover_the_dataset_by_bytes(dataset: str, holdout: int) -> None:
    full, train, held = parts(dataset, holdout)
    everything, in_train, in_held = (image_bytes(x.tensor()) for x in (full, train, held))
    assert in_train + in_held == everything  # together: the whole dataset, each image once
    # an image in both parts can only be one the dataset itself holds more than once
    for image in in_train.keys() & in_held.keys():
        assert everything[image] >= 2
    if dataset == "fake":  # random images: no duplicates, so the parts share nothing at all
        assert len(everything) == len(full)
        assert not in_train.keys() & in_held.keys()


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "holdout"), CASES)
def test_split_does_not_depend_on_the_run_seed(
    tiny_config: Config, dataset: str, holdout: int
) -> None:
    splits = []
    for seed in (0, 1, 12345):
        torch.manual_seed(seed)  # the global RNG must not matter either
        cfg = with_settings(tiny_config, dataset=dataset, holdout=holdout, seed=seed)
        train = prepare_images(cfg, None)  # what a run with this seed trains on
        held = open_images(cfg.data, SIZE, 1, part="holdout")
        splits.append((train.rows.tolist(), held.rows.tolist()))
        assert torch.equal(train.tensor(), open_images(cfg.data, SIZE, 1).tensor())
    assert splits[0] == splits[1] == splits[2]


def test_holdout_is_a_shuffle_not_the_tail() -> None:
    _, labels = mnist_sample_arrays()  # the sample is sorted by class
    _, train, held = parts("mnist-sample", 500)
    held_labels = torch.from_numpy(labels)[held.rows].long()
    assert held.rows.max() - held.rows.min() > 4500  # spread over the whole file
    assert set(held_labels.tolist()) == set(range(10))  # every class is held out
    assert torch.equal(held.rows, held.rows.sort().values)  # rows read front to back
    assert torch.equal(train.rows, train.rows.sort().values)


@pytest.mark.slow
def test_a_larger_holdout_extends_a_smaller_one() -> None:
    """'the last N after a fixed shuffle': growing N only moves images out of training."""
    _, train_small, held_small = parts("mnist-sample", 100)
    _, train_large, held_large = parts("mnist-sample", 300)
    assert set(held_small.rows.tolist()) < set(held_large.rows.tolist())
    assert set(train_large.rows.tolist()) < set(train_small.rows.tolist())


def test_training_batches_never_show_held_out_images(tiny_config: Config) -> None:
    cfg = with_settings(tiny_config, holdout=64, batch_size=32)  # `fake`: 448 left, 14 batches
    data = prepare_images(cfg, None)
    held = image_bytes(open_images(cfg.data, SIZE, 1, part="holdout").tensor())
    allowed = image_bytes(data.tensor())
    reals = RealBatches(data, cfg, torch.device("cpu"))
    seen: Counter = Counter()
    for number in range(reals.order.per_epoch):
        batch = reals(number)
        seen += image_bytes(((batch + 1) * 127.5).round().to(torch.uint8))
    assert len(held) == 64 and not seen.keys() & held.keys()
    assert seen == allowed  # one epoch: every training image exactly once


def test_an_unknown_part_is_refused_not_read_as_the_holdout() -> None:
    with pytest.raises(ValueError, match="part: 'hodlout' is not one of train, holdout, all"):
        open_images(DataConfig(dataset="fake", holdout=10), 16, 1, part="hodlout")
