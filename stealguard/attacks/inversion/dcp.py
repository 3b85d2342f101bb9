"""Inverting DCP (Khaled et al. 2023, arXiv:2309.01838): only the rows its detector perturbed need undoing.

DCP answers ``y~ = N(y - a(y) r(y))`` with ``a(y) = S(-nu (max y - tau))`` (then, with ``epsilon``
set, ``y~ <- y + min(1, epsilon / ||y~ - y||_1)(y~ - y)``). With ``nu`` large ``a`` is a near
step: rows with ``max y`` above ``tau`` come back unchanged (``a < 1e-8`` once
``max y > tau + 18 / nu``) and rows below get the full reverse-sigmoid map
(:mod:`stealguard.attacks.inversion.reverse_sigmoid`). Reverse sigmoid lowers the top entry,
so an answer with ``max y~ > tau`` is an unchanged row and is kept; the others are inverted
as reverse sigmoid with ``a = 1`` (without a budget), or, with a budget, by the fixed-point
iteration ``y <- (y~ - s R(y)) / (1 - s)``, ``s = min(1, epsilon / ||R(y) - y||_1)``, ``R`` the
reverse-sigmoid answer, started from the reverse-sigmoid inversion and kept only where the
re-applied defense reproduces the answer within ``tol`` (else the answer is kept). Rows whose
top entry lies within a few ``1/nu`` of ``tau`` (detector between 0 and 1) are read as full
perturbations and misread.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from stealguard._checks import check_number
from stealguard.attacks.inversion.base import Inverter
from stealguard.attacks.inversion.reverse_sigmoid import (
    MonotonePieces,
    invert_renormalised_map,
)
from stealguard.defenses.dcp import low_confidence_weight
from stealguard.defenses.reverse_sigmoid import (
    reverse_sigmoid_noise,
    subtract_and_renormalise,
)
from stealguard.defenses.simplex import shrink_to_budget

FIXED_POINT_STEPS = 60


def dcp_forward(probs: Tensor, *, tau: float, beta: float, gamma: float, nu: float, epsilon: float | None) -> Tensor:
    """DCP's answer to clean rows ``probs`` ``(N, K)`` (the defense's equations, for verification)."""
    weight = low_confidence_weight(probs, tau=tau, nu=nu)
    perturbed = subtract_and_renormalise(probs, weight * reverse_sigmoid_noise(probs, beta=beta, gamma=gamma))
    return perturbed if epsilon is None else shrink_to_budget(probs, perturbed, epsilon=epsilon, norm="l1")


class DCPInversion(Inverter):
    """Undo ``dcp`` with known parameters (defaults: the defense's). ``tol``: residual accepted, in (0, 0.1] (default 1e-6).

    Args as :class:`~stealguard.defenses.dcp.DCP` (``beta`` in [0, 1) here).
    """

    name = "dcp"
    exact = False

    def __init__(
        self,
        *,
        tau: float = 0.8,
        beta: float = 0.3,
        gamma: float = 0.2,
        nu: float = 1000.0,
        epsilon: float | None = None,
        tol: float = 1e-6,
    ) -> None:
        self.tau = check_number("tau", tau, low=0, high=1, low_inclusive=False)
        self.beta = check_number("beta", beta, low=0, high=1, high_inclusive=False)
        self.gamma = check_number("gamma", gamma, low=0, low_inclusive=False)
        self.nu = check_number("nu", nu, low=0, low_inclusive=False)
        self.epsilon = None if epsilon is None else check_number("epsilon", epsilon, low=0, high=2, low_inclusive=False)
        self.tol = check_number("tol", tol, low=0, high=0.1, low_inclusive=False)
        self._pieces: MonotonePieces | None = None

    def params(self) -> dict[str, Any]:
        return {"tau": self.tau, "beta": self.beta, "gamma": self.gamma, "nu": self.nu, "epsilon": self.epsilon}

    def _forward(self, probs: Tensor) -> Tensor:
        return dcp_forward(probs, tau=self.tau, beta=self.beta, gamma=self.gamma, nu=self.nu, epsilon=self.epsilon)

    def _invert(self, answers: Tensor) -> Tensor:
        perturbed = (answers.amax(dim=1) <= self.tau).nonzero().squeeze(1)
        if perturbed.numel() == 0 or self.beta == 0:
            return answers
        if self._pieces is None:
            self._pieces = MonotonePieces(beta=self.beta, gamma=self.gamma)
        rows = answers[perturbed]
        guess = invert_renormalised_map(rows, self._pieces)
        guess = torch.where(torch.isfinite(guess).all(dim=1, keepdim=True), guess, rows)
        if self.epsilon is not None:
            guess = self._fixed_point(rows, guess)
        residual = (self._forward(guess.clamp_min(0) / guess.clamp_min(0).sum(dim=1, keepdim=True)) - rows).abs().sum(dim=1)
        accepted = torch.where((residual <= self.tol).unsqueeze(1), guess, rows)
        return answers.index_copy(0, perturbed, accepted)

    def _fixed_point(self, rows: Tensor, guess: Tensor) -> Tensor:
        """Solve ``y + s (R(y) - y) = y~`` for ``y`` by iterating from ``guess`` (module docstring)."""
        y = guess
        for _ in range(FIXED_POINT_STEPS):
            y = y.clamp_min(0)
            y = y / y.sum(dim=1, keepdim=True)
            full = subtract_and_renormalise(y, reverse_sigmoid_noise(y, beta=self.beta, gamma=self.gamma))
            length = (full - y).abs().sum(dim=1, keepdim=True)
            step = torch.where(length > self.epsilon, self.epsilon / length.clamp_min(1e-300), torch.ones_like(length))
            y = torch.where(step < 1, (rows - step * full) / (1 - step).clamp_min(1e-12), guess)
        return y
