"""``label_only``: answer with the predicted label alone."""

from __future__ import annotations

import torch
from torch import Tensor

from stealguard.defenses.base import Defense


class LabelOnly(Defense):
    """Label-only answers (Tramèr et al., "Stealing Machine Learning Models via Prediction
    APIs", USENIX Security 2016, "extraction countermeasures")::

        y~ = onehot(argmax_i y_i)

    Among equal maxima the lowest class index wins. Deterministic; rows independent. The
    strongest truncation: the attacker learns nothing beyond the label. Computed in the
    input's dtype as ``floor(y / max(y))`` (exactly 1 at the maximum, 0 below it: arithmetic,
    which torch vectorises better on the CPU than a comparison); batches with tied maxima take
    ``torch.argmax`` (first maximum) instead.

    Argmax: always kept.

    Shape:
        x: ``(N, ...)`` (unused); probs: ``(N, K)``; output ``(N, K)``, dtype and device of probs.

    Example:
        >>> import torch
        >>> from stealguard.defenses import create
        >>> create("label_only")(torch.zeros(1, 1), torch.tensor([[0.2, 0.5, 0.3]]))
        tensor([[0., 1., 0.]])
    """

    name = "label_only"
    compute_dtype = None
    scale_invariant = True
    output_on_simplex = True

    def __init__(self) -> None:
        pass

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        onehot = probs.div(probs.amax(dim=1, keepdim=True)).floor_()
        if float(onehot.sum(dim=1).amax()) > 1:
            return torch.zeros_like(probs).scatter_(1, probs.argmax(dim=1, keepdim=True), 1.0)
        return onehot

    def argmax_threshold(self) -> float | None:
        """0.0: every row keeps its argmax."""
        return 0.0
