"""``jb_top3``: JB-top-k with k = 3 (Juuti et al., "PRADA", EuroS&P 2019).

Each round, for every parent with black-box label ``y``, the substitute's ``targets``
(default 3) most likely classes other than ``y`` are found, and for each a targeted
iterative L-inf attack moves the parent towards it: ``targets`` queries per parent.

``step="reference"`` (default; Orekondy et al.'s ``pgd_linf_targ``): from ``delta = 0``,
``steps`` = 8 times ``delta <- clip_[-r, r](delta + alpha * sign(grad_delta F_A(x + delta)_t))``,
an ascent on the target's *logit*, ``alpha`` = 0.01, ``r`` = 0.1, and the query is
``x + delta`` with no clipping to the pixel range. ``step="stealguard"``: a descent on the
cross-entropy to the target, projected to the L-inf ball and to [0, 1] after every step
(:func:`~stealguard.attacks.augmentation.targeted_linf_steps`). The periodic sign flip of
lambda does not apply (a targeted step has its direction from its target).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from stealguard._checks import check_choice, check_int, check_number
from stealguard.attacks.augmentation import targeted_linf_steps, top_other_classes
from stealguard.attacks.jacobian import JacobianAttack

STEPS = ("reference", "stealguard")
CHUNK = 512


def logit_ascent_steps(model: nn.Module, x: Tensor, targets: Tensor, *, radius: float, step: float, steps: int) -> Tensor:
    """``x + delta`` after ``steps`` signed ascent steps on the target logit inside the L-inf ball of ``radius``.

    The reference's JB-top-k step: no clipping to [0, 1]. ``model`` runs in eval mode, the
    logits are summed over the batch (each row's step depends on that row alone).

    Shape:
        x: ``(N, C, H, W)``; targets: int64 ``(N,)``; returns ``(N, C, H, W)`` within ``radius`` of ``x``.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = torch.empty_like(x)
    try:
        for start in range(0, x.shape[0], CHUNK):
            origin = x[start : start + CHUNK].to(device)
            target = targets[start : start + CHUNK].to(device).unsqueeze(1)
            delta = torch.zeros_like(origin)
            for _ in range(steps):
                with torch.enable_grad():
                    delta.requires_grad_(True)
                    gain = model(origin + delta).gather(1, target).sum()
                    (grad,) = torch.autograd.grad(gain, delta)
                delta = (delta.detach() + step * grad.sign()).clamp(-radius, radius)
            out[start : start + CHUNK] = (origin + delta).to(x.device)
    finally:
        model.train(was_training)
    return out


class JBTop3(JacobianAttack):
    """JB-top3: targeted steps towards the substitute's top non-label classes.

    Args:
        targets: classes targeted per parent (queries per parent), >= 1 (default 3); at
            most K - 1 are used.
        radius: L-inf radius of each targeted attack, > 0 (default 0.1).
        alpha: step of each iteration, > 0 (default 0.01).
        steps: iterations, >= 1 (default 8).
        step: ``"reference"`` (default: logit ascent, no pixel clipping) or ``"stealguard"``
            (cross-entropy descent clipped to [0, 1]); see the module docstring.
        **common: see :class:`~stealguard.attacks.jacobian.JacobianAttack`; ``step_size``
            and ``tau`` are not used by this attack.
    """

    name = "jb_top3"

    def __init__(
        self, *, targets: int = 3, radius: float = 0.1, alpha: float = 0.01, steps: int = 8, step: str = "reference", **common: Any
    ) -> None:
        super().__init__(**common)
        self.step = check_choice("step", step, STEPS)
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
        if self.step == "reference":
            return logit_ascent_steps(substitute, repeated, goals.flatten(), radius=self.radius, step=self.alpha, steps=self.steps)
        return targeted_linf_steps(substitute, repeated, goals.flatten(), radius=self.radius, step=self.alpha, steps=self.steps)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "targets": self.targets, "radius": self.radius, "alpha": self.alpha, "steps": self.steps,
                "step": self.step}
