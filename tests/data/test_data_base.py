"""ImageDataset, DataNotFoundError, default_normalization, and the package's exports."""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest
import torch

from stealguard import data
from stealguard.data import DataNotFoundError, ImageDataset, default_normalization


def make(n: int = 6, c: int = 3, dtype: torch.dtype = torch.uint8, k: int = 3) -> ImageDataset:
    g = torch.Generator().manual_seed(n * 10 + c)
    if dtype == torch.uint8:
        images = torch.randint(0, 256, (n, c, 4, 5), generator=g, dtype=torch.uint8)
    else:
        images = torch.rand((n, c, 4, 5), generator=g)
    labels = torch.arange(n) % k
    return ImageDataset(images, labels, classes=tuple(f"c{i}" for i in range(k)), name="toy")


def test_every_export_imports() -> None:
    for name in data.__all__:
        assert getattr(data, name) is not None
    for module in ("base", "digits", "idx", "cifar", "imagefolder", "download", "transforms", "registry", "queryset", "stats", "safepickle"):
        importlib.import_module(f"stealguard.data.{module}")


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_items_and_tensors_are_float_in_unit_range(dtype: torch.dtype) -> None:
    ds = make(dtype=dtype)
    image, label = ds[2]
    assert image.dtype == torch.float32 and image.shape == (3, 4, 5)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert isinstance(label, int) and label == 2
    images, labels = ds.tensors()
    assert images.dtype == torch.float32 and images.shape == (6, 3, 4, 5) and labels.dtype == torch.int64
    assert torch.equal(images[2], image)
    assert ds.input_shape == (3, 4, 5) and ds.num_classes == 3 and len(ds) == 6
    assert torch.equal(ds[-1][0], images[-1])


def test_uint8_scaling_is_division_by_255() -> None:
    pixels = torch.tensor([0, 51, 255], dtype=torch.uint8).view(3, 1, 1, 1)
    ds = ImageDataset(pixels, torch.zeros(3, dtype=torch.int64), classes=("a",), name="x")
    assert ds.tensors()[0].flatten().tolist() == pytest.approx([0.0, 0.2, 1.0])


def test_accepts_numpy_and_casts_labels_to_int64() -> None:
    ds = ImageDataset(np.zeros((2, 1, 3, 3), np.uint8), np.array([0, 1], np.int32), classes=["a", "b"], name="np")
    assert ds.labels.dtype == torch.int64 and ds.classes == ("a", "b")


def test_subset_keeps_order_classes_and_name() -> None:
    ds = make(n=8)
    sub = ds.subset([5, 1, 5])
    assert len(sub) == 3 and sub.classes == ds.classes and sub.name == ds.name
    assert torch.equal(sub.images[0], ds.images[5]) and torch.equal(sub.images[1], ds.images[1])
    assert sub.labels.tolist() == [ds.labels[5].item(), ds.labels[1].item(), ds.labels[5].item()]
    assert len(ds.subset([])) == 0 and ds.subset([]).input_shape == ds.input_shape
    assert torch.equal(ds.subset(torch.tensor([-1])).images[0], ds.images[-1])


@pytest.mark.parametrize(
    ("indices", "match"),
    [([8], r"indices must lie in \[-8, 7\]"), ([[0, 1]], "1-D"), ([0.5], "integers")],
)
def test_subset_rejects_bad_indices(indices: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(n=8).subset(indices)


def test_index_errors() -> None:
    ds = make(n=3)
    with pytest.raises(IndexError, match="index 3 out of range for 3"):
        ds[3]
    with pytest.raises(TypeError, match="subset"):
        ds[[0, 1]]


def test_empty_dataset_is_allowed() -> None:
    ds = ImageDataset(torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.int64), classes=("a", "b"), name="empty")
    assert len(ds) == 0 and ds.tensors()[0].shape == (0, 1, 2, 2)


@pytest.mark.parametrize(
    ("images", "labels", "classes", "exc", "match"),
    [
        (torch.zeros(2, 4, 4, dtype=torch.uint8), torch.zeros(2), ("a",), ValueError, r"\(N, C, H, W\)"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.int64), ("a",), ValueError, "uint8 .* or float32"),
        (torch.full((2, 1, 4, 4), 1.5), torch.zeros(2, dtype=torch.int64), ("a",), ValueError, r"\[0, 1\], got values in \[1.5, 1.5\]"),
        (torch.full((2, 1, 4, 4), float("nan")), torch.zeros(2, dtype=torch.int64), ("a",), ValueError, "NaN"),
        (torch.zeros(2, 1, 4, 4), torch.zeros(3, dtype=torch.int64), ("a",), ValueError, "2 images, 3 labels"),
        (torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, dtype=torch.int64), ("a",), ValueError, r"shape \(N,\)"),
        (torch.zeros(2, 1, 4, 4), torch.zeros(2), ("a",), ValueError, "integer dtype"),
        (torch.zeros(2, 1, 4, 4), torch.tensor([0, 2]), ("a", "b"), ValueError, r"\[0, 1\] for 2 classes, got values in \[0, 2\]"),
        (torch.zeros(2, 1, 4, 4), torch.tensor([0, -1]), ("a", "b"), ValueError, r"got values in \[-1, 0\]"),
        (torch.zeros(2, 1, 4, 4), torch.tensor([0, 0]), (), ValueError, "at least one class"),
        (torch.zeros(2, 1, 4, 4), torch.tensor([0, 0]), ("a", "a"), ValueError, "distinct"),
        (torch.zeros(2, 1, 4, 4), torch.tensor([0, 0]), "ab", TypeError, "sequence of strings"),
        ([[0.0]], torch.tensor([0]), ("a",), TypeError, "images must be a torch.Tensor"),
    ],
)
def test_constructor_validation(images: object, labels: object, classes: object, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        ImageDataset(images, labels, classes=classes, name="bad")


def test_name_must_be_nonempty_string() -> None:
    with pytest.raises(TypeError, match="name must be a non-empty string"):
        ImageDataset(torch.zeros(1, 1, 1, 1), torch.zeros(1, dtype=torch.int64), classes=("a",), name="")


def test_data_not_found_error_names_paths_and_hint() -> None:
    err = DataNotFoundError("mnist", ["/x/a.gz", "/x/b.gz"], "Pass download=True.")
    assert isinstance(err, FileNotFoundError)
    assert re.search(r"'mnist' not found.*\n  /x/a.gz\n  /x/b.gz\nPass download=True.", str(err))
    assert err.paths == ("/x/a.gz", "/x/b.gz") and err.dataset == "mnist"


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_default_normalization_matches_naive_per_channel(dtype: torch.dtype) -> None:
    ds = make(n=20, c=3, dtype=dtype)
    mean, std = default_normalization(ds)
    x = ds.tensors()[0].double()
    naive_mean = x.mean(dim=(0, 2, 3))
    naive_std = x.std(dim=(0, 2, 3), unbiased=False)
    assert mean == pytest.approx(naive_mean.tolist(), abs=1e-6)
    assert std == pytest.approx(naive_std.tolist(), abs=1e-6)


def test_default_normalization_constant_channel_and_empty() -> None:
    ds = ImageDataset(torch.full((3, 1, 2, 2), 7, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), classes=("a",), name="c")
    mean, std = default_normalization(ds)
    assert mean == pytest.approx([7 / 255]) and std == [1.0]
    with pytest.raises(ValueError, match="empty"):
        default_normalization(ds.subset([]))
