"""``jbda``: Jacobian-based dataset augmentation (Papernot et al., AsiaCCS 2017).

Each round every parent ``x`` with black-box label ``y = argmax y~`` yields one new query
``clip_[0,1](x + lambda_rho * sign(grad_x CE(F_A(x), y)))`` (the form used by Orekondy et
al.'s reference implementation; the sign of ``lambda_rho`` alternates every tau rounds).
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from stealguard.attacks.augmentation import jacobian_step
from stealguard.attacks.jacobian import JacobianAttack


class JBDA(JacobianAttack):
    """JBDA: one signed-gradient step per parent and round, away from the loss minimum.

    Parameters: see :class:`~stealguard.attacks.jacobian.JacobianAttack` (seed set, lambda,
    tau, kappa, sigma, round and final training) and
    :class:`~stealguard.attacks.replica.ReplicaAttack` (query set, replica, evasion variants).
    """

    name = "jbda"
    direction: ClassVar[float] = 1.0
    """Sign of the step relative to ``+sign(grad CE)``: +1 for JBDA, -1 for JB-self."""

    def augment(self, substitute: nn.Module, parents: Tensor, labels: Tensor, round_index: int) -> Tensor:
        return jacobian_step(substitute, parents, labels, self.direction * self.round_step(round_index))
