"""``dfme``: Data-Free Model Extraction (Truong et al., CVPR 2021, arXiv:2011.14779).

Disagreement and student loss are the l1 distance between logits (Sec. 3.3): the victim's
logits are recovered from its probabilities as ``log p`` centred per row
(:func:`~stealguard.attacks.zeroth_order.recover_logits`, clamped so a defense's zeros stay
finite; the reference's ``logit_correction="mean"``) and compared with the student's raw logits,
as the reference code does (``dfme/train.py``, ``approximate_gradients.py``). ``variant="stealguard"``
(this project's earlier version) centres the student's logits the same way (softmax is blind to
the constant, so the student need not learn the victim's centring).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from stealguard.attacks.data_free import DataFreeAttack
from stealguard.attacks.zeroth_order import recover_logits


def _centred(logits: Tensor) -> Tensor:
    return logits - logits.mean(dim=1, keepdim=True)


class DFME(DataFreeAttack):
    """DFME: l1 on recovered logits, forward-difference generator gradients.

    Published defaults (the paper's CIFAR-10 setting, Sec. 4 and its code): batch 256,
    student SGD lr 0.1, generator Adam lr 1e-4, 5 student steps and 1 generator step per
    iteration, m = 1 direction, epsilon = 1e-3, latent 256, width 64, learning rates x0.3 at
    10/30/50% of the run. Parameters: see :class:`~stealguard.attacks.data_free.DataFreeAttack`.
    """

    name = "dfme"
    variant_settings: ClassVar[dict[str, dict[str, Any]]] = {
        variant: {**settings, "centre_student_logits": variant == "stealguard"}
        for variant, settings in DataFreeAttack.variant_settings.items()
    }
    """The base class's per-variant settings, plus whether the student's logits are centred per row
    before the l1 distance (``"stealguard"`` only; the reference compares raw student logits)."""
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
        """``mean_k |s_k - t_k|`` per row ``(N,)``: ``s`` the student's logits (centred for ``variant="stealguard"``),
        ``t`` the victim's recovered logits."""
        student = student_logits.float()
        if self.settings["centre_student_logits"]:
            student = _centred(student)
        return (student - recover_logits(answers)).abs().mean(dim=1)

    def student_loss(self, student_logits: Tensor, answers: Tensor) -> Tensor:
        return self.disagreement(student_logits, answers).mean()
