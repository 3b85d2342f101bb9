"""Pure tensor image transforms: ``resize`` and ``to_channels``.

Both take and return float images in ``[0, 1]`` of shape ``(N, C, H, W)``, keep device and
dtype, and never modify their input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

LUMA_601 = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights for R, G, B (they sum to 1, so gray -> RGB -> gray is exact)."""


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got shape {tuple(images.shape)}")
    if not images.dtype.is_floating_point:
        raise TypeError(f"images must be floating point in [0, 1], got dtype {images.dtype}")


def _check_positive_pair(name: str, value: Sequence[int]) -> tuple[int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (H, W) of integers, got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise TypeError(f"{name} must be a pair (H, W) of integers, got {value!r}")
    if min(value) < 1:
        raise ValueError(f"{name} entries must be >= 1, got {tuple(value)!r}")
    return int(value[0]), int(value[1])


def resize(images: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize to ``size = (H', W')``, antialiased when shrinking.

    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` with
    ``antialias=True`` when either side shrinks (a triangle filter as wide as the scale
    factor, as PIL does), so that downscaling does not alias. Output is clamped to ``[0, 1]``.

    Args:
        images: ``(N, C, H, W)`` float in ``[0, 1]``.
        size: ``(H', W')``, each >= 1.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H', W')``; the same tensor is returned when the size
        already matches.

    Raises:
        TypeError: images not a float tensor; size not a pair of ints.
        ValueError: images not 4-D; a size entry < 1.

    Example:
        >>> resize(torch.full((2, 3, 32, 32), 0.5), (8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """
    _check_images(images)
    height, width = _check_positive_pair("size", size)
    if tuple(images.shape[-2:]) == (height, width):
        return images
    if images.shape[0] == 0:
        return images.new_empty((0, images.shape[1], height, width))
    shrink = height < images.shape[-2] or width < images.shape[-1]
    out = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    return out.clamp_(0.0, 1.0)


def to_channels(images: Tensor, channels: int) -> Tensor:
    """Convert between gray (C = 1) and RGB (C = 3).

    Gray -> RGB repeats the channel; RGB -> gray is the ITU-R BT.601 luma
    ``Y = 0.299 R + 0.587 G + 0.114 B``.

    Args:
        images: ``(N, C, H, W)`` float in ``[0, 1]`` with C in {1, 3}.
        channels: 1 or 3.

    Shape:
        ``(N, C, H, W)`` -> ``(N, channels, H, W)``; the same tensor is returned when C already
        equals ``channels``.

    Raises:
        TypeError: images not a float tensor; channels not an int.
        ValueError: images not 4-D; C or ``channels`` not in {1, 3}.

    Example:
        >>> to_channels(torch.rand(2, 1, 4, 4), 3).shape
        torch.Size([2, 3, 4, 4])
    """
    _check_images(images)
    if isinstance(channels, bool) or not isinstance(channels, int):
        raise TypeError(f"channels must be an integer, got {channels!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    if have == 3:
        weights = torch.tensor(LUMA_601, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images * weights).sum(dim=1, keepdim=True).clamp_(0.0, 1.0)
    raise ValueError(f"can convert only 1- or 3-channel images, got C = {have}")
