"""``dcp``: reverse-sigmoid deception switched on by a soft low-confidence detector."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from stealguard._checks import check_number
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


class DCP(Defense):
    """Deceptive perturbation gated by confidence (Khaled et al., "Efficient Defense Against
    Model Stealing Attacks on Convolutional Neural Networks", 2023; arXiv:2309.01838)::

        alpha(y) = 1 / (1 + exp(nu (max_i y_i - tau)))
        r(y)     = beta * (S(gamma * S^-1(y)) - 1/2)          (reverse sigmoid, Lee et al.)
        y~       = N(y - alpha(y) * r(y))

    then, when ``epsilon`` is set and ``||y~ - y||_1 > epsilon``,
    ``y~ <- y + (epsilon / ||y~ - y||_1) (y~ - y)`` (a convex combination: stays on the simplex).
    ``N`` clamps negative entries to 0 and renormalises (a row with nothing positive left would
    be returned unchanged; this cannot happen, see
    :func:`stealguard.defenses.reverse_sigmoid.subtract_and_renormalise`). Confident rows
    (top probability above ``tau``) are returned almost unchanged; uncertain rows get the full
    reverse-sigmoid deception. Deterministic; rows are independent. Computed in the input's
    dtype (float32 rows stay float32: rows sum to 1 within 1e-6, the budget holds within 1e-6).

    Args:
        tau: confidence threshold of the detector, in (0, 1] (default 0.8).
        beta: perturbation magnitude, ``>= 0`` (default 0.3).
        gamma: slope of the inner sigmoid, ``> 0`` (default 0.2).
        nu: sharpness of the detector, ``> 0`` (default 1000; a near-step at ``tau``).
        epsilon: L1 distortion budget in (0, 2], or None (default) for none.

    Budget: ``budget()`` returns ``("l1", epsilon)`` when epsilon is set, else None. ``y`` is
    the input row clamped at 0 and renormalised (identical for rows on the simplex; the base
    class accepts rows off it by up to 1e-3).

    Argmax: as for ``reverse_sigmoid`` with the same ``beta`` and ``gamma`` (``alpha <= 1`` only
    shrinks the noise, and the budget step keeps the order): every row when
    ``beta * gamma * S'(gamma T) / S'(T) <= 1`` (``gamma < 1``, ``T = logit(1 - 1e-7)``) or
    ``beta * gamma <= 1`` (``gamma >= 1``); rows with top probability above 1/2 when
    ``gamma <= 1`` and ``beta < 1`` (the defaults). See
    :func:`stealguard.defenses.reverse_sigmoid.argmax_threshold`. Ties aside.

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
    """

    name = "dcp"
    compute_dtype = None

    def __init__(
        self,
        *,
        tau: float = 0.8,
        beta: float = 0.3,
        gamma: float = 0.2,
        nu: float = 1000.0,
        epsilon: float | None = None,
    ) -> None:
        self.tau = check_number("tau", tau, low=0, high=1, low_inclusive=False)
        self.beta = check_number("beta", beta, low=0)
        self.gamma = check_number("gamma", gamma, low=0, low_inclusive=False)
        self.nu = check_number("nu", nu, low=0, low_inclusive=False)
        self.epsilon = None if epsilon is None else check_number("epsilon", epsilon, low=0, high=2, low_inclusive=False)

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        weight = low_confidence_weight(probs, tau=self.tau, nu=self.nu)
        perturbed = minus_reverse_sigmoid(probs, beta=self.beta, gamma=self.gamma, weight=weight)
        if self.epsilon is None:
            return perturbed
        perturbed = perturbed.clamp_min_(0)
        perturbed = perturbed.div_(perturbed.sum(dim=1, keepdim=True))
        return shrink_to_budget(probs, perturbed, epsilon=self.epsilon, norm="l1")

    def params(self) -> dict[str, Any]:
        return {"tau": self.tau, "beta": self.beta, "gamma": self.gamma, "nu": self.nu, "epsilon": self.epsilon}

    def budget(self) -> tuple[str, float] | None:
        return None if self.epsilon is None else ("l1", self.epsilon)

    def argmax_threshold(self) -> float | None:
        """Rows whose top probability exceeds this keep their argmax (0.0: all rows; None: no promise)."""
        return argmax_threshold(self.beta, self.gamma)
