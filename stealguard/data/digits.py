"""scikit-learn's bundled 8x8 handwritten digits, with a fixed stratified train/test split.

Alpaydin & Kaynak (1998), UCI "Optical Recognition of Handwritten Digits"; 1797 images
shipped with scikit-learn (``sklearn.datasets.load_digits``), so it needs no files. Pixel values
0..16 are divided by 16 to lie in ``[0, 1]``.

The split is stratified 80/20 and seeded (seed 0), and it does not depend on any library's
random number generator: within each class the images are ordered by a BLAKE2b hash of
``(seed, index)`` and the first ``round(0.2 * n_class)`` go to the test split. Train and test
therefore never change across numpy / torch / scikit-learn versions.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import torch

from stealguard.data.base import ImageDataset

TEST_FRACTION = 0.2
SEED = 0


def stable_order(indices: np.ndarray, seed: int) -> np.ndarray:
    """``indices`` sorted by ``blake2b(f"{seed}:{index}")``: a seeded shuffle independent of any RNG."""
    keys = [hashlib.blake2b(f"{seed}:{int(i)}".encode(), digest_size=8).digest() for i in indices]
    return np.asarray(indices)[sorted(range(len(keys)), key=keys.__getitem__)]


def split_indices(labels: np.ndarray, *, test_fraction: float = TEST_FRACTION, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, test) indices, each sorted ascending; see the module docstring."""
    train, test = [], []
    for label in np.unique(labels):
        members = stable_order(np.flatnonzero(labels == label), seed)
        cut = round(test_fraction * len(members))
        test.append(members[:cut])
        train.append(members[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return images, np.asarray(bunch.target, dtype=np.int64)


def load_digits(*, split: str) -> ImageDataset:
    """One split of the 8x8 digits: 1438 train / 359 test images.

    Args:
        split: ``"train"`` or ``"test"``.

    Shape:
        images ``(N, 1, 8, 8)`` float32 in ``[0, 1]``; 10 classes ``"0"`` .. ``"9"``.
    """
    images, labels = _arrays()
    train, test = split_indices(labels)
    index = train if split == "train" else test
    return ImageDataset(
        torch.from_numpy(images[index].copy()),
        torch.from_numpy(labels[index].copy()),
        classes=tuple(str(k) for k in range(10)),
        name="digits",
    )
