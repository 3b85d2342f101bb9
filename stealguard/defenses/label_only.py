"""``label_only``: answer with the predicted label alone."""

from __future__ import annotations

import torch
from torch import Tensor

from stealguard.defenses.base import Defense


def first_maximum(probs: Tensor) -> Tensor:
    """One-hot ``(N, K)`` of each row's first maximum (``torch.argmax``), in ``probs``' dtype."""
    return torch.zeros_like(probs).scatter_(1, probs.argmax(dim=1, keepdim=True), 1.0)


class LabelOnly(Defense):
    """Label-only answers (Tramèr et al., "Stealing Machine Learning Models via Prediction
    APIs", USENIX Security 2016, "extraction countermeasures")::

        y~ = onehot(argmax_i y_i)

    Among equal maxima the lowest class index wins. Deterministic; rows independent. The
    strongest truncation: the attacker learns nothing beyond the label. Computed in the
    input's dtype as ``floor(y / max(y))`` (exactly 1 at the maximum, 0 below it: arithmetic,
    which torch vectorises better on the CPU than a comparison; every row then holds at least one 1,
    so the batch has tied maxima exactly when the total exceeds N); single rows and batches with
    tied maxima take ``torch.argmax`` (first maximum) instead.

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
        if probs.shape[0] == 1:
            return first_maximum(probs)
        onehot = probs.div(probs.amax(dim=1, keepdim=True)).floor_()
        if float(onehot.sum()) > probs.shape[0]:
            return first_maximum(probs)
        return onehot

    def argmax_threshold(self) -> float | None:
        """0.0: every row keeps its argmax."""
        return 0.0
