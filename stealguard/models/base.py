"""``Classifier``: the module every victim, replica and surrogate is.

Inputs are images in pixel space ``[0, 1]`` with shape ``(N, *input_shape)``; the
classifier normalises them with its stored mean/std and returns logits ``(N, K)``.
Keeping normalisation inside the model lets attacks work (and clip) in pixel space.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class Classifier(nn.Module):
    """Per-channel normalisation followed by a network that ends in an ``nn.Linear``.

    Args:
        net: maps normalised ``(N, *input_shape)`` to logits ``(N, num_classes)``.
        input_shape: ``(C, H, W)`` of one input.
        num_classes: K >= 2.
        mean, std: per-channel normalisation (length C); defaults 0 and 1.

    Shape:
        input ``(N, C, H, W)`` float in [0, 1]; output logits ``(N, K)``.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        channels = self.input_shape[0]
        mean_t = torch.as_tensor(mean if mean is not None else [0.0] * channels, dtype=torch.float32)
        std_t = torch.as_tensor(std if std is not None else [1.0] * channels, dtype=torch.float32)
        if mean_t.numel() != channels or std_t.numel() != channels:
            raise ValueError(f"mean and std must have {channels} entries (one per channel), got {mean_t.numel()} and {std_t.numel()}")
        if bool((std_t <= 0).any()):
            raise ValueError(f"std entries must be > 0, got {std_t.tolist()}")
        view = (1, channels) + (1,) * (len(self.input_shape) - 1)
        self.register_buffer("mean", mean_t.view(view))
        self.register_buffer("std", std_t.view(view))

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std)
