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


def last_ties(mask: Tensor, count: Tensor) -> Tensor:
    """Keep, in each row of the boolean ``(N, K)`` ``mask``, only its last ``count`` (``(N, 1)``) True entries."""
    after = mask.sum(dim=1, keepdim=True) - mask.cumsum(dim=1)
    return mask & (after < count)


def _tied_corrections(keys: Tensor, cuts: Tensor, count: Tensor, sign: Tensor) -> Tensor:
    """The ``+-1`` corrections ``(n, K)`` of rows tied at their cut, by the class-order rule.

    Each row takes its entries with ``keys`` above its cut ``(n, 1)`` and, among those equal to it,
    the first in class order where ``sign`` is +1 (units granted: ties to the lower index) and
    the last where it is -1 (units taken back: the higher index loses first), ``count`` in all.

    Shape:
        keys: ``(n, K)`` int; cuts, count: ``(n, 1)`` int; sign: ``(n, 1)`` in {-1, 1}; returns
        ``(n, K)`` in {-1, 0, 1} in ``sign``'s dtype.
    """
    above = keys > cuts
    at = keys == cuts
    need = count - above.sum(dim=1, keepdim=True)
    chosen = torch.where(sign > 0, first_ties(at, need), last_ties(at, need))
    return (above | chosen).to(sign.dtype) * sign


def _correct_nearest(nearest: Tensor, keys: Tensor, discrepancy: Tensor, most: int) -> Tensor:
    """Turn each row's nearest rounding ``nearest`` into largest-remainder apportionment, in place.

    ``keys`` are the correction keys of :func:`_apportion`: in a row short of ``d = discrepancy > 0``
    units, the remainders of the entries rounded down (the others negative); in a row over by
    ``-d > 0``, one minus the remainders of the entries rounded up (the others ``<= 0``). The row
    changes by ``sign(d)`` at its ``|d|`` largest keys, ties to the lower index when short and to the
    higher index when over. One ``torch.topk`` of ``most + 1`` (``most = max |d|``) on
    :func:`~stealguard.defenses.topk.order_keys` (negative and ``-0.0`` keys rank below every other);
    rows tied at their cut (one host read) are redone by :func:`_tied_corrections`.

    Shape:
        nearest, keys: ``(N, K)`` float; discrepancy: ``(N, 1)`` integers in [-K, K] in ``nearest``'s
        dtype; returns ``nearest``.
    """
    num_classes = keys.shape[1]
    sign = discrepancy.sign()
    count = discrepancy.abs().long()
    ordered = order_keys(keys)
    top = ordered.topk(min(most + 1, num_classes), dim=1)
    # column j of ``equal``: the j-th largest equals the (j+1)-th (j = 1 .. k-1); columns 0 and k: False
    equal = F.pad(top.values[:, 1:] == top.values[:, :-1], (1, 1))
    tied = equal.gather(1, count)
    selected = _positions(top.indices.shape[1], sign) < count.masked_fill(tied, 0)
    nearest.scatter_add_(1, top.indices, selected.to(nearest.dtype).mul_(sign))
    if bool(tied.any()):
        rows = tied.squeeze(1).nonzero().squeeze(1)
        cuts = top.values[rows].gather(1, count[rows] - 1)
        nearest.index_add_(0, rows, _tied_corrections(ordered[rows], cuts, count[rows], sign[rows]))
    return nearest


SORT_BELOW = 8192
"""Inputs with fewer entries are apportioned with one stable sort (:func:`_apportion_by_sort`): fewer
operations, and each one's fixed cost dominates there; larger ones from the nearest rounding
(:func:`_apportion`, a partial selection; both measured on the CPU with torch 2.13)."""


def _apportion_by_sort(scaled: Tensor, units: Tensor) -> Tensor:
    """Largest-remainder rounding of rows ``scaled`` by one stable sort of the remainders (few operations).

    The row's missing units ``D = units - sum floor`` go to the first ``D`` entries of the stable
    descending order of the remainders (ties to the lower index): entry at rank ``j`` gains
    ``clamp(D - j, 0, 1)``, which also clamps ``D`` to [0, K]. ``scaled`` is overwritten.

    Shape:
        scaled: ``(N, K)`` finite, ``>= 0``; units: 0-dim; returns the integers ``(N, K)`` in ``scaled``'s dtype.
    """
    floors = scaled.floor()
    remainders = scaled.sub_(floors)
    order = order_keys(remainders).sort(dim=1, descending=True, stable=True).indices
    missing = torch.sub(units, floors.sum(dim=1, keepdim=True))
    granted = missing.sub(_positions(scaled.shape[1], scaled)).clamp_(0, 1)
    return floors.scatter_add_(1, order, granted)


def _apportion(scaled: Tensor, units: Tensor) -> Tensor:
    """Largest-remainder rounding of rows ``scaled`` (each summing to about ``units``) to integers summing to ``units``.

    Every entry is rounded to the nearest integer first (remainder ``r >= 1/2`` up, as
    ``floor(2 r)``, exact); only the row's discrepancy ``d`` from the largest-remainder result is
    then fixed (:func:`_correct_nearest`), which gives exactly that result: sorted by (remainder
    descending, index), the entries rounded up are a prefix of the order, so the ``D`` entries
    granted a unit by largest remainders are those rounded up and the next ``d = D - (number
    rounded up)`` in the order when ``d >= 0`` (the largest remainders among those rounded down,
    ties to the lower index), and all those rounded up but the last ``-d`` in the order when
    ``d < 0`` (the smallest remainders among them, ties to the higher index). The correction keys
    are ``sign(d) (r - floor(2 r))``: ``r`` or ``1 - r`` for candidates, ``<= 0`` for the others, all
    exact (Sterbenz), so the order is exactly the remainders'. ``|d| <= max(D, K - D)`` and is usually
    much smaller than ``D``. ``scaled`` is overwritten (with the keys).

    Shape:
        scaled: ``(N, K)`` finite, ``>= 0``; units: 0-dim; returns the integers ``(N, K)`` in ``scaled``'s dtype.
    """
    num_classes = scaled.shape[1]
    floors = scaled.floor()
    remainders = scaled.sub_(floors)
    floor_totals = floors.sum(dim=1, keepdim=True)
    up = remainders.mul(2).floor_()
    nearest = floors.add_(up)
    missing = floor_totals.neg().add_(units).clamp_(0, num_classes)
    discrepancy = missing.add_(floor_totals).sub_(nearest.sum(dim=1, keepdim=True))
    most = int(discrepancy.abs().amax())
    if most > 0:
        keys = remainders.sub_(up).mul_(discrepancy.sign())
        _correct_nearest(nearest, keys, discrepancy, most)
    return nearest


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

    Inputs under ``SORT_BELOW`` entries: one stable sort (:func:`_apportion_by_sort`); larger ones
    from the nearest rounding, corrected at the few entries where it differs (:func:`_apportion`:
    one ``torch.topk`` of the batch's largest discrepancy, no sort).

    Shape:
        probs: ``(N, K)`` float64 on the simplex; returns ``(N, K)``.
    """
    units = constant(10**decimals, probs)
    return _rounded(probs * units, units)


def _normalised_round(probs: Tensor, decimals: int) -> Tensor:
    """:func:`round_on_simplex` of ``probs / rowsum(probs)`` (division then scaling, as the boundary would renormalise).

    Shape:
        probs: ``(N, K)`` float64, ``>= 0``, positive row sums; returns ``(N, K)``.
    """
    units = constant(10**decimals, probs)
    return _rounded(torch.div(probs, probs.sum(dim=1, keepdim=True)).mul_(units), units)


def _rounded(scaled: Tensor, units: Tensor) -> Tensor:
    """``scaled`` (rows summing to about ``units``) apportioned to integers, divided by ``units``; the apportionment
    by one sort under :data:`SORT_BELOW` entries, else from the nearest rounding. ``scaled`` is overwritten."""
    apportion = _apportion_by_sort if scaled.numel() < SORT_BELOW else _apportion
    return apportion(scaled, units).div_(units)


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
    scale_invariant = True
    output_on_simplex = True

    def __init__(self, *, decimals: int = 2) -> None:
        self.decimals = check_int("decimals", decimals, low=0, high=10)

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        return _normalised_round(probs, self.decimals)

    def params(self) -> dict[str, Any]:
        return {"decimals": self.decimals}

    def argmax_threshold(self) -> float | None:
        """0.0: every row keeps its argmax (ties aside)."""
        return 0.0
