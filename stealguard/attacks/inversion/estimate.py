"""Estimating a defense's constant parameter from its answers: the densest cluster of per-row values.

Each answer row, under each hypothesis about it (e.g. which class MAD targeted), implies one
value of the parameter if its hidden clean entry is exactly 0. Rows whose hypothesis is right
and whose hidden entry is nearly 0 (MAD targets the classes the clean posterior excludes)
all imply nearly the true value, a sharp spike; wrong hypotheses spread smoothly.
:func:`densest_cluster` finds the window ``[v, v (1 + width)]`` holding the most implied
values (sorted values, one ``searchsorted``) and returns the median of that window.
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
    values = values[torch.isfinite(values) & (values > floor)]
    if values.numel() == 0:
        return None
    ordered = values.sort().values
    ends = torch.searchsorted(ordered, ordered * (1 + width), right=True)
    counts = ends - torch.arange(ordered.numel(), device=ordered.device)
    start = int(torch.argmax(counts))
    if int(counts[start]) < support:
        return None
    return float(ordered[start : int(ends[start])].median())
