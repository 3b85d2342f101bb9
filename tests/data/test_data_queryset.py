"""load_queryset / adapt_dataset / split_dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stealguard.data import ImageDataset, adapt_dataset, load_dataset, load_queryset, split_dataset
from stealguard.data.idx import write_idx


def toy(n: int = 20, c: int = 3, k: int = 4, dtype: torch.dtype = torch.uint8) -> ImageDataset:
    g = torch.Generator().manual_seed(n + c)
    images = torch.randint(0, 256, (n, c, 9, 7), generator=g, dtype=torch.uint8)
    if dtype == torch.float32:
        images = images.float() / 255
    return ImageDataset(images, torch.arange(n) % k, classes=tuple("abcdefgh"[:k]), name="toy")


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 4, 4), (1, 8, 8), (3, 5, 11)])
def test_queryset_from_digits_has_victim_shape(shape: tuple[int, int, int]) -> None:
    source = load_dataset("digits", split="test")
    query = load_queryset("digits", input_shape=shape, split="test")
    assert query.input_shape == shape and len(query) == len(source)
    assert torch.equal(query.labels, source.labels) and query.classes == source.classes
    images, _ = query.tensors()
    assert images.dtype == torch.float32 and float(images.min()) >= 0.0 and float(images.max()) <= 1.0


def test_queryset_from_idx_keeps_uint8_and_converts_gray_to_rgb(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(folder / "train-images-idx3-ubyte.gz", images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(5, dtype=np.uint8))
    query = load_queryset("mnist", root=tmp_path, input_shape=(3, 32, 32))
    assert query.input_shape == (3, 32, 32) and query.images.dtype == torch.uint8
    assert torch.equal(query.images[:, 0], query.images[:, 1]) and torch.equal(query.images[:, 1], query.images[:, 2])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_adapt_matches_transforms_up_to_rounding(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    from stealguard.data import queryset
    from stealguard.data.transforms import resize, to_channels

    monkeypatch.setattr(queryset, "_CHUNK", 7)
    ds = toy(dtype=dtype)
    adapted = adapt_dataset(ds, input_shape=(1, 4, 3))
    expected = resize(to_channels(ds.tensors()[0], 1), (4, 3))
    tolerance = 0.5 / 255 + 1e-6 if dtype == torch.uint8 else 1e-6
    torch.testing.assert_close(adapted.tensors()[0], expected, atol=tolerance, rtol=0)
    assert adapted.images.dtype == dtype and torch.equal(adapted.labels, ds.labels)


def test_adapt_same_shape_returns_dataset_and_empty_works() -> None:
    ds = toy()
    assert adapt_dataset(ds, input_shape=(3, 9, 7)) is ds
    assert adapt_dataset(ds.subset([]), input_shape=(1, 2, 2)).input_shape == (1, 2, 2)


@pytest.mark.parametrize(
    ("shape", "exc", "match"),
    [
        ((2, 8, 8), ValueError, "channels must be 1"),
        ((1, 0, 8), ValueError, ">= 1"),
        ((1, 8), TypeError, "triple"),
        ((1, 8.0, 8), TypeError, "triple"),
    ],
)
def test_input_shape_checked_before_loading(shape: tuple, exc: type, match: str, tmp_path: Path) -> None:
    with pytest.raises(exc, match=match):
        load_queryset("mnist", root=tmp_path, input_shape=shape)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 40), fraction=st.floats(0.0, 1.0), seed=st.integers(0, 10**6), stratify=st.booleans())
def test_split_is_disjoint_complete_and_deterministic(n: int, fraction: float, seed: int, stratify: bool) -> None:
    ds = toy(n=n)
    tagged = ImageDataset(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1), ds.labels, classes=ds.classes, name="t")
    a, b = split_dataset(tagged, fraction, seed, stratify=stratify)
    ids_a, ids_b = a.images.flatten().tolist(), b.images.flatten().tolist()
    assert set(ids_a).isdisjoint(ids_b) and sorted(ids_a + ids_b) == list(range(n))
    assert ids_a == sorted(ids_a) and ids_b == sorted(ids_b)
    assert torch.equal(a.labels, ds.labels[a.images.flatten().long()])
    if not stratify:
        assert len(a) == round(fraction * n)
    a2, _ = split_dataset(tagged, fraction, seed, stratify=stratify)
    assert a2.images.flatten().tolist() == ids_a


def test_split_seed_changes_the_split_and_stratify_keeps_proportions() -> None:
    ds = load_dataset("digits")
    a0, _ = split_dataset(ds, 0.3, 0)
    a1, _ = split_dataset(ds, 0.3, 1)
    assert not torch.equal(a0.images, a1.images)
    strat, rest = split_dataset(ds, 0.3, 0, stratify=True)
    counts = torch.bincount(ds.labels, minlength=10).double()
    assert torch.all((torch.bincount(strat.labels, minlength=10) - 0.3 * counts).abs() <= 0.5)
    assert len(strat) + len(rest) == len(ds)


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((1.5, 0), ValueError, r"fraction must be in \[0, 1\], got 1.5"),
        ((0.5, -1), ValueError, "seed"),
        ((0.5, 0.5), TypeError, "seed"),
        (("a", 0), TypeError, "fraction"),
    ],
)
def test_split_errors(args: tuple, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        split_dataset(toy(), *args)
    with pytest.raises(TypeError, match="ImageDataset"):
        split_dataset(torch.zeros(3), 0.5, 0)  # type: ignore[arg-type]
