"""Data-set specs with a half (``name:half=H,seed=S``): parsing, seeded stratified halves, loaders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from stealguard.data import (
    DataNotFoundError,
    DatasetSpec,
    ImageDataset,
    load_dataset,
    load_queryset,
    parse_dataset_spec,
    split_dataset,
    take_half,
)
from stealguard.data import queryset as queryset_module

COUNTS = {"train": {"ant": 7, "bee": 10, "cat": 5}, "test": {"ant": 2, "bee": 3, "cat": 1}}


def write_tree(top: Path, counts: dict[str, dict[str, int]], *, ext: str = "png", size: int = 32) -> Path:
    """``counts[split][class]`` images; with PNG, pixel (0, 0) = (index, 20 * class, 100 + split) identifies each file."""
    for s, (split, classes) in enumerate(counts.items()):
        for c, (name, count) in enumerate(sorted(classes.items())):
            folder = top / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.new("RGB", (size, size), (i, 20 * c, 100 + s)).save(folder / f"{i:04d}.{ext}")
    return top


def identities(dataset: ImageDataset) -> list[tuple[int, ...]]:
    return [tuple(int(v) for v in dataset.images[i, :, 0, 0]) for i in range(len(dataset))]


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "tree", COUNTS)


@pytest.mark.parametrize(
    ("text", "canonical", "half", "seed"),
    [
        ("cifar10", "cifar10", None, None),
        ("cifar10:half=0", "cifar10:half=0,seed=0", 0, 0),
        ("cifar10:half=1,seed=7", "cifar10:half=1,seed=7", 1, 7),
        (" imagefolder : seed=3 , half=1 ", "imagefolder:half=1,seed=3", 1, 3),
        ("my-idx.v2:half=0", "my-idx.v2:half=0,seed=0", 0, 0),
    ],
)
def test_parse_dataset_spec(text: str, canonical: str, half: int | None, seed: int | None) -> None:
    spec = parse_dataset_spec(text)
    assert str(spec) == canonical and spec.half == half and spec.split_seed == seed
    assert parse_dataset_spec(str(spec)) == DatasetSpec(spec.name, half, seed)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("cifar10:half=2", r"half must be 0 or 1, got 2"),
        ("cifar10:half=-1", r"half must be a non-negative integer, got '-1'"),
        ("cifar10:seed=1", r"options need half=0 or half=1"),
        ("cifar10:half=0,half=1", r"option 'half' given twice"),
        ("cifar10:half=0,fraction=0.5", r"unknown option 'fraction'; known: half, seed"),
        ("cifar10:half=0,seed=x", r"seed must be a non-negative integer, got 'x'"),
        ("cifar10:", r"options must look like half=0\|1"),
        ("cifar10:half", r"options must look like half=0\|1"),
        (":half=0", r"the name must match"),
        ("two words:half=0", r"the name must match"),
    ],
)
def test_parse_dataset_spec_errors(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_dataset_spec(text)


def test_spec_type_errors_and_seed_without_half() -> None:
    with pytest.raises(TypeError, match=r"data set spec must be a string"):
        parse_dataset_spec(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"seed is the split seed of a half"):
        DatasetSpec("cifar10", None, 3)


def test_halves_are_disjoint_stratified_and_cover_the_train_split(tree: Path) -> None:
    whole = load_dataset("imagefolder", root=tree)
    first = load_dataset("imagefolder:half=0", root=tree)
    second = load_dataset("imagefolder:half=1", root=tree)
    assert first.name == "tree:half=0,seed=0" and second.name == "tree:half=1,seed=0"
    assert first.classes == second.classes == whole.classes
    a, b = identities(first), identities(second)
    assert not set(a) & set(b) and sorted(a + b) == sorted(identities(whole)) and len(set(a + b)) == len(whole)
    counts = torch.stack([torch.bincount(d.labels, minlength=3) for d in (first, second)])
    assert counts.sum(0).tolist() == [7, 10, 5] and int((counts[0] - counts[1]).abs().max()) <= 1
    positions = {identity: i for i, identity in enumerate(identities(whole))}
    for part in (a, b):
        order = [positions[identity] for identity in part]
        assert order == sorted(order)


def test_halves_are_seeded(tree: Path) -> None:
    default = identities(load_dataset("imagefolder:half=0", root=tree))
    assert identities(load_dataset("imagefolder:half=0,seed=0", root=tree)) == default
    assert identities(load_dataset("imagefolder:half=0", root=tree)) == default
    others = [identities(load_dataset(f"imagefolder:half=0,seed={s}", root=tree)) for s in range(1, 6)]
    assert any(other != default for other in others)


def test_the_test_split_stays_whole(tree: Path) -> None:
    whole = load_dataset("imagefolder", root=tree, split="test")
    for half in (0, 1):
        test = load_dataset(f"imagefolder:half={half},seed=4", root=tree, split="test")
        assert torch.equal(test.images, whole.images) and torch.equal(test.labels, whole.labels) and test.name == whole.name


def test_queryset_of_the_other_half_takes_the_victims_shape(tree: Path) -> None:
    query = load_queryset("imagefolder:half=1", root=tree, input_shape=(1, 16, 16))
    assert query.input_shape == (1, 16, 16) and len(query) == len(load_dataset("imagefolder:half=1", root=tree))
    assert query.name == "tree:half=1,seed=0"


def test_cifar10_name_finds_an_extracted_jpeg_tree_in_either_place(tmp_path: Path) -> None:
    counts = {"train": {"airplane": 4, "cat": 6}, "test": {"airplane": 1, "cat": 2}}
    for top in (tmp_path / "flat" / "cifar10-jpg", tmp_path / "nested" / "cifar10" / "cifar10-jpg"):
        write_tree(top, counts, ext="jpg")
        root = top.parent if top.parent.name != "cifar10" else top.parent.parent
        half = load_dataset("cifar10:half=1", root=root)
        assert half.name == "cifar10:half=1,seed=0" and len(half) == 5 and half.classes == ("airplane", "cat")
        assert torch.bincount(half.labels).tolist() == [2, 3]
        assert len(load_dataset("cifar10:half=1", root=root, split="test")) == 3


def test_missing_tree_names_the_expected_path(tmp_path: Path) -> None:
    gone = tmp_path / "moved"
    with pytest.raises(DataNotFoundError, match=re.escape(str(gone / "train" / "<class name>"))):
        load_dataset("imagefolder:half=0", root=gone)
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path / "cifar10-jpg" / "train"))):
        load_dataset("cifar10:half=1", root=tmp_path)
    with pytest.raises(ValueError, match=r"imagefolder needs root=.*--data-root DIR\) for data set 'imagefolder:half=0,seed=0'"):
        load_dataset("imagefolder:half=0")


def test_bad_spec_through_load_dataset() -> None:
    with pytest.raises(ValueError, match=r"half must be 0 or 1"):
        load_dataset("digits:half=3")
    with pytest.raises(ValueError, match=r"unknown data set 'no such'.*NAME:half=0\|1"):
        load_dataset("no such")


def test_bundled_digits_halves() -> None:
    whole = load_dataset("digits")
    first, second = load_dataset("digits:half=0"), load_dataset("digits:half=1")
    assert len(first) + len(second) == len(whole)
    assert torch.equal(torch.bincount(first.labels) + torch.bincount(second.labels), torch.bincount(whole.labels))


def test_split_dataset_still_lives_in_queryset() -> None:
    assert queryset_module.split_dataset is split_dataset


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=1, max_size=60),
    seed=st.integers(0, 2**31 - 1),
)
def test_take_half_partitions_every_label_vector(labels: list[int], seed: int) -> None:
    n = len(labels)
    images = torch.arange(n, dtype=torch.float32).div(max(n, 1)).view(n, 1, 1, 1)
    dataset = ImageDataset(images, torch.tensor(labels), classes=tuple("abcde"), name="toy")
    first, second = take_half(dataset, half=0, seed=seed), take_half(dataset, half=1, seed=seed)
    ids = [torch.round(d.images.flatten() * max(n, 1)).long().tolist() for d in (first, second)]
    assert sorted(ids[0] + ids[1]) == list(range(n)) and ids[0] == sorted(ids[0]) and ids[1] == sorted(ids[1])
    counts = [torch.bincount(d.labels, minlength=5) for d in (first, second)]
    assert int((counts[0] - counts[1]).abs().max()) <= 1
    again = take_half(dataset, half=0, seed=seed)
    assert torch.equal(again.images, first.images) and again.name == f"toy:half=0,seed={seed}"


def test_take_half_rejects_bad_arguments() -> None:
    dataset = load_dataset("digits", split="test")
    with pytest.raises(ValueError, match=r"half must be an integer in \[0, 1\], got 2"):
        take_half(dataset, half=2)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, inf\], got -1"):
        take_half(dataset, half=0, seed=-1)
    with pytest.raises(TypeError, match=r"dataset must be an ImageDataset"):
        take_half(dataset.images, half=0)  # type: ignore[arg-type]
