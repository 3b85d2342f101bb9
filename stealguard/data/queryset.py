"""Query (transfer) sets for attackers: any data set reshaped to the victim's input, and seeded splits.

An attacker queries the victim with images of the victim's input shape, drawn from whatever
data it has (Orekondy et al., "Knockoff Nets", CVPR 2019, arXiv:1812.02766; Papernot et al.,
"Practical Black-Box Attacks", AsiaCCS 2017, arXiv:1602.02697). ``load_queryset`` loads a data
set and converts it (channels, then size) to that shape; ``split_dataset`` (from
:mod:`stealguard.data.split`) carves a disjoint query set out of a training set, and a spec
such as ``cifar10:half=1`` loads the half of a train split that a ``cifar10:half=0`` victim
never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from stealguard.data.base import ImageDataset, as_float_images
from stealguard.data.registry import load_dataset
from stealguard.data.split import split_dataset

__all__ = ["adapt_dataset", "load_queryset", "split_dataset"]
from stealguard.data.transforms import resize, to_channels

_CHUNK = 4096


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence) or len(input_shape) != 3:
        raise TypeError(f"input_shape must be a (C, H, W) triple of integers, got {input_shape!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in input_shape):
        raise TypeError(f"input_shape must be a (C, H, W) triple of integers, got {input_shape!r}")
    channels, height, width = (int(v) for v in input_shape)
    if channels not in (1, 3):
        raise ValueError(f"input_shape channels must be 1 (gray) or 3 (RGB), got {tuple(input_shape)!r}")
    if height < 1 or width < 1:
        raise ValueError(f"input_shape height and width must be >= 1, got {tuple(input_shape)!r}")
    return channels, height, width


def adapt_dataset(dataset: ImageDataset, *, input_shape: Sequence[int]) -> ImageDataset:
    """``dataset`` converted to ``input_shape`` with ``to_channels`` and ``resize``; labels kept.

    Channels are reduced before resizing and added after it (the two commute; this order does
    less work). Processed in chunks, so memory stays near the size of the result; uint8 storage
    stays uint8 (rounded), float32 stays float32.

    Args:
        dataset: any ``ImageDataset`` with 1 or 3 channels.
        input_shape: the victim's ``(C, H, W)``, C in {1, 3}.

    Shape:
        ``(N, C, H, W)`` -> ``(N, *input_shape)``; ``dataset`` itself when the shape already matches.

    Raises:
        TypeError: dataset not an ImageDataset; input_shape not three ints.
        ValueError: a channel count not in {1, 3}, or a size < 1.
    """
    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset must be an ImageDataset, got {type(dataset).__name__}")
    channels, height, width = _check_input_shape(input_shape)
    if dataset.input_shape == (channels, height, width):
        return dataset
    if dataset.input_shape[0] not in (1, 3):
        raise ValueError(f"can convert only 1- or 3-channel images, {dataset.name} has {dataset.input_shape[0]}")
    pieces = []
    for start in range(0, len(dataset), _CHUNK):
        chunk = as_float_images(dataset.images[start : start + _CHUNK])
        if channels < chunk.shape[1]:
            chunk = resize(to_channels(chunk, channels), (height, width))
        else:
            chunk = to_channels(resize(chunk, (height, width)), channels)
        if dataset.images.dtype == torch.uint8:
            chunk = chunk.mul(255.0).round_().to(torch.uint8)
        pieces.append(chunk)
    dtype = dataset.images.dtype
    images = torch.cat(pieces) if pieces else torch.empty((0, channels, height, width), dtype=dtype)
    return ImageDataset(images, dataset.labels.clone(), classes=dataset.classes, name=dataset.name)


def load_queryset(
    name: str,
    *,
    root: str | Path | None = None,
    input_shape: Sequence[int],
    split: str = "train",
    download: bool = False,
) -> ImageDataset:
    """Load data set ``name`` (see ``load_dataset``) as attacker images of the victim's ``input_shape``.

    Gray -> RGB repeats the channel, RGB -> gray is ITU-R BT.601 luma; sizes change by
    bilinear interpolation, antialiased when shrinking. Labels are those of ``name``: attacks
    never train on them (Knockoff's adaptive policy may use them as its arms); they are not
    the victim's classes unless ``name`` is the victim's own data set.

    ``name`` may be a data-set spec with a half (``cifar10:half=1``, ``imagefolder:half=1,seed=3``;
    see :mod:`stealguard.data.split`): the attacker's half of a train split, disjoint from the
    ``half=0`` a victim trained on.

    Args:
        name, root, split, download: as for ``load_dataset``.
        input_shape: the victim's ``(C, H, W)``, C in {1, 3}.

    Shape:
        images ``(N, *input_shape)``.

    Raises:
        everything ``load_dataset`` raises; TypeError / ValueError for a bad ``input_shape``
        (checked before anything is loaded).

    Example:
        >>> load_queryset("digits", input_shape=(3, 16, 16), split="test").input_shape
        (3, 16, 16)
    """
    _check_input_shape(input_shape)
    dataset = load_dataset(name, root=root, split=split, download=download)
    return adapt_dataset(dataset, input_shape=input_shape)
