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


def order_keys(values: Tensor) -> Tensor:
    """``values`` (float32 or float64, entries ``>= 0``) viewed as signed integers of the same width.

    Non-negative floats are ordered like their bit patterns read as signed integers, so the view
    ranks them exactly like the floats (``-0.0`` aside, which ranks below every other entry; a
    zero entry never changes an output that only keeps or drops it). ``torch.topk`` selects
    integers faster than floats on the CPU (no NaN handling). No copy.

    Shape:
        values: ``(N, K)``; returns ``(N, K)`` int32 or int64.
    """
    return values.view(torch.int32 if values.element_size() == 4 else torch.int64)


def stable_descending(values: Tensor, k: int) -> Tensor:
    """Indices ``(N, k)`` of the ``k`` largest entries of each row, equal entries in class order (a full stable sort)."""
    return values.sort(dim=1, descending=True, stable=True).indices[:, :k]


def top_k_selection(values: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` largest entries of each row and their indices, ties at the cut to the lower index.

    One ``torch.topk`` of ``k + 1`` on :func:`order_keys` (a partial selection, no full sort).
    Where a row's k-th and (k+1)-th largest are equal (a tie at the cut, one host read to find
    out), that row's indices come from a stable sort (:func:`stable_descending`) instead. The
    selected values do not depend on how ties are broken.

    Shape:
        values: ``(N, K)`` float32 or float64, finite and ``>= 0``, ``1 <= k < K``; returns values
        ``(N, k)`` in ``values``' dtype and int64 indices ``(N, k)``.
    """
    top = order_keys(values).topk(k + 1, dim=1)
    indices = top.indices[:, :k]
    tied = top.values[:, k - 1] == top.values[:, k]
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        indices = indices.index_copy(0, rows, stable_descending(values[rows], k))
    return top.values[:, :k].view(values.dtype), indices


class TopK(Defense):
    """Top-k truncation (Tramèr et al., "Stealing Machine Learning Models via Prediction
    APIs", USENIX Security 2016, "extraction countermeasures"; Orekondy et al., "Prediction Poisoning", ICLR 2020)::

        y~_i = y_i / sum_{j in T_k(y)} y_j   for i in T_k(y),   0 otherwise

    ``T_k(y)`` holds the indices of the k largest entries; ties at the k-th place go to the
    lower class index, so exactly ``min(k, K)`` entries are kept and the choice does not
    depend on the batch. ``k >= K`` returns ``y``. Deterministic; rows independent. A partial
    selection (:func:`top_k_selection`), in the input's dtype.

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
        kept, indices = top_k_selection(probs, self.k)
        return torch.zeros_like(probs).scatter_(1, indices, kept / kept.sum(dim=1, keepdim=True))

    def params(self) -> dict[str, Any]:
        return {"k": self.k}

    def argmax_threshold(self) -> float | None:
        """0.0: every row keeps its argmax."""
        return 0.0
