"""The paper's angular deviation, measured on the attacker's own model while it trains.

Orekondy et al., "Prediction Poisoning" (ICLR 2020, arXiv:1906.10908), Sec. 4 and Fig. 3:
the angle between the gradient the attacker follows when training on the defended answers,
``-G^T y~``, and the one it would follow on the clean posteriors, ``-G^T y``, with
``G = d log F_A(x; w) / dw`` of the attacker's model ``F_A`` at its current weights.

:class:`AngleProbe` holds a probe set (some of the attack's own training inputs with their
clean and defended targets) and records the per-sample angles at the start of every
training epoch and after the last one. It hooks the replica's forward pass (a forward
pre-hook counts training batches), so it needs no change to the training loop; each
measurement runs the replica in eval mode and restores its mode. The clean posteriors come
from the black box's model directly: a measurement, never shown to the attack, and not
counted as queries.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any, Self

import torch
from torch import Tensor, nn

from stealguard.defenses.jacobian import gradient_angles


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps in one epoch of :func:`stealguard.models.training.fit` (a trailing batch of one joins the previous)."""
    chunks = -(-n // batch_size)
    return chunks - 1 if chunks > 1 and n % batch_size == 1 else chunks


class AngleProbe:
    """Context manager recording the attacker-model angular deviation during one ``fit``.

    Args:
        replica: the model being trained.
        x: probe inputs ``(P, ...)``.
        clean: targets from the clean posteriors ``(P, K)`` (posteriors or one-hot labels).
        used: the targets the replica trains on for the same inputs ``(P, K)``.
        steps: optimiser steps per epoch of the training run.
        device: where the replica lives.
        jacobian: ``"full"`` (default, all parameters) or ``"last_layer"``.

    After exit, :attr:`history` lists ``{"epoch", "mean_deg", "median_deg"}`` for epochs
    0 (the initial weights) to the last.
    """

    def __init__(
        self, replica: nn.Module, x: Tensor, clean: Tensor, used: Tensor, *, steps: int, device: torch.device, jacobian: str = "full"
    ) -> None:
        self.replica = replica
        self.x, self.clean, self.used = x.to(device, torch.float32), clean.to(device), used.to(device)
        self.steps = max(steps, 1)
        self.jacobian = jacobian
        self.history: list[dict[str, Any]] = []
        self._calls = 0
        self._busy = False
        self._handle: Any = None

    def measure(self, epoch: int) -> None:
        """Record the angles under the replica's current weights as ``epoch``."""
        self._busy = True
        was_training = self.replica.training
        self.replica.eval()
        try:
            angles = gradient_angles(self.replica, self.x, self.clean, self.used, jacobian=self.jacobian)
        finally:
            self.replica.train(was_training)
            self._busy = False
        degrees = angles.float() * (180.0 / math.pi)
        self.history.append(
            {"epoch": epoch, "mean_deg": round(float(degrees.mean()), 4), "median_deg": round(float(degrees.median()), 4)}
        )

    def _hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self._busy or not module.training:
            return
        if self._calls % self.steps == 0:
            self.measure(self._calls // self.steps)
        self._calls += 1

    def __enter__(self) -> Self:
        self._handle = self.replica.register_forward_pre_hook(self._hook)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._handle.remove()
        if exc_type is None:
            self.measure(-(-self._calls // self.steps))
