"""``jb_top3``: JB-top-k with k = 3 (Juuti et al., "PRADA", EuroS&P 2019).

Each round, for every parent with black-box label ``y``, the substitute's ``targets``
(default 3) most likely classes other than ``y`` are found, and for each a targeted
iterative L-inf attack (``steps`` = 8 steps of ``alpha`` = 0.01 inside radius 0.1, clipped
to [0, 1]) moves the parent towards it: ``targets`` queries per parent. The periodic sign
flip of lambda does not apply (a targeted step has its direction from its target).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from stealguard._checks import check_int, check_number
from stealguard.attacks.augmentation import targeted_linf_steps, top_other_classes
from stealguard.attacks.jacobian import JacobianAttack


class JBTop3(JacobianAttack):
    """JB-top3: targeted steps towards the substitute's top non-label classes.

    Args:
        targets: classes targeted per parent (queries per parent), >= 1 (default 3); at
            most K - 1 are used.
        radius: L-inf radius of each targeted attack, > 0 (default 0.1).
        alpha: step of each iteration, > 0 (default 0.01).
        steps: iterations, >= 1 (default 8).
        **common: see :class:`~stealguard.attacks.jacobian.JacobianAttack`; ``step_size``
            and ``tau`` are not used by this attack.
    """

    name = "jb_top3"

    def __init__(self, *, targets: int = 3, radius: float = 0.1, alpha: float = 0.01, steps: int = 8, **common: Any) -> None:
        super().__init__(**common)
        self.targets = check_int("targets", targets, low=1)
        self.radius = check_number("radius", radius, low=0, low_inclusive=False)
        self.alpha = check_number("alpha", alpha, low=0, low_inclusive=False)
        self.steps = check_int("steps", steps, low=1)
        self.queries_per_parent = self.targets

    def augment(self, substitute: nn.Module, parents: Tensor, labels: Tensor, round_index: int) -> Tensor:
        if parents.shape[0] == 0:
            return parents
        with torch.no_grad():
            num_classes = int(substitute(parents[:1]).shape[1])
        k = min(self.targets, max(num_classes - 1, 0))
        if k == 0:
            return parents[:0]
        goals = top_other_classes(substitute, parents, labels, k)
        repeated = parents.repeat_interleave(k, dim=0)
        return targeted_linf_steps(substitute, repeated, goals.flatten(), radius=self.radius, step=self.alpha, steps=self.steps)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "targets": self.targets, "radius": self.radius, "alpha": self.alpha, "steps": self.steps}
