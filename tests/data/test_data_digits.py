"""The bundled 8x8 digits and their fixed stratified split."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sklearn_digits

from stealguard.data import load_dataset
from stealguard.data.digits import split_indices, stable_order

# sha256 of the test indices (int64 little-endian) into sklearn's 1797 digits; pins the split forever.
TEST_SPLIT_SHA256 = "2088cd0c0b9c96ee8d2c86bf5bc41b736adab8d1763e11d3df6ed8d0fe3ab6ae"


@pytest.fixture(scope="module")
def bunch():
    return sklearn_digits()


def test_split_is_pinned(bunch) -> None:
    _, test = split_indices(np.asarray(bunch.target))
    assert hashlib.sha256(test.astype("<i8").tobytes()).hexdigest() == TEST_SPLIT_SHA256


def test_split_is_disjoint_complete_and_stratified(bunch) -> None:
    labels = np.asarray(bunch.target)
    train, test = split_indices(labels)
    assert len(set(train) & set(test)) == 0 and len(train) + len(test) == len(labels)
    per_class = np.bincount(labels)
    assert np.all(np.abs(np.bincount(labels[test]) - 0.2 * per_class) <= 0.5)


def test_loaded_splits_match_the_indices(bunch) -> None:
    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    assert (len(train), len(test)) == (1438, 359)
    assert train.input_shape == (1, 8, 8) and train.num_classes == 10 and train.classes[3] == "3"
    _train_index, test_index = split_indices(np.asarray(bunch.target))
    expected = torch.from_numpy(np.asarray(bunch.images, np.float32)[test_index] / 16).unsqueeze(1)
    assert torch.equal(test.images, expected)
    assert test.labels.tolist() == np.asarray(bunch.target)[test_index].tolist()
    images, _ = train.tensors()
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0


def test_same_split_every_call() -> None:
    a, b = load_dataset("digits", split="test"), load_dataset("digits", split="test")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_stable_order_is_a_seeded_permutation() -> None:
    index = np.arange(50)
    a, b, c = stable_order(index, 0), stable_order(index, 0), stable_order(index, 1)
    assert sorted(a.tolist()) == index.tolist() and np.array_equal(a, b) and not np.array_equal(a, c)


def test_download_flag_is_harmless_for_digits() -> None:
    assert len(load_dataset("digits", download=True)) == 1438
