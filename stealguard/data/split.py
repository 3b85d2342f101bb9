"""Seeded disjoint splits of a data set, and the ``name:half=H,seed=S`` data-set spec.

Model-stealing experiments need a victim training set and an attacker query set that do not
overlap. Knockoff Nets (Orekondy, Schiele, Fritz, CVPR 2019, arXiv:1812.02766) query a
CIFAR-10 victim with CIFAR-100 images; where CIFAR-100 is not at hand, the victim trains on
one half of the CIFAR-10 training images and the attacker queries with the other half.

A data-set spec names such a half wherever a data-set name is accepted (``load_dataset``,
``load_queryset``, ``stealguard train --dataset``, ``stealguard attack --queryset``) and is
what a victim's model card records::

    cifar10                  the whole data set
    cifar10:half=0           the victim's half of the train split (split seed 0)
    cifar10:half=1           the disjoint other half: the attacker's
    imagefolder:half=0,seed=7    a half of an ImageFolder tree's train split, split seed 7

``half`` is 0 or 1; ``seed`` (the split seed, default :data:`DEFAULT_SPLIT_SEED`) fixes the
split. The split is stratified: each class is permuted with a ``torch.Generator`` seeded with
``seed`` (classes in label order, one generator) and its first ``round(N_k / 2)`` images form
half 0, the rest half 1, so both halves keep the class proportions, are disjoint and together
are exactly the train split. The test split is never split: a spec with a half loads the whole
test split. The halves are defined on the order the loader returns the images (sorted file
names for ImageFolder trees, batch order for pickles), so the same files give the same halves.
"""

from __future__ import annotations

import dataclasses
import re

import torch

from stealguard._checks import check_bool, check_int, check_number
from stealguard.data.base import ImageDataset

HALVES = (0, 1)
DEFAULT_SPLIT_SEED = 0
SPEC_KEYS = ("half", "seed")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_INT = re.compile(r"[0-9]+")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A data-set name with an optional half of its train split.

    Args:
        name: the registry name (``cifar10``, ``imagefolder``, an IDX folder name, ...).
        half: None (the whole data set), 0 or 1.
        seed: split seed >= 0, or None for :data:`DEFAULT_SPLIT_SEED`; only meaningful with
            a half (a spec without a half keeps it None).

    ``str(spec)`` is the canonical spec, the seed written out: ``cifar10:half=0,seed=0``.
    """

    name: str
    half: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"data set name must match {_NAME.pattern}, got {self.name!r}")
        if self.half is not None:
            check_int("half", self.half, low=HALVES[0], high=HALVES[-1])
        if self.seed is not None:
            check_int("seed", self.seed, low=0)
            if self.half is None:
                raise ValueError(f"data set spec {self.name!r}: seed is the split seed of a half; give half=0 or half=1 with it")

    @property
    def split_seed(self) -> int | None:
        """The seed of the half (the default when none was written), or None without a half."""
        if self.half is None:
            return None
        return DEFAULT_SPLIT_SEED if self.seed is None else self.seed

    def __str__(self) -> str:
        if self.half is None:
            return self.name
        return f"{self.name}:half={self.half},seed={self.split_seed}"


def parse_dataset_spec(spec: str) -> DatasetSpec:
    """Parse ``name[:half=H[,seed=S]]`` (keys in any order, spaces around items ignored).

    Raises:
        TypeError: ``spec`` not a string.
        ValueError: an empty or malformed spec, an unknown key (the message lists
            ``half`` and ``seed``), a repeated key, ``half`` not 0 or 1, a negative or
            non-integer seed, or a seed without a half.

    Example:
        >>> str(parse_dataset_spec("cifar10:half=1"))
        'cifar10:half=1,seed=0'
    """
    if not isinstance(spec, str):
        raise TypeError(f"data set spec must be a string, got {spec!r} ({type(spec).__name__})")
    name, colon, options = spec.strip().partition(":")
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"data set spec {spec!r}: the name must match {_NAME.pattern} (e.g. cifar10, imagefolder), got {name!r}"
        )
    values: dict[str, int] = {}
    if colon:
        for item in options.split(","):
            key, equals, value = (part.strip() for part in item.partition("="))
            if not equals or not key:
                raise ValueError(f"data set spec {spec!r}: options must look like half=0|1[,seed=S], got {item.strip()!r}")
            if key not in SPEC_KEYS:
                raise ValueError(f"data set spec {spec!r}: unknown option {key!r}; known: {', '.join(SPEC_KEYS)}")
            if key in values:
                raise ValueError(f"data set spec {spec!r}: option {key!r} given twice")
            if not _INT.fullmatch(value):
                raise ValueError(f"data set spec {spec!r}: {key} must be a non-negative integer, got {value!r}")
            values[key] = int(value)
        if "half" not in values:
            raise ValueError(f"data set spec {spec!r}: options need half=0 or half=1 (seed is the split seed of a half)")
        if values["half"] not in HALVES:
            raise ValueError(f"data set spec {spec!r}: half must be 0 or 1, got {values['half']}")
    return DatasetSpec(name, values.get("half"), values.get("seed"))


def split_dataset(
    dataset: ImageDataset, fraction: float, seed: int, *, stratify: bool = False
) -> tuple[ImageDataset, ImageDataset]:
    """Split ``dataset`` into two disjoint parts, the first holding ``fraction`` of it.

    A seeded random permutation (``torch.randperm`` with a ``torch.Generator`` seeded by
    ``seed``) picks ``round(fraction * N)`` indices for the first part; the rest form the
    second. With ``stratify=True`` the same is done per class (``round(fraction * N_k)`` of
    class k, classes in label order drawing from one generator), so both parts keep the class
    proportions. Each part keeps the original order.

    Args:
        dataset: the data set to split.
        fraction: share of the first part, in ``[0, 1]``.
        seed: >= 0; the same seed gives the same split.
        stratify: split per class; default False.

    Returns:
        ``(first, second)``: disjoint, together exactly ``dataset``.

    Raises:
        TypeError: dataset not an ImageDataset; fraction/seed/stratify of the wrong type.
        ValueError: fraction outside ``[0, 1]``; seed < 0.

    Example:
        >>> from stealguard.data import load_dataset
        >>> query, rest = split_dataset(load_dataset("digits"), 0.25, 0)
        >>> len(query) + len(rest) == len(load_dataset("digits"))
        True
    """
    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset must be an ImageDataset, got {type(dataset).__name__}")
    first_index, second_index = split_indices(dataset, fraction, seed, stratify=stratify)
    return dataset.subset(first_index), dataset.subset(second_index)


def split_indices(dataset: ImageDataset, fraction: float, seed: int, *, stratify: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The sorted int64 indices of the two parts :func:`split_dataset` returns (same arguments)."""
    fraction = check_number("fraction", fraction, low=0.0, high=1.0)
    seed = check_int("seed", seed, low=0)
    check_bool("stratify", stratify)
    generator = torch.Generator().manual_seed(seed)
    groups = [torch.nonzero(dataset.labels == k).flatten() for k in range(dataset.num_classes)] if stratify else [
        torch.arange(len(dataset))
    ]
    first, second = [], []
    for members in groups:
        order = members[torch.randperm(len(members), generator=generator)]
        cut = round(fraction * len(members))
        first.append(order[:cut])
        second.append(order[cut:])
    empty = torch.empty(0, dtype=torch.int64)
    first_index = torch.sort(torch.cat(first)).values if first else empty
    second_index = torch.sort(torch.cat(second)).values if second else empty
    return first_index, second_index


def take_half(dataset: ImageDataset, *, half: int, seed: int = DEFAULT_SPLIT_SEED) -> ImageDataset:
    """Half ``half`` of ``dataset``: the stratified, seeded 50/50 split of the module docstring.

    ``take_half(d, half=0, seed=s)`` and ``take_half(d, half=1, seed=s)`` are disjoint and
    together are ``d`` (each in ``d``'s order); the name becomes ``"<name>:half=H,seed=S"``.

    Args:
        dataset: usually a train split.
        half: 0 or 1.
        seed: split seed >= 0 (default 0).

    Raises:
        TypeError: dataset not an ImageDataset; half or seed not an integer.
        ValueError: half not 0 or 1; seed < 0.
    """
    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset must be an ImageDataset, got {type(dataset).__name__}")
    check_int("half", half, low=HALVES[0], high=HALVES[-1])
    check_int("seed", seed, low=0)
    index = split_indices(dataset, 0.5, seed, stratify=True)[half]
    return ImageDataset(
        dataset.images[index], dataset.labels[index], classes=dataset.classes, name=f"{dataset.name}:half={half},seed={seed}"
    )
