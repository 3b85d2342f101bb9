"""Estimating a defense's constant parameter from its answers: the densest cluster of per-row values.

Each answer row, under each hypothesis about it (e.g. which class MAD targeted), implies one
value of the parameter if its hidden clean entry is exactly 0. Rows whose hypothesis is right
and whose hidden entry is nearly 0 (MAD targets the classes the clean posterior excludes)
all imply nearly the true value, a sharp spike; wrong hypotheses spread smoothly.
:func:`densest_cluster` finds the window ``[v, v (1 + width)]`` holding the most implied
values (sorted values, one ``searchsorted``) and returns the median of that window.
:func:`lowest_cluster` returns the lowest window holding at least a given number of values,
for parameters that every row bounds from below and the most informative rows attain.
"""

from __future__ import annotations

import torch
from torch import Tensor


def densest_cluster(values: Tensor, *, width: float, floor: float = 0.0, support: int = 1) -> float | None:
    """Median of the relative window ``[v, v (1 + width)]`` holding the most of ``values``.

    Args:
        values: ``(M,)`` implied parameter values; non-finite ones and those ``<= floor`` are ignored.
        width: relative window width, > 0.
        floor: values at or below it are ignored (default 0).
        support: the fewest values the densest window must hold (default 1).

    Returns:
        The estimate, or ``None`` when no value is left or the densest window holds fewer than
        ``support``. Ties go to the smallest window.
    """
    windows = _windows(values, width=width, floor=floor)
    if windows is None:
        return None
    ordered, ends, counts = windows
    start = int(torch.argmax(counts))
    if int(counts[start]) < support:
        return None
    return float(ordered[start : int(ends[start])].median())


def lowest_cluster(values: Tensor, *, width: float, support: int, floor: float = 0.0) -> float | None:
    """Median of the lowest relative window ``[v, v (1 + width)]`` holding at least ``support`` of ``values``.

    For a parameter that rows imply from above and the most informative rows imply exactly
    (their spike is the lower edge of the distribution), where the spike may be far smaller
    than the rest's density elsewhere.

    Args:
        values: ``(M,)`` implied values; non-finite ones and those ``<= floor`` are ignored.
        width: relative window width, > 0.
        support: the fewest values the window must hold, >= 1.
        floor: values at or below it are ignored (default 0).

    Returns:
        The estimate, or ``None`` when no window holds ``support`` values.
    """
    windows = _windows(values, width=width, floor=floor)
    if windows is None:
        return None
    ordered, ends, counts = windows
    enough = torch.nonzero(counts >= support)
    if enough.numel() == 0:
        return None
    start = int(enough[0])
    return float(ordered[start : int(ends[start])].median())


def _windows(values: Tensor, *, width: float, floor: float) -> tuple[Tensor, Tensor, Tensor] | None:
    """The finite values above ``floor``, sorted, with each relative window's end index and count
    (``[v, v (1 + width)]`` from each value); None when no value is left."""
    values = values[torch.isfinite(values) & (values > floor)]
    if values.numel() == 0:
        return None
    ordered = values.sort().values
    ends = torch.searchsorted(ordered, ordered * (1 + width), right=True)
    return ordered, ends, ends - torch.arange(ordered.numel(), device=ordered.device)
