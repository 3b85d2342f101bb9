"""``topk``: reveal only the k largest probabilities."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from stealguard._checks import check_int
from stealguard.defenses.base import Defense


class TopK(Defense):
    """Top-k truncation (Tramèr et al., "Stealing Machine Learning Models via Prediction
    APIs", USENIX Security 2016, "extraction countermeasures"; Orekondy et al., "Prediction Poisoning", ICLR 2020)::

        y~_i = y_i / sum_{j in T_k(y)} y_j   for i in T_k(y),   0 otherwise

    ``T_k(y)`` holds the indices of the k largest entries; ties at the k-th place go to the
    lower class index (stable sort), so exactly ``min(k, K)`` entries are kept and the choice
    does not depend on the batch. ``k >= K`` returns ``y``. Deterministic; rows independent.

    Args:
        k: number of classes revealed, an integer ``>= 1`` (default 5); ``k = 1`` gives a
            one-hot answer like ``label_only``.

    Argmax: always kept (ties aside: among equal maxima the lowest index).

    Shape:
        x: ``(N, ...)`` (unused); probs: ``(N, K)``; output ``(N, K)``, dtype and device of probs.

    Raises:
        ValueError: k < 1. TypeError: k is not an integer.

    Example:
        >>> import torch
        >>> from stealguard.defenses import create
        >>> create("topk", k=2)(torch.zeros(1, 1), torch.tensor([[0.5, 0.1, 0.3, 0.1]]))
        tensor([[0.6250, 0.0000, 0.3750, 0.0000]])
    """

    name = "topk"

    def __init__(self, *, k: int = 5) -> None:
        self.k = check_int("k", k, low=1)

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        if self.k >= probs.shape[1]:
            return probs
        order = torch.sort(probs, dim=1, descending=True, stable=True).indices[:, : self.k]
        kept = torch.zeros_like(probs).scatter(1, order, probs.gather(1, order))
        return kept / kept.sum(dim=1, keepdim=True)

    def params(self) -> dict[str, Any]:
        return {"k": self.k}

    def argmax_threshold(self) -> float | None:
        """0.0: every row keeps its argmax."""
        return 0.0
