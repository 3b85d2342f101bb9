"""``resnet18``: ResNet-18, CIFAR-sized (3x3 stem, stride 1, no initial max-pool).

He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385), with the CIFAR stem of common CIFAR code: 3x3 conv(64) -> BN -> ReLU,
four stages of two basic blocks (64, 128, 256, 512 channels; strides 1, 2, 2, 2),
global average pooling of the 4x4 map, linear 512 -> K.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stealguard.models._shapes import require_side


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18; ``fc`` is registered last so it is the last module in ``.modules()``."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages: list[nn.Module] = []
        channels = 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(BasicBlock(channels, width, stride), BasicBlock(width, width, 1)))
            channels = width
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        return self.fc(self.flatten(self.pool(out)))


def build_resnet18(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """ResNet-18 for ``(C, 32, 32)`` inputs, any channel count C.

    Shape:
        input ``(N, C, 32, 32)``; output logits ``(N, K)``.

    Raises:
        ValueError: H or W is not 32.
    """
    require_side("resnet18", input_shape, 32)
    return ResNet18(input_shape[0], num_classes)
