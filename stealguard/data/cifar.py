"""CIFAR-10 and CIFAR-100 from their "python version" pickle batches.

Krizhevsky (2009), "Learning Multiple Layers of Features from Tiny Images",
https://www.cs.toronto.edu/~kriz/cifar.html. Each batch is a pickled dict with ``data``
(``(n, 3072)`` uint8, rows are R, G, B planes of 32x32) and ``labels`` (CIFAR-10) or
``fine_labels`` (CIFAR-100). Batches are read with ``SafeUnpickler`` (plain numeric arrays
and containers only, size-limited), never ``pickle.load``; every label is checked to lie in
``[0, K)`` in the file that holds it.

Accepted layouts under ``<root>``:

* ``cifar10/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` (the extracted
  ``cifar-10-python.tar.gz``) or the same files directly in ``cifar10/``;
* ``cifar100/cifar-100-python/{train, test, meta}`` or the same files directly in ``cifar100/``;
* an ImageFolder export ``cifar10/cifar10-jpg/{train,test}/<class>/*.jpg`` or
  ``cifar10-jpg/{train,test}/<class>/*.jpg`` directly under ``<root>`` (the extracted
  ``cifar10-jpg.tar.gz``: ``tar -xzf cifar10-jpg.tar.gz -C <root>``), likewise ``cifar100-jpg``.
  The pickle batches win when both are there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stealguard.data.base import DataNotFoundError, ImageDataset
from stealguard.data.imagefolder import load_imagefolder
from stealguard.data.safepickle import safe_load

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant keeps its files, and which keys hold what."""

    name: str
    folder: str
    files: dict[str, tuple[str, ...]]
    meta_file: str
    names_key: str
    labels_key: str
    num_classes: int

    def default_classes(self) -> tuple[str, ...]:
        if self.num_classes == len(CIFAR10_CLASSES):
            return CIFAR10_CLASSES
        return tuple(str(k) for k in range(self.num_classes))


CIFAR10 = CifarSpec(
    name="cifar10",
    folder="cifar-10-batches-py",
    files={"train": tuple(f"data_batch_{k}" for k in range(1, 6)), "test": ("test_batch",)},
    meta_file="batches.meta",
    names_key="label_names",
    labels_key="labels",
    num_classes=10,
)
CIFAR100 = CifarSpec(
    name="cifar100",
    folder="cifar-100-python",
    files={"train": ("train",), "test": ("test",)},
    meta_file="meta",
    names_key="fine_label_names",
    labels_key="fine_labels",
    num_classes=100,
)


MAX_NAME_LENGTH = 256
"""Longest class name accepted from a meta file."""


def _text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _read_dict(path: Path) -> dict[str, Any]:
    try:
        entry = safe_load(path, source=f"{path} is not a readable CIFAR pickle")
    except FileNotFoundError:
        raise
    except OSError as err:
        raise ValueError(f"{path} cannot be read: {err.strerror or err}") from None
    if not isinstance(entry, dict):
        raise ValueError(f"{path} is not a CIFAR pickle: expected a dict, got {type(entry).__name__}")
    return {_text(key): value for key, value in entry.items()}


def _labels(path: Path, key: str, value: Any, num_classes: int) -> np.ndarray:
    """``value`` (a list of ints or a 1-D integer array) as int64 after checking each label is in ``[0, K)``."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in "iu":
            raise ValueError(f"{path}: {key!r} must be a list of integers, got a {value.dtype} array of shape {value.shape}")
        bad = np.flatnonzero((value < 0) | (value >= num_classes))
    elif isinstance(value, (list, tuple)):
        if not all(type(v) is int for v in value):
            kind = next(type(v).__name__ for v in value if type(v) is not int)
            raise ValueError(f"{path}: {key!r} must be a list of integers, found a {kind}")
        bad = [index for index, v in enumerate(value) if not 0 <= v < num_classes]
    else:
        raise ValueError(f"{path}: {key!r} must be a list of integers, got {type(value).__name__}")
    if len(bad):
        first = int(bad[0])
        label = value[first]
        shown = str(int(label)) if -(10**18) < label < 10**18 else f"<an integer of {int(label).bit_length()} bits>"
        raise ValueError(f"{path}: label {shown} beyond the {num_classes} classes (position {first}; {len(bad)} labels outside [0, {num_classes}))")
    return np.asarray(value, dtype=np.int64)


def _read_batch(path: Path, spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    entry = _read_dict(path)
    labels_key = spec.labels_key if spec.labels_key in entry else "labels"
    if "data" not in entry or labels_key not in entry:
        found = ", ".join(repr(k[:40]) for k in sorted(entry)[:10])
        raise ValueError(f"{path} is not a CIFAR batch: keys 'data' and {spec.labels_key!r} required, found {found}")
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", None)
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (n, 3072), got {type(data).__name__} {shape}")
    labels = _labels(path, labels_key, entry[labels_key], spec.num_classes)
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    return data.reshape(-1, 3, 32, 32), labels


def _read_classes(path: Path, spec: CifarSpec) -> tuple[str, ...]:
    if not path.is_file():
        return spec.default_classes()
    entry = _read_dict(path)
    names = entry.get(spec.names_key)
    if not isinstance(names, (list, tuple)) or len(names) != spec.num_classes:
        raise ValueError(f"{path}: {spec.names_key!r} must list {spec.num_classes} class names")
    if not all(isinstance(n, (str, bytes)) and 0 < len(n) <= MAX_NAME_LENGTH for n in names):
        raise ValueError(f"{path}: {spec.names_key!r} must hold strings of 1 to {MAX_NAME_LENGTH} characters")
    return tuple(_text(n) for n in names)


def _jpg_trees(root: Path, spec: CifarSpec) -> tuple[Path, Path]:
    """Where an extracted ImageFolder export may lie: ``<root>/<name>/<name>-jpg`` or ``<root>/<name>-jpg``."""
    return root / spec.name / f"{spec.name}-jpg", root / f"{spec.name}-jpg"


def load_cifar(root: str | Path, *, spec: CifarSpec, split: str, hint: str) -> ImageDataset:
    """Load one split of a CIFAR variant from under ``root`` (layouts in the module docstring).

    Args:
        root: the data root (the folder holding ``cifar10/`` or ``cifar100/``).
        spec: ``CIFAR10`` or ``CIFAR100``.
        split: ``"train"`` or ``"test"``.
        hint: how to get the files, for ``DataNotFoundError``.

    Shape:
        images ``(N, 3, 32, 32)`` uint8; N = 50000 / 10000 for the official files.

    Raises:
        DataNotFoundError: no accepted layout is complete for ``split`` (message names them all).
        ValueError: a batch or meta file is corrupt or not a CIFAR pickle (names the file).
    """
    root = Path(root)
    names = spec.files[split]
    candidates = [root / spec.name / spec.folder, root / spec.name]
    for directory in candidates:
        if all((directory / n).is_file() for n in names):
            parts = [_read_batch(directory / n, spec) for n in names]
            images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
            labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
            classes = _read_classes(directory / spec.meta_file, spec)
            return ImageDataset(images, labels, classes=classes, name=spec.name)
    trees = _jpg_trees(root, spec)
    for tree in trees:
        if (tree / split).is_dir():
            dataset = load_imagefolder(tree, split=split)
            return ImageDataset(dataset.images, dataset.labels, classes=dataset.classes, name=spec.name)
    expected = [candidates[0] / n for n in names] + [f"(or the same files in {candidates[1]})"]
    expected += [f"(or an ImageFolder tree {tree / split}/<class>/*.jpg)" for tree in trees]
    raise DataNotFoundError(spec.name, expected, hint)
