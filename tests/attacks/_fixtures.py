"""Tiny victims, images and a recording black box shared by the attack tests."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from stealguard import models
from stealguard.blackbox import BlackBox

SHAPE = (1, 8, 8)
K = 10


class RecordingBlackBox(BlackBox):
    """A black box that keeps every query batch it answered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[Tensor] = []

    def query(self, x: Tensor) -> Tensor:
        answer = super().query(x)
        self.batches.append(x.clone())
        return answer

    def sent(self) -> Tensor:
        return torch.cat(self.batches) if self.batches else torch.zeros(0, *self.input_shape)


def random_victim(seed: int = 0, arch: str = "mlp") -> models.Classifier:
    torch.manual_seed(seed)
    return models.create(arch, input_shape=SHAPE, num_classes=K).eval()


def images(n: int, seed: int = 1) -> Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))
