"""``dfme``: Data-Free Model Extraction (Truong et al., CVPR 2021, arXiv:2011.14779).

Disagreement and student loss are the l1 distance between logits (Sec. 3.3): the victim's
logits are recovered from its probabilities as ``log p`` centred per row
(:func:`~stealguard.attacks.zeroth_order.recover_logits`, clamped so a defense's zeros stay
finite), and the student's logits are centred the same way (softmax is blind to the
constant, so this only removes a degree of freedom the target cannot pin down).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from stealguard.attacks.data_free import DataFreeAttack
from stealguard.attacks.zeroth_order import recover_logits


def _centred(logits: Tensor) -> Tensor:
    logits = logits.float()
    return logits - logits.mean(dim=1, keepdim=True)


class DFME(DataFreeAttack):
    """DFME: l1 on recovered logits, forward-difference generator gradients.

    Published defaults (the paper's CIFAR-10 setting, Sec. 4 and its code): batch 256,
    student SGD lr 0.1, generator Adam lr 1e-4, 5 student steps and 1 generator step per
    iteration, m = 1 direction, epsilon = 1e-3, latent 256, width 64, learning rates x0.3 at
    10/30/50% of the run. Parameters: see :class:`~stealguard.attacks.data_free.DataFreeAttack`.
    """

    name = "dfme"
    defaults: ClassVar[dict[str, Any]] = {
        "batch_size": 256,
        "student_lr": 0.1,
        "generator_lr": 1e-4,
        "student_steps": 5,
        "generator_steps": 1,
        "directions": 1,
        "smoothing": 1e-3,
        "latent_dim": 256,
        "generator_width": 64,
        "schedule": "step",
    }

    def disagreement(self, student_logits: Tensor, answers: Tensor) -> Tensor:
        return (_centred(student_logits) - recover_logits(answers)).abs().mean(dim=1)

    def student_loss(self, student_logits: Tensor, answers: Tensor) -> Tensor:
        return self.disagreement(student_logits, answers).mean()
