"""``resnet9`` / ``resnet9_w64``: the compact DAWNBench ResNet-9, built for CIFAR's 32x32 inputs.

Page, "How to Train Your ResNet" (Myrtle.ai, 2018), the network that trained CIFAR-10 to 94%
in the DAWNBench competition; He, Zhang, Ren, Sun, "Deep Residual Learning for Image
Recognition", CVPR 2016 (arXiv:1512.03385) for the residual blocks. With base width ``w``::

    prep    conv3x3(C -> w) BN ReLU                                    32x32
    layer1  conv3x3(w -> 2w) BN ReLU, max-pool 2                       16x16
            + residual (conv3x3(2w -> 2w) BN ReLU) x 2
    layer2  conv3x3(2w -> 4w) BN ReLU, max-pool 2                      8x8
    layer3  conv3x3(4w -> 8w) BN ReLU, max-pool 2                      4x4
            + residual (conv3x3(8w -> 8w) BN ReLU) x 2
    head    global max-pool, features x 0.125, linear 8w -> K

``resnet9`` is half width (``w = 32``, 1.6 M parameters, a quarter of the compute: the CPU
victim); ``resnet9_w64`` is the original (``w = 64``, 6.6 M parameters). Page's 0.125 output
scale is applied to the features *before* the final ``nn.Linear``, so the last linear layer
still produces the logits (the contract of :mod:`stealguard.models.registry`).

Convolution weights and activations are kept in ``channels_last`` memory format: on CPU
(oneDNN) a training step of the half-width net takes about 30% less time (measured at 1
thread, batch 512). Saved weights are contiguous as always; loading copies them back into
the ``channels_last`` parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stealguard._checks import check_int

HALF_WIDTH = 32
FULL_WIDTH = 64
FEATURE_SCALE = 0.125
MIN_SIDE = 8


def _require_min_side(arch: str, input_shape: tuple[int, int, int]) -> None:
    if min(input_shape[1:]) < MIN_SIDE:
        raise ValueError(
            f"{arch} halves the image three times and needs H and W >= {MIN_SIDE}, got input_shape {input_shape}"
        )


def _conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """``x + body(x)`` with ``body`` two conv-BN-ReLU layers of ``channels`` channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels), _conv_bn(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """DAWNBench ResNet-9 of base width ``width``; ``fc`` is the last module in ``.modules()``."""

    def __init__(self, in_channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.prep = _conv_bn(in_channels, width)
        self.layer1 = nn.Sequential(_conv_bn(width, 2 * width), nn.MaxPool2d(2), Residual(2 * width))
        self.layer2 = nn.Sequential(_conv_bn(2 * width, 4 * width), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(_conv_bn(4 * width, 8 * width), nn.MaxPool2d(2), Residual(8 * width))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8 * width, num_classes)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        out = self.prep(x.contiguous(memory_format=torch.channels_last))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(self.flatten(self.pool(out)) * FEATURE_SCALE)


def build_resnet9(input_shape: tuple[int, int, int], num_classes: int, *, width: int = HALF_WIDTH) -> nn.Module:
    """ResNet-9 of base width ``width`` for ``(C, H, W)`` inputs (built for CIFAR's 32x32).

    Args:
        input_shape: ``(C, H, W)``, any C, H and W >= 8 (three 2x max-pools, then a global one).
        num_classes: K >= 2 (checked by :func:`stealguard.models.create`).
        width: channels of the first layer, >= 1 (default 32, half the DAWNBench width);
            the stages have ``w, 2w, 4w, 8w`` channels.

    Shape:
        input ``(N, C, H, W)``; output logits ``(N, K)``.

    Raises:
        ValueError: H or W < 8; width < 1.
        TypeError: width not an integer.

    Example:
        >>> import torch
        >>> build_resnet9((3, 32, 32), 10).eval()(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    check_int("width", width, low=1)
    _require_min_side("resnet9", input_shape)
    return ResNet9(input_shape[0], num_classes, width)


def build_resnet9_w64(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The original DAWNBench ResNet-9 (base width 64) ; see :func:`build_resnet9`."""
    _require_min_side("resnet9_w64", input_shape)
    return ResNet9(input_shape[0], num_classes, FULL_WIDTH)
