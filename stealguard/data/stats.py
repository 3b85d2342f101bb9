"""``default_normalization``: per-channel mean and standard deviation for a model card.

Computed over every pixel of the given (training) images in pixel space ``[0, 1]``, population
standard deviation (ddof = 0), the convention of the usual constants (MNIST 0.1307 / 0.3081).
uint8 images are summarised exactly from a 256-bin histogram per channel; float images in
float64 chunks, two passes.
"""

from __future__ import annotations

import math

import torch

from stealguard.data.base import ImageDataset

_CHUNK = 4096


def _uint8_moments(images: torch.Tensor, channel: int) -> tuple[float, float]:
    counts = torch.bincount(images[:, channel].reshape(-1).to(torch.int64), minlength=256).to(torch.float64)
    values = torch.arange(256, dtype=torch.float64) / 255.0
    total = counts.sum()
    mean = (counts * values).sum() / total
    var = (counts * (values - mean) ** 2).sum() / total
    return float(mean), float(var)


def _float_moments(images: torch.Tensor, channel: int) -> tuple[float, float]:
    total = images[:, channel].numel()
    mean = sum(float(images[s : s + _CHUNK, channel].to(torch.float64).sum()) for s in range(0, len(images), _CHUNK)) / total
    sq = sum(
        float(((images[s : s + _CHUNK, channel].to(torch.float64) - mean) ** 2).sum())
        for s in range(0, len(images), _CHUNK)
    )
    return mean, sq / total


def default_normalization(dataset: ImageDataset) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of ``dataset``'s images in ``[0, 1]`` (pass the training split).

    A channel that is constant gets std 1.0 (so ``(x - mean) / std`` stays defined).

    Args:
        dataset: a non-empty ``ImageDataset``.

    Returns:
        ``(mean, std)``, each a list of C floats, mean in ``[0, 1]``, std in ``(0, 0.5]`` or 1.0.

    Raises:
        TypeError: dataset not an ImageDataset.
        ValueError: dataset empty.

    Example:
        >>> from stealguard.data import load_dataset
        >>> mean, std = default_normalization(load_dataset("digits"))
        >>> len(mean), len(std)
        (1, 1)
    """
    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset must be an ImageDataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError(f"cannot compute normalisation of the empty data set {dataset.name!r}")
    moments = _uint8_moments if dataset.images.dtype == torch.uint8 else _float_moments
    means, stds = [], []
    for channel in range(dataset.input_shape[0]):
        mean, var = moments(dataset.images, channel)
        std = math.sqrt(max(var, 0.0))
        means.append(mean)
        stds.append(std if std > 0.0 else 1.0)
    return means, stds
