"""``vgg16_bn``: VGG-16 with BatchNorm, CIFAR-sized (32x32 in, one linear layer 512 -> K).

Simonyan, Zisserman. "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (arXiv:1409.1556), configuration D, with BatchNorm after every
convolution and the single-linear classifier of common CIFAR code (five max-pools take
32x32 to 1x1x512).
"""

from __future__ import annotations

from torch import nn

from stealguard.models._shapes import require_side

CONFIG_D: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def build_vgg16_bn(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """VGG-16-BN for ``(C, 32, 32)`` inputs, any channel count C.

    Shape:
        input ``(N, C, 32, 32)``; output logits ``(N, K)``.

    Raises:
        ValueError: H or W is not 32.
    """
    require_side("vgg16_bn", input_shape, 32)
    layers: list[nn.Module] = []
    in_channels = input_shape[0]
    for item in CONFIG_D:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            out_channels = int(item)
            layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
            in_channels = out_channels
    layers += [nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)
