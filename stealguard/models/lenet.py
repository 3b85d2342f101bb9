"""``lenet``: the LeNet-5 variant used for MNIST victims in MAD.

Orekondy, Schiele, Fritz. "Prediction Poisoning: Towards Defenses Against DNN Model
Stealing Attacks", ICLR 2020 (arXiv:1906.10908), and their knockoffnets code:
conv(20, 5x5) -> ReLU -> maxpool 2 -> conv(50, 5x5) -> ReLU -> maxpool 2 -> fc 500 -> ReLU -> fc K.
No padding; the flatten size follows the input (800 for 28x28, 1250 for 32x32).

The convolutions run in ``channels_last`` memory format (weights converted once, the input on
entry, like ``resnet9``), which oneDNN runs faster on CPU: the Knockoff cells of
``benchmarks/configs/paper-mnist-knockoff.toml`` (50,000 queries, 10 replica epochs, one thread)
took 165-272 s with it and 295-329 s before (``elapsed_s`` in ``benchmarks/results/paper``).
The layer sequence, its outputs (up to float rounding) and the saved weights (always
contiguous NCHW in the file) are the same.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MIN_SIDE = 16


def _side_after(side: int) -> int:
    """Spatial size after conv5 -> pool2 -> conv5 -> pool2 (no padding, floor pooling)."""
    return ((side - 4) // 2 - 4) // 2


class LeNet(nn.Sequential):
    """The layer sequence of :func:`build_lenet`, fed its input in ``channels_last`` memory format."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.contiguous(memory_format=torch.channels_last))


def build_lenet(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """LeNet-5 for any channel count and H, W >= 16 (28x28 MNIST, 32x32 CIFAR).

    Shape:
        input ``(N, C, H, W)``; output logits ``(N, K)``.

    Raises:
        ValueError: H or W below 16 (two unpadded 5x5 convolutions and two 2x2 pools
            leave nothing of the image).
    """
    channels, height, width = input_shape
    if height < MIN_SIDE or width < MIN_SIDE:
        raise ValueError(
            f"lenet needs H and W >= {MIN_SIDE} (two unpadded 5x5 convolutions and two 2x2 max-pools), "
            f"got input_shape {input_shape}; use 'mlp' for small inputs such as 1x8x8 digits"
        )
    flat = 50 * _side_after(height) * _side_after(width)
    net = LeNet(
        nn.Conv2d(channels, 20, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(20, 50, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, 500),
        nn.ReLU(),
        nn.Linear(500, num_classes),
    )
    return net.to(memory_format=torch.channels_last)
