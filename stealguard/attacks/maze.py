"""``maze``: MAZE, data-free model stealing by zeroth-order gradient estimation (Kariyappa et al., CVPR 2021).

Disagreement and student loss are ``KL(V(x) || S(x))`` (Sec. 3), computed with ``xlogy``
so answers with exact zeros stay finite. After each iteration the student takes
``replay_steps`` extra steps on batches of past student queries and their answers
(experience replay, Sec. 3.3).

``variant="reference"`` follows ``src/attacks/maze.py`` of the authors' code: the generator
(``conv3_gen``) ends with ``BatchNorm2d(C, affine=True)`` before tanh and is trained by SGD
(momentum 0.9, weight decay 5e-4) with the cosine schedule; forward differences perturb its
pre-tanh output with the student in train mode; the first student step of an iteration
reuses the generator step's batch and answers (no new queries; an iteration costs
``B * ((student_steps - 1) + (m + 1) * generator_steps)``); only the last student batch of
an iteration enters the replay memory, which keeps everything (``replay_size=None``), and
each iteration's replay walks one shuffled pass over the memory in batches, repeated from
its start when it is shorter than ``replay_steps`` batches, stopping at a short batch.

``variant="stealguard"``: no final BatchNorm, pixel-space perturbations clipped to [0, 1],
Adam for the generator, every student batch remembered, at most ``replay_size`` pairs
(default 50,000) kept by reservoir sampling, replay batches drawn with replacement.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stealguard._checks import check_int
from stealguard.attacks.data_free import DataFreeAttack

STEALGUARD_REPLAY_SIZE = 50_000


def kl_divergence(answers: Tensor, student_logits: Tensor) -> Tensor:
    """``KL(y || softmax(z))`` per row, ``sum_k y_k (log y_k - log_softmax(z)_k)``; finite where ``y_k = 0``. ``(N,)``."""
    answers = answers.float()
    return (torch.xlogy(answers, answers) - answers * F.log_softmax(student_logits.float(), dim=1)).sum(dim=1)


class MAZE(DataFreeAttack):
    """MAZE: KL disagreement, forward-difference generator gradients, experience replay.

    Published defaults (``src/utils/config.py``): batch 128, student SGD lr 0.1, generator
    lr 1e-4 (SGD in the reference variant, Adam in ``"stealguard"``), 5 student steps and 1
    generator step per iteration, m = 10 directions, epsilon = 1e-3, latent 100, width 64,
    cosine learning rates, 10 replay steps per iteration.

    Args:
        replay_steps: replay steps per iteration, >= 0 (default 10).
        replay_size: most pairs in the replay memory, >= 1, or ``None`` (default: unbounded
            in the reference variant, 50,000 in ``"stealguard"``). With a bound, pairs are
            kept by reservoir sampling.
        **common: see :class:`~stealguard.attacks.data_free.DataFreeAttack` (``variant``).
    """

    name = "maze"
    variant_settings: ClassVar[dict[str, dict[str, Any]]] = {
        **DataFreeAttack.variant_settings,
        "reference": {
            "final_norm": "batchnorm_affine",
            "pre_tanh": True,
            "generator_optimizer": "sgd",
            "reuse_generator_batch": True,
            "student_train_in_estimate": True,
        },
    }
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

    def __init__(self, *, replay_steps: int = 10, replay_size: int | None = None, **common: Any) -> None:
        super().__init__(**common)
        self.replay_steps = check_int("replay_steps", replay_steps, low=0)
        if replay_size is None and self.variant == "stealguard":
            replay_size = STEALGUARD_REPLAY_SIZE
        self.replay_size = None if replay_size is None else check_int("replay_size", replay_size, low=1)
        self.reset()

    def reset(self) -> None:
        self._buffer_x: Tensor | None = None
        self._buffer_y: Tensor | None = None
        self._filled = 0
        self._seen = 0
        self._pending: tuple[Tensor, Tensor] | None = None
        self._reservoir = torch.Generator().manual_seed(self.seed + 3)

    def disagreement(self, student_logits: Tensor, answers: Tensor) -> Tensor:
        return kl_divergence(answers, student_logits)

    def student_loss(self, student_logits: Tensor, answers: Tensor) -> Tensor:
        return kl_divergence(answers, student_logits).mean()

    def remember(self, x: Tensor, answers: Tensor) -> None:
        x, answers = x.detach().cpu(), answers.detach().float().cpu()
        if self.variant == "reference":
            self._pending = (x, answers)  # only the iteration's last student batch is kept
            return
        self._store(x, answers)

    def _store(self, x: Tensor, answers: Tensor) -> None:
        """Add pairs to the memory: appended while there is room (growing it when unbounded), then reservoir sampling."""
        capacity = self.replay_size
        if capacity is None:
            capacity = self._filled + x.shape[0]
            images, targets = self._grow(capacity, x, answers)
        elif self._buffer_x is None or self._buffer_y is None:
            images = self._buffer_x = torch.empty(capacity, *x.shape[1:])
            targets = self._buffer_y = torch.empty(capacity, answers.shape[1])
        else:
            images, targets = self._buffer_x, self._buffer_y
        free = min(capacity - self._filled, x.shape[0])
        if free:
            images[self._filled : self._filled + free] = x[:free]
            targets[self._filled : self._filled + free] = answers[:free]
            self._filled += free
        rest = x.shape[0] - free
        if rest:
            seen = self._seen + free + torch.arange(1, rest + 1)
            slots = (torch.rand(rest, generator=self._reservoir) * seen).long()
            keep = slots < capacity
            images[slots[keep]] = x[free:][keep]
            targets[slots[keep]] = answers[free:][keep]
        self._seen += x.shape[0]

    def _grow(self, needed: int, x: Tensor, answers: Tensor) -> tuple[Tensor, Tensor]:
        """The unbounded memory's tensors, grown to hold at least ``needed`` pairs (capacity doubles)."""
        if self._buffer_x is not None and self._buffer_y is not None and needed <= self._buffer_x.shape[0]:
            return self._buffer_x, self._buffer_y
        current = 0 if self._buffer_x is None else self._buffer_x.shape[0]
        capacity = max(needed, 2 * current)
        images = torch.empty(capacity, *x.shape[1:])
        targets = torch.empty(capacity, answers.shape[1])
        if self._buffer_x is not None and self._buffer_y is not None:
            images[: self._filled] = self._buffer_x[: self._filled]
            targets[: self._filled] = self._buffer_y[: self._filled]
        self._buffer_x, self._buffer_y = images, targets
        return images, targets

    @property
    def replay_filled(self) -> int:
        """Pairs in the replay buffer now."""
        return self._filled

    def replay(self, student: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
        if self._pending is not None:
            self._store(*self._pending)
            self._pending = None
        if self._buffer_x is None or self._buffer_y is None or self._filled == 0:
            return
        for index in self.replay_batches(generator):
            self.fit_batch(student, optimizer, self._buffer_x[index].to(self.device), self._buffer_y[index].to(self.device))

    def replay_batches(self, generator: torch.Generator) -> list[Tensor]:
        """Indices into the memory of this iteration's replay batches (at most ``replay_steps``).

        Reference variant: one random permutation of the memory split into batches of
        ``batch_size``, cycled from its start, stopping before the first short batch
        (``itertools.cycle`` over a shuffled ``DataLoader`` in the authors' code).
        ``"stealguard"``: each batch drawn with replacement.
        """
        if self.variant == "reference":
            batches = list(torch.randperm(self._filled, generator=generator).split(self.batch_size))
            chosen = []
            for step in range(self.replay_steps):
                batch = batches[step % len(batches)]
                if batch.shape[0] < self.batch_size:
                    break
                chosen.append(batch)
            return chosen
        size = min(self.batch_size, self._filled)
        return [torch.randint(0, self._filled, (size,), generator=generator) for _ in range(self.replay_steps)]

    def params(self) -> dict[str, Any]:
        return {**super().params(), "replay_steps": self.replay_steps, "replay_size": self.replay_size}
