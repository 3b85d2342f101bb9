"""``none``: the undefended API, returning the clean posterior unchanged."""

from __future__ import annotations

from torch import Tensor

from stealguard.defenses.base import Defense


class NoDefense(Defense):
    """Identity defense: ``defense(x, y) == y``. The reference point of every comparison."""

    name = "none"

    def __init__(self) -> None:
        pass

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        return probs
