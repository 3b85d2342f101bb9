"""``rounding``: reveal probabilities on a decimal grid, still summing to 1."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from stealguard._checks import check_int
from stealguard.defenses.base import Defense
from stealguard.defenses.topk import first_ties


def round_on_simplex(probs: Tensor, decimals: int) -> Tensor:
    """Round each row to multiples of ``q = 10**-decimals`` so that it still sums to exactly 1.

    Largest-remainder apportionment: every entry is first rounded down to the grid, then the
    ``D = 1/q - sum_i floor(y_i / q)`` missing units (an integer in [0, K)) go, one each, to
    the ``D`` entries with the largest remainders ``y_i / q - floor(y_i / q)``, ties to the
    lower class index. Hence every output entry is ``floor`` or ``ceil`` of ``y_i`` on the grid:
    ``|y~_i - y_i| < q``, entries are ``>= 0`` and rows sum to 1 (as integers of units; up to
    float64 round-off in the division by ``1/q``). The map is weakly order preserving
    (``y_a > y_b`` implies ``y~_a >= y~_b``), so the argmax is kept ties aside.
    ``decimals = 0`` gives the one-hot of the argmax.

    Only the largest remainders are selected (``torch.topk`` up to the batch's largest ``D``,
    no full sort): entries whose remainder is at least the row's D-th largest get a unit
    (``min(floor(r / cut), 1)``: arithmetic, which torch vectorises better on the CPU than a
    comparison); rows with a tie at that cut (only those) give it to the tied entries in class order.

    Shape:
        probs: ``(N, K)`` float64 on the simplex; returns ``(N, K)``.
    """
    units = 10**decimals
    scaled = probs * units
    floors = scaled.floor()
    remainders = scaled.sub_(floors)
    num_classes = probs.shape[1]
    missing = floors.sum(dim=1, keepdim=True).neg_().add_(units).round_().clamp_(0, num_classes)
    most = int(missing.amax())
    if most > 0:
        largest = remainders.topk(min(most + 1, num_classes), dim=1).values
        place = missing.long()
        cut = largest.gather(1, (place - 1).clamp_min(0)).masked_fill_(place == 0, float("inf"))
        grant = remainders.div(cut.clamp_min(torch.finfo(probs.dtype).tiny)).floor_().clamp_max_(1)
        following = largest.gather(1, place.clamp_max(largest.shape[1] - 1))
        tied = (following == cut).squeeze(1).nonzero().squeeze(1)
        if tied.numel():
            rows, cuts = remainders[tied], cut[tied]
            above = rows > cuts
            count = missing[tied] - above.sum(dim=1, keepdim=True)
            grant[tied] = (above | first_ties(rows == cuts, count)).to(probs.dtype)
        floors += grant
    return floors.div_(units)


class Rounding(Defense):
    """Rounding of the posterior (Tramèr et al., "Stealing Machine Learning Models via
    Prediction APIs", USENIX Security 2016, "extraction countermeasures"; Orekondy et al., ICLR 2020)::

        y~ = round_q(y),   q = 10**-decimals

    where, unlike entrywise rounding (whose rows need not sum to 1), ``round_q`` apportions
    the grid units by largest remainders (:func:`round_on_simplex`): each entry is rounded
    down or up to the grid, ``|y~_i - y_i| < q``, rows sum to 1 (float round-off only) and
    no entry is negative. Every entry has at most ``decimals`` decimal digits (up to the
    float representation of the grid). Deterministic; rows independent.

    Args:
        decimals: decimal places kept, an integer in [0, 10] (default 2); 0 is ``label_only``.

    Argmax: kept, ties aside (two entries may round to the same value; the lower index of
    equal inputs wins a unit first).

    Shape:
        x: ``(N, ...)`` (unused); probs: ``(N, K)``; output ``(N, K)``, dtype and device of probs.

    Raises:
        ValueError: decimals outside [0, 10]. TypeError: decimals is not an integer.

    Example:
        >>> import torch
        >>> from stealguard.defenses import create
        >>> probs = torch.tensor([[0.334, 0.333, 0.333]], dtype=torch.float64)
        >>> create("rounding", decimals=1)(torch.zeros(1, 1), probs)
        tensor([[0.4000, 0.3000, 0.3000]], dtype=torch.float64)
    """

    name = "rounding"
    output_on_simplex = True

    def __init__(self, *, decimals: int = 2) -> None:
        self.decimals = check_int("decimals", decimals, low=0, high=10)

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        return round_on_simplex(probs, self.decimals)

    def params(self) -> dict[str, Any]:
        return {"decimals": self.decimals}

    def argmax_threshold(self) -> float | None:
        """0.0: every row keeps its argmax (ties aside)."""
        return 0.0
