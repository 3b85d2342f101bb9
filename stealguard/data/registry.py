"""``load_dataset`` / ``names``: every data set by name, with the standard train/test split.

Names:
    ``digits``        scikit-learn's 8x8 digits, bundled (no files, no root needed).
    ``mnist``, ``fashionmnist``, ``kmnist``
                      IDX files in ``<root>/<name>/`` (MNIST layout, raw or .gz).
    ``cifar10``, ``cifar100``
                      pickle batches in ``<root>/<name>/`` (see ``stealguard.data.cifar``).
    ``imagefolder``   an ImageFolder tree; ``root`` is the folder holding ``train/`` and ``test/``.
    any other name    a folder ``<root>/<name>/`` in MNIST layout (e.g. your own IDX export).

``root`` defaults to ``$STEALGUARD_DATA_ROOT``, else ``./data``. ``download=True`` fetches the
official, checksum-verified files of mnist, fashionmnist, cifar10 and cifar100 when they are
missing; nothing is ever downloaded otherwise.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from stealguard._checks import check_bool, check_choice
from stealguard.data import cifar
from stealguard.data.base import DataNotFoundError, ImageDataset
from stealguard.data.digits import load_digits
from stealguard.data.download import DOWNLOADS
from stealguard.data.download import download as fetch
from stealguard.data.idx import load_idx_dataset
from stealguard.data.imagefolder import load_imagefolder
from stealguard.data.split import DatasetSpec, parse_dataset_spec, take_half

SPLITS = ("train", "test")
ROOT_ENV = "STEALGUARD_DATA_ROOT"

IDX_CLASSES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(k) for k in range(10)),
    "fashionmnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
}
_CIFAR = {"cifar10": cifar.CIFAR10, "cifar100": cifar.CIFAR100}
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def default_root() -> Path:
    """``$STEALGUARD_DATA_ROOT`` if set, else ``./data``."""
    return Path(os.environ.get(ROOT_ENV) or "data")


def names() -> list[str]:
    """The data set names ``load_dataset`` knows, sorted (any IDX folder under root works too)."""
    return sorted({"digits", "imagefolder", *IDX_CLASSES, *_CIFAR})


def _hint(name: str, base: Path) -> str:
    where = f"{base / name}"
    if name in DOWNLOADS:
        jpg = f" or extract an ImageFolder export there (tar -xzf {name}-jpg.tar.gz -C {base})," if name in _CIFAR else ""
        return (
            f"Pass download=True (CLI: --download) to fetch the official files into {where},{jpg} "
            f"or put them there yourself. (root defaults to ${ROOT_ENV}, else ./data.)"
        )
    return f"Put the files in {where}. (root defaults to ${ROOT_ENV}, else ./data.)"


def _unknown(name: str, base: Path) -> ValueError:
    return ValueError(
        f"unknown data set {name!r}; known: {', '.join(names())}. Any folder in IDX (MNIST) layout under "
        f"root ({base}) also works by its folder name (<root>/<name>/train-images-idx3-ubyte[.gz], ...); "
        "a half of the train split is NAME:half=0|1[,seed=S]."
    )


def _loader(name: str, base: Path, split: str) -> Callable[[], ImageDataset]:
    if name in _CIFAR:
        return lambda: cifar.load_cifar(base, spec=_CIFAR[name], split=split, hint=_hint(name, base))
    return lambda: load_idx_dataset(
        base / name, split=split, name=name, classes=IDX_CLASSES.get(name), hint=_hint(name, base)
    )


def _load_whole(spec: DatasetSpec, root: str | Path | None, split: str, download: bool) -> ImageDataset:
    name = spec.name
    if name == "digits":
        return load_digits(split=split)
    if name == "imagefolder":
        if root is None:
            raise ValueError(
                f"imagefolder needs root=<the folder holding train/ and test/> (CLI: --data-root DIR) for data set "
                f"{str(spec)!r}; an ImageFolder tree has no default location"
            )
        if download:
            raise ValueError(f"download=True is supported only for {', '.join(sorted(DOWNLOADS))}; got {name!r}")
        return load_imagefolder(root, split=split)
    base = Path(root) if root is not None else default_root()
    known = name in IDX_CLASSES or name in _CIFAR
    if not known and not (_FOLDER_NAME.fullmatch(name) and (base / name).is_dir()):
        raise _unknown(name, base)
    if download and name not in DOWNLOADS:
        raise ValueError(f"download=True is supported only for {', '.join(sorted(DOWNLOADS))}; got {name!r}")
    load = _loader(name, base, split)
    try:
        return load()
    except DataNotFoundError:
        if not download:
            raise
    fetch(name, base)
    return load()


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    split: str = "train",
    download: bool = False,
) -> ImageDataset:
    """Load one split of a named data set into memory.

    Args:
        name: one of ``names()``, or the name of an IDX-layout folder under ``root``; either
            optionally with a half of the train split, ``name:half=0|1[,seed=S]``
            (:mod:`stealguard.data.split`: stratified, seeded; split seed default 0).
        root: data root (for ``imagefolder``: the tree's top, holding ``train/`` and ``test/``);
            default ``$STEALGUARD_DATA_ROOT``, else ``./data``; ignored by ``digits``.
        split: ``"train"`` (default) or ``"test"``.
        download: fetch missing official files (mnist, fashionmnist, cifar10, cifar100 only;
            a no-op for digits); default False, which never touches the network.

    Returns:
        the split as an ``ImageDataset``; with a half and ``split="train"`` that half, named
        ``"<name>:half=H,seed=S"``; the test split is always whole.

    Raises:
        TypeError: name not a string; download not a bool.
        ValueError: unknown name (lists the known ones), a malformed spec (names the bad
            option), bad split, ``download=True`` for a data set without official download,
            ``imagefolder`` without ``root``, corrupt files.
        DataNotFoundError: files missing (names every expected path and how to get them).
        OSError: a download failed or its checksum did not match.

    Example:
        >>> ds = load_dataset("digits", split="test")
        >>> ds.input_shape, ds.num_classes
        ((1, 8, 8), 10)
        >>> half = load_dataset("digits:half=1")
        >>> half.name, len(half) + len(load_dataset("digits:half=0")) == len(load_dataset("digits"))
        ('digits:half=1,seed=0', True)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r} ({type(name).__name__})")
    check_choice("split", split, SPLITS)
    check_bool("download", download)
    spec = _parse(name, root)
    dataset = _load_whole(spec, root, split, download)
    if spec.half is None or split != "train":
        return dataset
    return take_half(dataset, half=spec.half, seed=spec.split_seed)


def _parse(name: str, root: str | Path | None) -> DatasetSpec:
    """The spec of ``name``; a plain name that cannot be one is reported as an unknown data set."""
    if ":" not in name and not _FOLDER_NAME.fullmatch(name):
        raise _unknown(name, Path(root) if root is not None else default_root())
    return parse_dataset_spec(name)
