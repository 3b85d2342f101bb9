"""Inverting DCP (Khaled et al. 2023, arXiv:2309.01838): only the rows its detector perturbed need undoing.

DCP answers ``y~ = N(y - a(y) r(y))`` with ``a(y) = S(-nu (max y - tau))`` (then, with ``epsilon``
set, ``y~ <- y + min(1, epsilon / ||y~ - y||_1)(y~ - y)``). With ``nu`` large ``a`` is a near
step: rows with ``max y`` above ``tau`` come back unchanged (``a < 1e-8`` once
``max y > tau + 18 / nu``) and rows below get the full reverse-sigmoid map
(:mod:`stealguard.attacks.inversion.reverse_sigmoid`). Reverse sigmoid lowers the top entry,
so an answer with ``max y~ > tau`` is an unchanged row and is kept; the others are inverted
as reverse sigmoid with ``a = 1`` (without a budget; a row whose clean entries lie on both sides
of a fold has no exact solution under one preimage rule, and the closest is kept), or, with a
budget, by the fixed-point iteration ``y <- (y~ - s R(y)) / (1 - s)``, ``s = min(1, epsilon / ||R(y) - y||_1)``, ``R`` the
reverse-sigmoid answer, started from the reverse-sigmoid inversion and kept only where the
re-applied defense reproduces the answer within ``tol`` (else the answer is kept). Rows whose
top entry lies within a few ``1/nu`` of ``tau`` (detector between 0 and 1) are read as full
perturbations and misread.

``variant="authors"`` (the authors' ``method_dcp``, :func:`stealguard.defenses.dcp.authors_minus_noise`):
the detector threshold is ``beta`` and the per-entry map is ``g(y) = y - beta (S(gamma L(y)) - 1/2)``
with ``L(y) = log(clamp(y / (1 - y), 1e-12, 1 - 1e-12))``: ``g(y) = y`` for ``y >= 1/2``, ``g >= y``,
folded near 0 like reverse sigmoid's map but not symmetric. Answers with ``max y~ > beta`` are kept;
the others are inverted with the same renormalised-map solver, taking each entry's smallest
preimage below 1/2 and its largest above.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from stealguard._checks import check_choice, check_number
from stealguard.attacks.inversion.base import Inverter
from stealguard.attacks.inversion.reverse_sigmoid import (
    BRANCHES,
    MonotonePieces,
    check_unclamped_beta,
    invert_renormalised_map,
)
from stealguard.defenses.dcp import (
    AUTHORS_RATIO_CLAMP,
    VARIANTS,
    authors_minus_noise,
    low_confidence_weight,
)
from stealguard.defenses.reverse_sigmoid import (
    reverse_sigmoid_noise,
    subtract_and_renormalise,
)
from stealguard.defenses.simplex import shrink_to_budget

FIXED_POINT_STEPS = 60


def dcp_forward(
    probs: Tensor, *, tau: float | None, beta: float, gamma: float, nu: float, epsilon: float | None, variant: str = "paper"
) -> Tensor:
    """DCP's answer to clean rows ``probs`` ``(N, K)`` (the defense's equations, for verification)."""
    if variant == "authors":
        grown = authors_minus_noise(probs, beta=beta, gamma=gamma, nu=nu)
        perturbed = grown / grown.sum(dim=1, keepdim=True)
    else:
        weight = low_confidence_weight(probs, tau=tau, nu=nu)
        perturbed = subtract_and_renormalise(probs, weight * reverse_sigmoid_noise(probs, beta=beta, gamma=gamma))
    return perturbed if epsilon is None else shrink_to_budget(probs, perturbed, epsilon=epsilon, norm="l1")


def authors_map(y: Tensor, *, beta: float, gamma: float) -> Tensor:
    """The authors' per-entry map ``g(y) = y - beta (S(gamma L(y)) - 1/2)`` (module docstring), elementwise."""
    ratio = (y / (1 - y)).clamp(AUTHORS_RATIO_CLAMP, 1 - AUTHORS_RATIO_CLAMP)
    return y - beta * (torch.sigmoid(gamma * ratio.log()) - 0.5)


def authors_slope(y: Tensor, *, beta: float, gamma: float) -> Tensor:
    """``g'(y)``: ``1 - beta gamma S'(gamma L) / (y (1 - y))`` where the ratio is inside its clamp, else 1."""
    ratio = y / (1 - y)
    inside = (ratio > AUTHORS_RATIO_CLAMP) & (ratio < 1 - AUTHORS_RATIO_CLAMP)
    safe = y.clamp(1e-300, 0.5)
    s = torch.sigmoid(gamma * (safe / (1 - safe)).log())
    return torch.where(inside, 1 - beta * gamma * s * (1 - s) / (safe * (1 - safe)), torch.ones_like(y))


class DCPInversion(Inverter):
    """Undo ``dcp`` with known parameters (defaults: the defense's). ``tol``: with a budget, the residual accepted, in (0, 0.1] (default 1e-6).

    Args as :class:`~stealguard.defenses.dcp.DCP` (``variant="paper"``: ``tau`` defaults to 0.8 and
    ``beta`` must be in ``[0, positive_map_beta_bound(gamma))``, 2.16 for ``gamma = 0.2``, where
    the map clamps no entry at 0; ``variant="authors"``: ``tau`` must be None, ``beta`` >= 0 is also
    the detector threshold). The parameters are not estimated. ``branch``: the preimage rule of
    :func:`~stealguard.attacks.inversion.reverse_sigmoid.invert_renormalised_map` for the perturbed
    rows, ``"outer"`` (default), ``"inner"`` or ``"auto"``: DCP perturbs only rows it is unsure of,
    whose entries lie between the folds when the queries are far from the victim's data (``"inner"``
    is then right) but near 0 for in-distribution queries (``"outer"``); the attacker's choice.
    """

    name = "dcp"
    exact = False

    def __init__(
        self,
        *,
        tau: float | None = None,
        beta: float = 0.3,
        gamma: float = 0.2,
        nu: float = 1000.0,
        epsilon: float | None = None,
        tol: float = 1e-6,
        variant: str = "paper",
        branch: str = "outer",
    ) -> None:
        self.variant = check_choice("variant", variant, VARIANTS)
        self.branch = check_choice("branch", branch, BRANCHES)
        self.gamma = check_number("gamma", gamma, low=0, low_inclusive=False)
        if self.variant == "authors":
            if tau is not None:
                raise ValueError(f"tau must be None for variant='authors' (beta is its detector threshold), got {tau!r}")
            self.tau: float | None = None
            self.beta = check_number("beta", beta, low=0)
        else:
            self.tau = check_number("tau", 0.8 if tau is None else tau, low=0, high=1, low_inclusive=False)
            self.beta = check_unclamped_beta(beta, self.gamma)
        self.nu = check_number("nu", nu, low=0, low_inclusive=False)
        self.epsilon = None if epsilon is None else check_number("epsilon", epsilon, low=0, high=2, low_inclusive=False)
        self.tol = check_number("tol", tol, low=0, high=0.1, low_inclusive=False)
        self._pieces: MonotonePieces | None = None

    def params(self) -> dict[str, Any]:
        return {
            "tau": self.tau, "beta": self.beta, "gamma": self.gamma, "nu": self.nu, "epsilon": self.epsilon, "variant": self.variant,
            "branch": self.branch,
        }

    def _forward(self, probs: Tensor) -> Tensor:
        return dcp_forward(
            probs, tau=self.tau, beta=self.beta, gamma=self.gamma, nu=self.nu, epsilon=self.epsilon, variant=self.variant
        )

    def _full(self, y: Tensor) -> Tensor:
        """The fully perturbed answer (detector 1) to rows ``y``, before any budget."""
        if self.variant == "authors":
            grown = authors_map(y, beta=self.beta, gamma=self.gamma)
            return grown / grown.sum(dim=1, keepdim=True)
        return subtract_and_renormalise(y, reverse_sigmoid_noise(y, beta=self.beta, gamma=self.gamma))

    def _invert(self, answers: Tensor) -> Tensor:
        threshold = self.beta if self.variant == "authors" else self.tau
        perturbed = (answers.amax(dim=1) <= threshold).nonzero().squeeze(1)
        if perturbed.numel() == 0 or self.beta == 0:
            return answers
        if self._pieces is None:
            if self.variant == "authors":
                self._pieces = MonotonePieces(
                    beta=self.beta, gamma=self.gamma, forward=authors_map, slope=authors_slope, symmetric=False
                )
            else:
                self._pieces = MonotonePieces(beta=self.beta, gamma=self.gamma)
        rows = answers[perturbed]
        guess = invert_renormalised_map(rows, self._pieces, branch=self.branch)
        guess = torch.where(torch.isfinite(guess).all(dim=1, keepdim=True), guess, rows)
        if self.epsilon is None:
            return answers.index_copy(0, perturbed, guess)
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
            full = self._full(y)
            length = (full - y).abs().sum(dim=1, keepdim=True)
            step = torch.where(length > self.epsilon, self.epsilon / length.clamp_min(1e-300), torch.ones_like(length))
            y = torch.where(step < 1, (rows - step * full) / (1 - step).clamp_min(1e-12), guess)
        return y
