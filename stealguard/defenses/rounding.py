"""``rounding``: reveal probabilities on a decimal grid, still summing to 1."""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from stealguard._checks import check_int
from stealguard.defenses.base import Defense, constant
from stealguard.defenses.topk import first_ties, order_keys


@functools.lru_cache(maxsize=64)
def _cached_positions(length: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.arange(length, dtype=dtype, device=device)


def _positions(length: int, like: Tensor) -> Tensor:
    """``0, 1, ..., length - 1`` in ``like``'s dtype and device, cached; never modify it in place."""
    return _cached_positions(length, like.dtype, like.device)


def _granted_units(remainders: Tensor, missing: Tensor, most: int) -> Tensor:
    """0/1 ``(N, K)``: the ``missing`` ``(N, 1)`` largest ``remainders`` of each row, ties to the lower index.

    One ``torch.topk`` of ``most + 1`` (``most`` the largest ``missing``, capped at K) on
    :func:`~stealguard.defenses.topk.order_keys`; untied rows take the first ``missing`` of its
    indices. Rows whose ``missing``-th and next largest remainders are equal (a tie at the cut; one
    host read to find out) take the entries above the cut and, among those equal to it, the first
    in class order.
    """
    num_classes = remainders.shape[1]
    top = order_keys(remainders).topk(min(most + 1, num_classes), dim=1)
    first = (_positions(top.indices.shape[1], missing) < missing).to(remainders.dtype)
    grant = torch.zeros_like(remainders).scatter_(1, top.indices, first)
    # column j of ``equal``: the j-th largest equals the (j+1)-th (j = 1 .. k-1); columns 0 and k: False
    equal = F.pad(top.values[:, 1:] == top.values[:, :-1], (1, 1))
    tied = equal.gather(1, missing.long()).squeeze(1)
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        values = remainders[rows]
        cuts = top.values[rows].gather(1, missing[rows].long() - 1).view(remainders.dtype)
        above = values > cuts
        count = missing[rows] - above.sum(dim=1, keepdim=True)
        grant[rows] = (above | first_ties(values == cuts, count)).to(remainders.dtype)
    return grant


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

    Only the largest remainders are selected (:func:`_granted_units`: ``torch.topk`` up to the
    batch's largest ``D``, no full sort).

    Shape:
        probs: ``(N, K)`` float64 on the simplex; returns ``(N, K)``.
    """
    units = constant(10**decimals, probs)
    scaled = probs * units
    floors = scaled.floor()
    remainders = scaled.sub_(floors)
    missing = floors.sum(dim=1, keepdim=True).neg_().add_(units).clamp_(0, probs.shape[1])
    most = int(missing) if missing.shape[0] == 1 else int(missing.amax())
    if most > 0:
        floors += _granted_units(remainders, missing, most)
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
