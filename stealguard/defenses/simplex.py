"""Pure tensor helpers on the probability simplex shared by several defenses.

``project_to_simplex`` is the Euclidean projection (Michelot 1986, sort-free; Held, Wolfe &
Crowder 1974 and Duchi et al., ICML 2008, Fig. 1, as its fallback), ``shrink_to_budget`` pulls a perturbed row back toward the clean row
until it lies inside an L1 or L2 ball, ``distance`` is the row-wise norm both use.
All functions are batched over rows and work in the input's dtype and device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stealguard.metrics import l1_distance, l2_distance

NORMS = ("l1", "l2")
"""Norms a distortion budget may be stated in."""

MAX_DISTANCE = {"l1": 2.0, "l2": 2.0**0.5}
"""Diameter of the probability simplex in each norm: the largest meaningful budget."""


def onto_simplex(probs: Tensor) -> Tensor:
    """Clamp negative entries to 0 and renormalise rows: ``(N, K) -> (N, K)``.

    ``Defense.__call__`` accepts rows off the simplex by up to ``SIMPLEX_TOLERANCE`` (1e-3) and
    passes ``_perturb`` their image under this map, so budgets and grids are computed from exact
    simplex points. Rows must have positive mass (a row without any yields NaN, never a made-up
    point); ``Defense.__call__`` checks that of ``_perturb``'s result before renormalising it.
    """
    probs = probs.clamp_min(0)
    return probs / probs.sum(dim=1, keepdim=True)


def distance(p: Tensor, q: Tensor, norm: str) -> Tensor:
    """Row-wise ``||p - q||_norm`` of ``(N, K)`` tensors -> ``(N,)``; norm ``"l1"`` or ``"l2"``.

    Raises:
        ValueError: unknown norm.
    """
    if norm == "l1":
        return l1_distance(p, q)
    if norm == "l2":
        return l2_distance(p, q)
    raise ValueError(f"norm must be one of {', '.join(map(repr, NORMS))}; got {norm!r}")


def shrink_to_budget(probs: Tensor, perturbed: Tensor, *, epsilon: float, norm: str) -> Tensor:
    """Pull each row of ``perturbed`` toward ``probs`` until it is within ``epsilon``.

    ``y~ <- y + min(1, epsilon / ||y~ - y||) (y~ - y)``. Rows already inside the ball are
    returned unchanged. When both inputs lie on the simplex so does the result (it is a
    convex combination), and an order between two entries shared by ``probs`` and
    ``perturbed`` is kept (so is the argmax).

    Shape:
        probs, perturbed: ``(N, K)``; returns ``(N, K)``.
    """
    step = perturbed - probs
    length = distance(perturbed, probs, norm).unsqueeze(1)
    scale = torch.where(length > epsilon, epsilon / length.clamp_min(torch.finfo(length.dtype).tiny), 1.0)
    return probs + scale * step


PROJECTION_STEPS = 32
"""Most sort-free steps of :func:`project_to_simplex` before the rows left over are sorted."""

SORT_BELOW = 8192
"""Inputs with fewer entries are projected with one sort: fewer operations, cheaper than the
sort-free steps' passes there (both measured on the CPU with torch 2.13)."""


def _project_by_sort(values: Tensor) -> Tensor:
    """Sort-based projection (Duchi et al. 2008, Fig. 1); O(K log K) per row."""
    num_classes = values.shape[1]
    ordered = torch.sort(values, dim=1, descending=True).values
    cumulative = ordered.cumsum(dim=1) - 1
    counts = torch.arange(1, num_classes + 1, dtype=values.dtype, device=values.device)
    support = ordered - cumulative / counts > 0
    rho = (support * counts).argmax(dim=1, keepdim=True)
    theta = cumulative.gather(1, rho) / (rho + 1).to(values.dtype)
    return (values - theta).clamp_min(0)


def project_to_simplex(values: Tensor) -> Tensor:
    """Euclidean projection of each row onto ``{p : p >= 0, sum p = 1}``.

    The projection is ``max(v - theta, 0)`` with ``theta`` the root of the convex, piecewise
    linear ``f(theta) = sum_i max(v_i - theta, 0) - 1``. Sort-free (Michelot 1986, a Newton
    method on ``f`` from the left): start at ``theta_0 = (sum v - 1) / K <= theta*``, then
    ``theta_{t+1} = theta_t + f(theta_t) / |A_t| = (sum_{i in A_t} v_i - 1) / |A_t|`` with
    ``A_t = {i : v_i > theta_t}``. The active set only shrinks, and once it stops changing
    ``theta`` is exact, typically after a few O(K) passes. Inputs with fewer than ``SORT_BELOW``
    entries, and rows still changing after ``PROJECTION_STEPS`` steps, are projected by the
    sort-based algorithm (Held, Wolfe & Crowder 1974; Duchi et al., ICML 2008, Fig. 1). No
    Python loop over rows. The projection is non-expansive in L2.

    Shape:
        values: ``(N, K)`` finite; returns ``(N, K)``.
    """
    if values.numel() < SORT_BELOW:
        return _project_by_sort(values)
    theta = (values.sum(dim=1, keepdim=True) - 1) / values.shape[1]
    size = torch.full_like(theta, values.shape[1])
    for _ in range(PROJECTION_STEPS):
        excess = (values - theta).clamp_min_(0)
        new_size = excess.sign().sum(dim=1, keepdim=True)
        theta = theta + (excess.sum(dim=1, keepdim=True) - 1) / new_size
        changed = new_size != size
        size = new_size
        if not bool(changed.any()):
            return (values - theta).clamp_min_(0)
    projected = (values - theta).clamp_min_(0)
    rows = changed.squeeze(1).nonzero().squeeze(1)
    return projected.index_copy(0, rows, _project_by_sort(values[rows]))
