"""``reverse_sigmoid``: Lee et al.'s deceptive reverse-sigmoid perturbation.

Also holds the pure functions ``dcp`` reuses: the perturbation ``r(y)``
(:func:`reverse_sigmoid_noise`), ``y - a r(y)`` (:func:`minus_reverse_sigmoid`, normalised by
the boundary) and ``N(y - noise)`` (:func:`subtract_and_renormalise`), plus the argmax
guarantee shared by both (:func:`argmax_threshold`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from stealguard._checks import check_number
from stealguard.defenses.base import Defense, constant, output_onto_simplex

LOGIT_CLAMP = 1e-7
"""``delta``: probabilities are clamped to ``[delta, 1 - delta]`` before the logit."""
DEFAULT_BETA = 0.3
""":class:`ReverseSigmoid`'s default ``beta`` (the inverter assumes it when the answers give no estimate)."""
DEFAULT_GAMMA = 0.2
""":class:`ReverseSigmoid`'s default ``gamma``."""


def reverse_sigmoid_noise(probs: Tensor, *, beta: float, gamma: float) -> Tensor:
    """The reverse-sigmoid perturbation ``r(y) = beta * (S(gamma * S^-1(y)) - 1/2)``, elementwise.

    ``S`` is the sigmoid and ``S^-1`` the logit of ``y`` clamped to
    ``[LOGIT_CLAMP, 1 - LOGIT_CLAMP]`` (finite for exact zeros and ones). Entries below 1/2
    get a negative ``r`` (they grow when ``r`` is subtracted), entries above 1/2 a positive one.
    Range: ``(-beta/2, beta/2)``.

    Computed in ``probs``' dtype, in place on one temporary.

    Shape:
        probs: ``(N, K)``; returns ``(N, K)``.
    """
    noise = torch.logit(probs, eps=LOGIT_CLAMP).mul_(constant(gamma, probs)).sigmoid_()
    return noise.sub_(constant(0.5, probs)).mul_(constant(beta, probs))


def minus_reverse_sigmoid(probs: Tensor, *, beta: float, gamma: float, weight: Tensor | None = None) -> Tensor:
    """``y - a * r(y)``, unnormalised (``Defense.__call__`` then applies ``N``), in six operations.

    ``r`` is :func:`reverse_sigmoid_noise`; ``a`` is ``weight`` ``(N, 1)`` (``dcp``'s detector) or 1.
    Computed as ``(S(gamma S^-1(y)) - 1/2) * (-a beta) + y`` in place on one temporary, in
    ``probs``' dtype.

    Shape:
        probs: ``(N, K)``; weight: ``(N, 1)`` or None; returns ``(N, K)``.
    """
    scale = constant(-beta, probs) if weight is None else weight.mul(constant(-beta, probs))
    squashed = torch.logit(probs, eps=LOGIT_CLAMP).mul_(constant(gamma, probs)).sigmoid_()
    return squashed.sub_(constant(0.5, probs)).mul_(scale).add_(probs)


def subtract_and_renormalise(probs: Tensor, noise: Tensor) -> Tensor:
    """``N(y - noise)``: subtract, clamp negative entries to 0, divide each row by its sum.

    A row with no positive entry left is returned unchanged (``y``). For the reverse-sigmoid
    noise (with any factor in [0, 1]) this cannot happen: an entry ``y_i < 1/2`` has
    ``r(y_i) < 0`` and so stays positive after the subtraction, and every row of K >= 2
    entries summing to 1 has an entry ``<= 1/2`` (``y_i = 1/2`` gives ``r = 0``).

    Shape:
        probs, noise: ``(N, K)``; returns ``(N, K)`` on the simplex.
    """
    values = (probs - noise).clamp_min(0)
    total = values.sum(dim=1, keepdim=True)
    return torch.where(total > 0, values / total.clamp_min(torch.finfo(values.dtype).tiny), probs)


def positive_map_beta_bound(gamma: float) -> float:
    """A ``beta`` below which ``f(y) = y - beta (S(gamma S^-1(y)) - 1/2)`` stays positive on [0, 1] (exclusive).

    Below 1/2, ``r(y) <= 0`` and ``f(y) >= y``. Above it, ``f(y) > 0`` exactly when ``beta <
    y / (S(gamma S^-1(y)) - 1/2)``; the bound is the smallest such ratio over ``(1/2, 1 - delta]``
    (entries above ``1 - delta`` share its logit), evaluated on a grid of 20,001 logits (log-spaced
    from 1e-6 to the clamp) and lowered by 0.1% for the grid's resolution. For ``gamma <= 1`` the
    ratio falls toward the clamp: 2.164 for ``gamma = 0.2`` (``(1 - delta) / (S(gamma logit(1 - delta))
    - 1/2) = 2.166`` before the margin); larger ``gamma`` saturate the inner sigmoid early and the
    minimum moves toward 1/2. Below this bound no entry is clamped at 0, so ``N`` loses nothing and
    the map can be inverted entry by entry (``stealguard.attacks.inversion``).
    """
    top = math.log((1 - LOGIT_CLAMP) / LOGIT_CLAMP)
    logits = torch.logspace(-6, math.log10(top), 20001, dtype=torch.float64)
    ratio = torch.sigmoid(logits) / (torch.sigmoid(gamma * logits) - 0.5)
    return float(ratio.min()) * (1 - 1e-3)


def _max_slope_ratio(gamma: float) -> float:
    """``sup_y S'(gamma * logit y) / (y (1 - y))`` over ``y in [delta, 1 - delta]``.

    With ``t = logit y`` this is ``S'(gamma t) / S'(t)``: largest at ``t = 0`` (value 1) for
    ``gamma >= 1`` and at ``|t| = logit(1 - delta)`` for ``gamma < 1``.
    """
    if gamma >= 1:
        return 1.0
    edge = math.log((1 - LOGIT_CLAMP) / LOGIT_CLAMP)

    def sigmoid_slope(t: float) -> float:
        s = 1.0 / (1.0 + math.exp(-t))
        return s * (1.0 - s)

    return sigmoid_slope(gamma * edge) / sigmoid_slope(edge)


def argmax_threshold(beta: float, gamma: float) -> float | None:
    """Top probability above which ``N(y - a * r(y))`` keeps the argmax, for every ``a`` in [0, 1].

    Let ``f(y) = y - beta (S(gamma S^-1(y)) - 1/2)``, applied to each entry. The output order
    follows ``f`` (clamping at 0 and renormalising keep a weak order), so:

    * ``0.0`` (every row) when ``f`` is strictly increasing on [0, 1], i.e. when
      ``f'(y) = 1 - beta * gamma * S'(gamma S^-1(y)) / (y (1 - y)) >= 0`` on the clamped range:
      ``beta * gamma <= 1`` for ``gamma >= 1``; for ``gamma < 1`` the ratio peaks at the clamp,
      giving ``beta * gamma * S'(gamma T) / S'(T) <= 1`` with ``T = logit(1 - delta) ~ 16.1``
      (``beta <~ 1.4e-5`` at ``gamma = 0.2``). Beyond this ``f`` decreases on an interval,
      so some row (with enough classes) loses its argmax.
    * ``0.5`` when ``gamma <= 1`` and ``beta < 1``: for a top entry ``a > 1/2`` every other
      entry is ``b <= 1 - a < 1/2``; ``gamma <= 1`` gives ``S(gamma S^-1(b)) >= b`` and
      ``S(gamma S^-1(a)) <= a``, so ``f(b) <= (1 - beta) b + beta/2 < (1 - beta) a + beta/2 <= f(a)``.
      Flat rows can flip: with the defaults ``beta=0.3, gamma=0.2`` a row of ten entries 0.1
      and one zero entry returns the zero entry as its largest.
    * ``None``: no guarantee.

    Scaling ``beta`` by ``a`` in [0, 1] (``dcp``'s detector) keeps each condition.
    """
    if beta == 0 or beta * gamma * _max_slope_ratio(gamma) <= 1:
        return 0.0
    if gamma <= 1 and beta < 1:
        return 0.5
    return None


class ReverseSigmoid(Defense):
    """Reverse-sigmoid perturbation (Lee et al., "Defending Against NN Model Stealing Attacks
    Using Deceptive Perturbations", IEEE S&P Workshops 2019; arXiv:1806.00054; the reverse-sigmoid
    perturbation)::

        y~ = N(y - beta * (S(gamma * S^-1(y)) - 1/2))

    ``S`` is the sigmoid, ``S^-1`` the logit (``y`` clamped to ``[1e-7, 1 - 1e-7]``), ``N``
    clamps negative entries to 0 and renormalises each row (every row keeps positive mass, see
    :func:`subtract_and_renormalise`). Small entries are pushed up and large ones down, so that
    the logits an attacker would recover from ``y~`` are misleading. Deterministic; rows are
    independent. Computed in the input's dtype (float32 rows stay float32: rows sum to 1
    within 1e-6; the float32 answer is the float64 one to float32 round-off).

    Args:
        beta: perturbation magnitude, ``>= 0`` (default 0.3); 0 returns ``y``.
        gamma: slope of the inner sigmoid, ``> 0`` (default 0.2); ``gamma = 1`` reduces to
            mixing with the uniform distribution.

    Argmax: kept for every row iff ``beta * gamma * S'(gamma T) / S'(T) <= 1`` (``gamma < 1``,
    ``T = logit(1 - 1e-7)``) or ``beta * gamma <= 1`` (``gamma >= 1``); kept for rows whose top
    probability exceeds 1/2 when ``gamma <= 1`` and ``beta < 1`` (the defaults); see
    :func:`argmax_threshold`. Ties aside.

    Shape:
        x: ``(N, ...)`` (unused); probs: ``(N, K)``; output ``(N, K)``, dtype and device of probs.

    Raises:
        ValueError: beta or gamma out of range. TypeError: not a real number.

    Example:
        >>> import torch
        >>> from stealguard.defenses import create
        >>> defense = create("reverse_sigmoid", beta=0.3, gamma=0.2)
        >>> out = defense(torch.zeros(1, 2), torch.tensor([[0.9, 0.1]]))
        >>> bool(out.argmax() == 0), round(float(out.sum()), 6)
        (True, 1.0)
    """

    name = "reverse_sigmoid"
    compute_dtype = None
    output_on_simplex = True

    def __init__(self, *, beta: float = DEFAULT_BETA, gamma: float = DEFAULT_GAMMA) -> None:
        self.beta = check_number("beta", beta, low=0)
        self.gamma = check_number("gamma", gamma, low=0, low_inclusive=False)

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        """``N(y - r(y))`` ``(N, K)``; for ``beta <= 1`` without clamping or checking (no entry can fall below 0).

        For ``y <= 1/2``, ``r(y) <= 0``, so the entry stays ``>= y``; for ``y > 1/2``, ``r(y) < beta / 2``
        and the entry stays above ``(1 - beta) / 2 >= 0``. Each row has an entry ``<= 1/2``, so its
        total is positive. Larger ``beta`` goes through the boundary's clamp and check.
        """
        values = minus_reverse_sigmoid(probs, beta=self.beta, gamma=self.gamma)
        if self.beta > 1:
            return output_onto_simplex(self.name, values)
        return values.div_(values.sum(dim=1, keepdim=True))

    def params(self) -> dict[str, Any]:
        return {"beta": self.beta, "gamma": self.gamma}

    def argmax_threshold(self) -> float | None:
        """Rows whose top probability exceeds this keep their argmax (0.0: all rows; None: no promise)."""
        return argmax_threshold(self.beta, self.gamma)
