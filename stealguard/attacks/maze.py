"""``maze``: MAZE, data-free model stealing by zeroth-order gradient estimation (Kariyappa et al., CVPR 2021).

Disagreement and student loss are ``KL(V(x) || S(x))`` (Sec. 3), computed with ``xlogy``
so answers with exact zeros stay finite. After each iteration the student takes
``replay_steps`` extra steps on batches drawn from a replay buffer of past student queries
and their answers (experience replay, Sec. 3.3). The buffer keeps at most ``replay_size``
pairs, chosen by reservoir sampling so that every past query is equally likely to be in it
(the paper stores all; a bound keeps memory finite at millions of queries).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stealguard._checks import check_int
from stealguard.attacks.data_free import DataFreeAttack


def kl_divergence(answers: Tensor, student_logits: Tensor) -> Tensor:
    """``KL(y || softmax(z))`` per row, ``sum_k y_k (log y_k - log_softmax(z)_k)``; finite where ``y_k = 0``. ``(N,)``."""
    answers = answers.float()
    return (torch.xlogy(answers, answers) - answers * F.log_softmax(student_logits.float(), dim=1)).sum(dim=1)


class MAZE(DataFreeAttack):
    """MAZE: KL disagreement, forward-difference generator gradients, experience replay.

    Published defaults: batch 128, student SGD lr 0.1, generator Adam lr 1e-4, 5 student
    steps and 1 generator step per iteration, m = 10 directions, epsilon = 1e-3, latent 100,
    width 64, cosine learning rates, 10 replay steps per iteration.

    Args:
        replay_steps: replay steps per iteration, >= 0 (default 10).
        replay_size: most pairs in the replay buffer, >= 1 (default 50,000).
        **common: see :class:`~stealguard.attacks.data_free.DataFreeAttack`.
    """

    name = "maze"
    defaults: ClassVar[dict[str, Any]] = {
        "batch_size": 128,
        "student_lr": 0.1,
        "generator_lr": 1e-4,
        "student_steps": 5,
        "generator_steps": 1,
        "directions": 10,
        "smoothing": 1e-3,
        "latent_dim": 100,
        "generator_width": 64,
        "schedule": "cosine",
    }

    def __init__(self, *, replay_steps: int = 10, replay_size: int = 50_000, **common: Any) -> None:
        super().__init__(**common)
        self.replay_steps = check_int("replay_steps", replay_steps, low=0)
        self.replay_size = check_int("replay_size", replay_size, low=1)
        self.reset()

    def reset(self) -> None:
        self._buffer_x: Tensor | None = None
        self._buffer_y: Tensor | None = None
        self._filled = 0
        self._seen = 0
        self._reservoir = torch.Generator().manual_seed(self.seed + 3)

    def disagreement(self, student_logits: Tensor, answers: Tensor) -> Tensor:
        return kl_divergence(answers, student_logits)

    def student_loss(self, student_logits: Tensor, answers: Tensor) -> Tensor:
        return kl_divergence(answers, student_logits).mean()

    def remember(self, x: Tensor, answers: Tensor) -> None:
        x, answers = x.detach().cpu(), answers.detach().float().cpu()
        if self._buffer_x is None or self._buffer_y is None:
            self._buffer_x = torch.empty(self.replay_size, *x.shape[1:])
            self._buffer_y = torch.empty(self.replay_size, answers.shape[1])
        images, targets = self._buffer_x, self._buffer_y
        free = min(self.replay_size - self._filled, x.shape[0])
        if free:
            images[self._filled : self._filled + free] = x[:free]
            targets[self._filled : self._filled + free] = answers[:free]
            self._filled += free
        rest = x.shape[0] - free
        if rest:
            seen = self._seen + free + torch.arange(1, rest + 1)
            slots = (torch.rand(rest, generator=self._reservoir) * seen).long()
            keep = slots < self.replay_size
            images[slots[keep]] = x[free:][keep]
            targets[slots[keep]] = answers[free:][keep]
        self._seen += x.shape[0]

    @property
    def replay_filled(self) -> int:
        """Pairs in the replay buffer now."""
        return self._filled

    def replay(self, student: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
        if self._buffer_x is None or self._buffer_y is None or self._filled == 0:
            return
        for _ in range(self.replay_steps):
            index = torch.randint(0, self._filled, (min(self.batch_size, self._filled),), generator=generator)
            self.fit_batch(student, optimizer, self._buffer_x[index].to(self.device), self._buffer_y[index].to(self.device))

    def params(self) -> dict[str, Any]:
        return {**super().params(), "replay_steps": self.replay_steps, "replay_size": self.replay_size}
