"""``topk``: reveal only the k largest probabilities."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from stealguard._checks import check_int
from stealguard.defenses.base import Defense


def first_ties(mask: Tensor, count: Tensor) -> Tensor:
    """Keep, in each row of the boolean ``(N, K)`` ``mask``, only its first ``count`` (``(N, 1)``) True entries."""
    return mask & (mask.cumsum(dim=1) <= count)


def top_k_mask(values: Tensor, k: int) -> Tensor:
    """Mask ``(N, K)`` of the ``k`` largest entries of each row, ties at the cut to the lower index.

    ``torch.topk`` finds the k-th and (k+1)-th largest value of every row (a partial selection,
    no full sort); rows where they differ keep the entries ``>=`` the k-th, computed as
    ``min(floor(v / cut), 1)`` (arithmetic, which torch vectorises better on the CPU than a
    comparison; a cut of 0 keeps every entry). Rows with a tie at the cut (only those) take,
    among the entries equal to it, the first by class index.

    Shape:
        values: ``(N, K)`` finite and ``>= 0``, ``1 <= k < K``; returns ``(N, K)`` of 0.0 and 1.0
        in ``values``' dtype.
    """
    top = values.topk(k + 1, dim=1).values
    cut = top[:, k - 1 : k]
    mask = values.div(cut.clamp_min(torch.finfo(values.dtype).tiny)).floor_().clamp_max_(1)
    tied = (top[:, k] == cut[:, 0]).nonzero().squeeze(1)
    if tied.numel():
        rows, cuts = values[tied], cut[tied]
        above = rows > cuts
        count = k - above.sum(dim=1, keepdim=True)
        mask[tied] = (above | first_ties(rows == cuts, count)).to(values.dtype)
    return mask


class TopK(Defense):
    """Top-k truncation (Tramèr et al., "Stealing Machine Learning Models via Prediction
    APIs", USENIX Security 2016, "extraction countermeasures"; Orekondy et al., "Prediction Poisoning", ICLR 2020)::

        y~_i = y_i / sum_{j in T_k(y)} y_j   for i in T_k(y),   0 otherwise

    ``T_k(y)`` holds the indices of the k largest entries; ties at the k-th place go to the
    lower class index, so exactly ``min(k, K)`` entries are kept and the choice does not
    depend on the batch. ``k >= K`` returns ``y``. Deterministic; rows independent. A partial
    selection (:func:`top_k_mask`), in the input's dtype.

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
    compute_dtype = None
    scale_invariant = True
    output_on_simplex = True

    def __init__(self, *, k: int = 5) -> None:
        self.k = check_int("k", k, low=1)

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        if self.k >= probs.shape[1]:
            return probs / probs.sum(dim=1, keepdim=True)
        kept = probs * top_k_mask(probs, self.k)
        return kept.div_(kept.sum(dim=1, keepdim=True))

    def params(self) -> dict[str, Any]:
        return {"k": self.k}

    def argmax_threshold(self) -> float | None:
        """0.0: every row keeps its argmax."""
        return 0.0
