"""``none``: the undefended API, returning the clean posterior unchanged."""

from __future__ import annotations

from torch import Tensor

from stealguard.defenses.base import Defense


class NoDefense(Defense):
    """Identity defense: ``defense(x, y) == y``. The reference point of every comparison.

    Returns the boundary's checked rows (``y`` renormalised in its own dtype; a copy of ``y``
    when every row sums to 1 within ``ON_SIMPLEX``, as a float32 softmax does).
    """

    name = "none"
    compute_dtype = None
    output_on_simplex = True

    def __init__(self) -> None:
        pass

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        return probs
