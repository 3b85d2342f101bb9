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


CHEAP_SETTINGS: dict[str, dict[str, Any]] = {
    "knockoff": {"epochs": 1, "batch_size": 16},
    "jbda": {"epochs": 1, "round_epochs": 1, "seed_size": 8, "max_rounds": 5},
    "jb_self": {"epochs": 1, "round_epochs": 1, "seed_size": 8, "max_rounds": 5},
    "jb_top3": {"epochs": 1, "round_epochs": 1, "seed_size": 8, "max_rounds": 5, "steps": 1},
    "dfme": {"batch_size": 8, "student_steps": 1, "generator_steps": 1, "directions": 1},
    "maze": {"batch_size": 8, "student_steps": 1, "generator_steps": 1, "directions": 1, "replay_steps": 1},
    "art_knockoff": {"epochs": 1, "batch_size": 16},
    "art_copycat": {"epochs": 1, "batch_size": 16},
}
"""The cheapest settings of every registered attack, for tests that run them all (a test checks the table is complete)."""

