"""``dcp``: reverse-sigmoid deception switched on by a soft low-confidence detector.

Two variants: the paper's formula (``variant="paper"``, separate detector threshold ``tau``)
and the function the authors' code runs (``variant="authors"``, :func:`authors_minus_noise`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from stealguard._checks import check_choice, check_number
from stealguard.defenses.base import Defense, constant
from stealguard.defenses.reverse_sigmoid import argmax_threshold, minus_reverse_sigmoid
from stealguard.defenses.simplex import shrink_to_budget


def low_confidence_weight(probs: Tensor, *, tau: float, nu: float) -> Tensor:
    """Detector ``alpha(y) = 1 / (1 + exp(nu (max_i y_i - tau)))`` per row, in (0, 1).

    Close to 1 for rows whose top probability is below ``tau`` (uncertain, typical of
    out-of-distribution attack queries), close to 0 above it; exactly 1/2 at ``tau``.
    Computed as ``sigmoid(-nu (max - tau))``, which never overflows.

    Shape:
        probs: ``(N, K)``; returns ``(N, 1)``.
    """
    return probs.amax(dim=1, keepdim=True).sub_(constant(tau, probs)).mul_(constant(-nu, probs)).sigmoid_()


VARIANTS = ("paper", "authors")
"""``dcp``'s variants: the paper's formula (default) and the authors' ``method_dcp``."""

PAPER_TAU = 0.8
"""The detector threshold ``tau`` of ``variant="paper"`` when none is given."""

AUTHORS_RATIO_CLAMP = 1e-12
"""``method_dcp`` clamps ``y / (1 - y)`` to ``[1e-12, 1 - 1e-12]`` before the log."""


def authors_minus_noise(probs: Tensor, *, beta: float, gamma: float, nu: float) -> Tensor:
    """The DCP authors' ``method_dcp`` before its final division by the row sum (the boundary's ``N``).

    ``alpha = 1 / (1 + exp(nu (max_i y_i - beta)))`` (``beta`` is also the detector threshold),
    ``L(y) = log(clamp(y / (1 - y), 1e-12, 1 - 1e-12))``, ``r = beta (S(gamma L(y)) - 1/2)``,
    returns ``y - alpha r``. ``L <= log(1 - 1e-12) < 0``, so ``r <= 0``: every entry grows
    (entries >= 1/2 by at most ``beta gamma 2.5e-13``, i.e. no noise), none turns negative, and
    the row sum is >= 1. In ``probs``' dtype, in place on one temporary; the detector is computed
    as ``sigmoid(-nu (max - beta))``, equal to the authors' reciprocal without its overflow.

    Shape:
        probs: ``(N, K)``; returns ``(N, K)``.
    """
    weight = low_confidence_weight(probs, tau=beta, nu=nu).mul_(constant(-beta, probs))
    ratio = torch.div(probs, 1 - probs).clamp_(AUTHORS_RATIO_CLAMP, 1 - AUTHORS_RATIO_CLAMP)
    squashed = ratio.log_().mul_(constant(gamma, probs)).sigmoid_()
    return squashed.sub_(constant(0.5, probs)).mul_(weight).add_(probs)


def authors_argmax_threshold(beta: float, gamma: float) -> float | None:
    """Top probability above which ``method_dcp`` keeps the argmax (0.0: every row; None: no promise).

    Per entry the answer is ``f(y) = y - alpha beta (S(gamma L(y)) - 1/2)`` before ``N``, with
    ``alpha`` in [0, 1), ``f(y) >= y`` and ``f(y) = y`` up to 1e-12 for ``y >= 1/2``.

    * ``0.0`` when ``f`` is increasing on [0, 1/2]: ``f'(y) = 1 - alpha beta gamma S'(gamma t) /
      S'(t)`` (``t = logit y`` between the clamp ``T = log 1e-12`` and 0; constant slope 1 below
      the clamp), so ``beta gamma <= 1`` for ``gamma >= 1`` and ``beta gamma S'(gamma T) / S'(T)
      <= 1`` for ``gamma < 1``.
    * ``0.5`` when ``gamma <= 1`` and ``beta <= 1``: for a top entry ``a > 1/2`` every other entry
      is ``b <= 1 - a < 1/2`` and ``S(gamma L(b)) >= b``, so ``f(b) <= (1 - alpha beta) b +
      alpha beta / 2 < a <= f(a)``.
    """
    edge = math.log(AUTHORS_RATIO_CLAMP)

    def sigmoid_slope(t: float) -> float:
        s = 1.0 / (1.0 + math.exp(-t))
        return s * (1.0 - s)

    ratio = 1.0 if gamma >= 1 else sigmoid_slope(gamma * edge) / sigmoid_slope(edge)
    if beta == 0 or beta * gamma * ratio <= 1:
        return 0.0
    if gamma <= 1 and beta <= 1:
        return 0.5
    return None


class DCP(Defense):
    """Deceptive perturbation gated by confidence (Khaled et al., "Efficient Defense Against
    Model Stealing Attacks on Convolutional Neural Networks", 2023; arXiv:2309.01838)::

        alpha(y) = 1 / (1 + exp(nu (max_i y_i - tau)))
        r(y)     = beta * (S(gamma * S^-1(y)) - 1/2)          (reverse sigmoid, Lee et al.)
        y~       = N(y - alpha(y) * r(y))

    (``variant="paper"``, the default), then, when ``epsilon`` is set and ``||y~ - y||_1 > epsilon``,
    ``y~ <- y + (epsilon / ||y~ - y||_1) (y~ - y)`` (a convex combination: stays on the simplex).
    ``N`` clamps negative entries to 0 and renormalises (a row with nothing positive left would
    be returned unchanged; this cannot happen, see
    :func:`stealguard.defenses.reverse_sigmoid.subtract_and_renormalise`). Confident rows
    (top probability above ``tau``) are returned almost unchanged; uncertain rows get the full
    reverse-sigmoid deception. Deterministic; rows are independent. Computed in the input's
    dtype (float32 rows stay float32: rows sum to 1 within 1e-6, the budget holds within 1e-6).

    ``variant="authors"``: the function the authors' code runs (``method_dcp`` in
    ``df/defenses.py`` of github.com/KacemKhaled/defending-extraction; :func:`authors_minus_noise`)::

        alpha(y) = 1 / (1 + exp(nu (max_i y_i - beta)))        (beta is also the threshold)
        L(y)     = log(clamp(y / (1 - y), 1e-12, 1 - 1e-12))
        y~       = N(y - alpha(y) * beta * (S(gamma * L(y)) - 1/2))

    One value ``beta`` is both the detector threshold and the noise scale (their ``run_all.sh``
    sweeps it over 0 to 1.5; ``get_queries.py`` sets ``gamma`` 0.2, or 0.1 on CIFAR-100). The
    clamp caps ``L`` just below 0, so entries above 1/2 get no noise and entries below grow;
    ``N`` divides by the row sum (no clamp is needed: no entry turns negative). ``tau`` is not
    used (leave it None). ``epsilon`` applies as for the paper's variant (the authors have none).

    Args:
        tau: confidence threshold of the detector, in (0, 1], or None (default): 0.8 for
            ``variant="paper"``; must be None for ``variant="authors"``.
        beta: perturbation magnitude, ``>= 0`` (default 0.3); for ``variant="authors"`` also the
            detector threshold.
        gamma: slope of the inner sigmoid, ``> 0`` (default 0.2).
        nu: sharpness of the detector, ``> 0`` (default 1000; a near-step at the threshold).
        epsilon: L1 distortion budget in (0, 2], or None (default) for none.
        variant: ``"paper"`` (default) or ``"authors"``.

    Budget: ``budget()`` returns ``("l1", epsilon)`` when epsilon is set, else None. ``y`` is
    the input row clamped at 0 and renormalised (identical for rows on the simplex; the base
    class accepts rows off it by up to 1e-3).

    Argmax: as for ``reverse_sigmoid`` with the same ``beta`` and ``gamma`` (``alpha <= 1`` only
    shrinks the noise, and the budget step keeps the order): every row when
    ``beta * gamma * S'(gamma T) / S'(T) <= 1`` (``gamma < 1``, ``T = logit(1 - 1e-7)``) or
    ``beta * gamma <= 1`` (``gamma >= 1``); rows with top probability above 1/2 when
    ``gamma <= 1`` and ``beta < 1`` (the defaults). See
    :func:`stealguard.defenses.reverse_sigmoid.argmax_threshold`. ``variant="authors"``: every
    row when ``beta * gamma * S'(gamma T) / S'(T) <= 1`` (``T = log 1e-12``) or ``beta * gamma
    <= 1`` (``gamma >= 1``); rows with top probability above 1/2 when ``gamma <= 1`` and ``beta
    <= 1``; see :func:`authors_argmax_threshold`. Ties aside.

    Shape:
        x: ``(N, ...)`` (unused); probs: ``(N, K)``; output ``(N, K)``, dtype and device of probs.

    Raises:
        ValueError: a parameter out of range. TypeError: a parameter of the wrong type.

    Example:
        >>> import torch
        >>> from stealguard.defenses import create
        >>> defense = create("dcp", tau=0.8, epsilon=0.5)
        >>> probs = torch.tensor([[0.95, 0.03, 0.02], [0.4, 0.35, 0.25]], dtype=torch.float64)
        >>> change = (defense(torch.zeros(2, 1), probs) - probs).abs().sum(dim=1)
        >>> bool(change[0] < 1e-6), bool(change[1] > 0.01)
        (True, True)
        >>> authors = create("dcp", variant="authors", beta=0.5)
        >>> out = authors(torch.zeros(2, 1), probs)
        >>> bool(torch.equal(out[0], probs[0])), bool(out[1, 0] < probs[1, 0])
        (True, True)
    """

    name = "dcp"
    compute_dtype = None

    def __init__(
        self,
        *,
        tau: float | None = None,
        beta: float = 0.3,
        gamma: float = 0.2,
        nu: float = 1000.0,
        epsilon: float | None = None,
        variant: str = "paper",
    ) -> None:
        self.variant = check_choice("variant", variant, VARIANTS)
        if self.variant == "authors" and tau is not None:
            raise ValueError(f"tau must be None for variant='authors' (beta is its detector threshold), got {tau!r}")
        if self.variant == "paper":
            tau = PAPER_TAU if tau is None else tau
            self.tau: float | None = check_number("tau", tau, low=0, high=1, low_inclusive=False)
        else:
            self.tau = None
        self.beta = check_number("beta", beta, low=0)
        self.gamma = check_number("gamma", gamma, low=0, low_inclusive=False)
        self.nu = check_number("nu", nu, low=0, low_inclusive=False)
        self.epsilon = None if epsilon is None else check_number("epsilon", epsilon, low=0, high=2, low_inclusive=False)

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        if self.tau is None:
            perturbed = authors_minus_noise(probs, beta=self.beta, gamma=self.gamma, nu=self.nu)
        else:
            weight = low_confidence_weight(probs, tau=self.tau, nu=self.nu)
            perturbed = minus_reverse_sigmoid(probs, beta=self.beta, gamma=self.gamma, weight=weight)
        if self.epsilon is None:
            return perturbed
        perturbed = perturbed.clamp_min_(0)
        perturbed = perturbed.div_(perturbed.sum(dim=1, keepdim=True))
        return shrink_to_budget(probs, perturbed, epsilon=self.epsilon, norm="l1")

    def params(self) -> dict[str, Any]:
        return {
            "tau": self.tau, "beta": self.beta, "gamma": self.gamma, "nu": self.nu, "epsilon": self.epsilon,
            "variant": self.variant,
        }

    def budget(self) -> tuple[str, float] | None:
        return None if self.epsilon is None else ("l1", self.epsilon)

    def argmax_threshold(self) -> float | None:
        """Rows whose top probability exceeds this keep their argmax (0.0: all rows; None: no promise)."""
        if self.variant == "authors":
            return authors_argmax_threshold(self.beta, self.gamma)
        return argmax_threshold(self.beta, self.gamma)
