"""The real CIFAR-10 JPEG archive from ../shared/data, split into the victim's and the attacker's halves."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from stealguard.data import cifar, load_dataset
from stealguard.data.cifar import CIFAR10_CLASSES

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def extracted(extract_cifar10: Callable[[str], Path]) -> Path:
    """The archive's train split extracted as a user would: ``DIR/cifar10-jpg/train`` (the test split
    is checked in test_data_integration)."""
    return extract_cifar10("cifar10-jpg/train")


def test_both_halves_of_the_real_train_split(extracted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Decode the 50,000 JPEGs once: both halves go through load_dataset's spec, split and naming.
    monkeypatch.setattr(cifar, "load_imagefolder", functools.lru_cache(maxsize=2)(cifar.load_imagefolder))
    victim = load_dataset("cifar10:half=0", root=extracted)
    attacker = load_dataset("cifar10:half=1", root=extracted)
    whole = load_dataset("cifar10", root=extracted)
    assert (len(victim), len(attacker), len(whole)) == (25000, 25000, 50000)
    assert victim.name == "cifar10:half=0,seed=0" and attacker.name == "cifar10:half=1,seed=0"
    assert victim.classes == attacker.classes == CIFAR10_CLASSES and victim.input_shape == (3, 32, 32)
    assert torch.bincount(victim.labels).tolist() == torch.bincount(attacker.labels).tolist() == [2500] * 10
    total = whole.images.sum(dtype=torch.int64)
    assert victim.images.sum(dtype=torch.int64) + attacker.images.sum(dtype=torch.int64) == total
    assert not torch.equal(victim.images[:100], whole.images[:100])
