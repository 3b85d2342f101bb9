"""``mlp``: flatten -> 256 -> 256 -> K with ReLU; takes any input shape (meant for 1x8x8 digits)."""

from __future__ import annotations

from torch import nn

HIDDEN = 256


def build_mlp(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Two hidden layers of 256 ReLU units on the flattened input.

    Shape:
        input ``(N, C, H, W)``; output logits ``(N, K)``.
    """
    channels, height, width = input_shape
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(channels * height * width, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, num_classes),
    )
