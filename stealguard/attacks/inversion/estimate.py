"""Estimating a defense's constant parameter from its answers: the point most intervals share.

Each answer row (and each hypothesis about it, e.g. which class MAD targeted) is consistent
with an interval of parameter values; the true value lies in the intervals of all rows
whose hypothesis is right. :func:`densest_point` returns the right end of the segment
covered by the most intervals (an interval sweep: sort the endpoints, cumulative sum of
+1/-1), the end where the rows whose hidden entry is exactly 0 meet.
"""

from __future__ import annotations

import torch
from torch import Tensor


def densest_point(low: Tensor, high: Tensor) -> float | None:
    """Right end of the segment covered by the most intervals ``[low_i, high_i]``.

    Ties between segments go to the smallest value. ``None`` when there is no interval.

    Shape:
        low, high: ``(M,)`` float, ``low <= high``.
    """
    keep = torch.isfinite(low) & torch.isfinite(high) & (low <= high)
    low, high = low[keep], high[keep]
    if low.numel() == 0:
        return None
    points = torch.cat([low, high])
    steps = torch.cat([torch.ones_like(low), -torch.ones_like(high)])
    # At equal positions openings come first, so touching intervals count as overlapping.
    openings_first = torch.argsort(-steps, stable=True)
    points, steps = points[openings_first], steps[openings_first]
    ascending = torch.argsort(points, stable=True)
    points, steps = points[ascending], steps[ascending]
    depth = steps.cumsum(0)
    best = int(torch.argmax(depth))
    return float(points[min(best + 1, points.numel() - 1)])
