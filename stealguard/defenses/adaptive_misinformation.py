"""``adaptive_misinformation``: answer low-confidence (likely out-of-distribution) queries with a misinformation model.

Kariyappa & Qureshi, "Defending Against Model Stealing Attacks with Adaptive Misinformation",
CVPR 2020 (arXiv:1911.07100). Model-stealing attacks query with out-of-distribution inputs,
on which the victim's top probability is low; the defense blends the victim's posterior
``y = f(x)`` with the posterior of a *misinformation model* ``y^ = softmax(f^(x))`` trained to
put low probability on the true class (:mod:`stealguard.defenses.misinformation`)::

    alpha(y) = 1 / (1 + exp(nu (max_i y_i - tau)))
    y~       = (1 - alpha(y)) y + alpha(y) y^

``alpha`` is the same soft low-confidence detector as ``dcp``
(:func:`stealguard.defenses.dcp.low_confidence_weight`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from stealguard._checks import check_number
from stealguard.defenses.base import Defense
from stealguard.defenses.dcp import low_confidence_weight

ARGMAX_MARGIN = 1e-6
"""Safety margin added to the proven argmax threshold (float64 round-off is ~1e-16; the margin
of the blend grows at rate >= 1 above the threshold, so 1e-6 leaves ~1e-6 of headroom)."""


def blend_argmax_threshold(*, tau: float, nu: float) -> float | None:
    """Smallest top probability ``m`` above which ``(1 - alpha) y + alpha y^`` keeps ``argmax y`` for any ``y^``.

    For a row with top entry ``y_c = m > 1/2`` every other entry is ``<= 1 - m``, so for any
    ``y^`` on the simplex ``y~_c - y~_j >= (1 - alpha)(2m - 1) - alpha``, which is tight
    (``y_j = 1 - m``, ``y^ = e_j``). It is positive iff ``g(m) = (2m - 1) - 2m alpha(m) > 0``;
    ``g`` increases in ``m`` (``alpha`` decreases), so the threshold is its root in
    ``(1/2, 1]``, found by bisection in float64, plus :data:`ARGMAX_MARGIN`.

    Returns:
        the threshold in ``(1/2, 1)``, or None when even ``m = 1`` gives no margin (``tau``
        close to 1 or ``nu`` small: ``alpha(1) >= 1/2 - ARGMAX_MARGIN``).
    """

    def gap(m: float) -> float:
        alpha = 1.0 / (1.0 + math.exp(min(nu * (m - tau), 700.0)))
        return (2.0 * m - 1.0) - 2.0 * m * alpha

    low, high = 0.5, 1.0
    if gap(high - ARGMAX_MARGIN) <= 0.0:
        return None
    for _ in range(100):
        middle = 0.5 * (low + high)
        if gap(middle) > 0.0:
            high = middle
        else:
            low = middle
    threshold = high + ARGMAX_MARGIN
    return threshold if threshold < 1.0 else None


class AdaptiveMisinformation(Defense):
    """Adaptive Misinformation (Kariyappa & Qureshi, CVPR 2020; arXiv:1911.07100)::

        alpha(y) = 1 / (1 + exp(nu (max_i y_i - tau)))
        y~       = (1 - alpha(y)) y + alpha(y) softmax(f^(x))

    with ``f^`` the misinformation model (logits). A convex combination of two points of the
    simplex, so ``y~`` is on it. Confident rows (top probability well above ``tau``) are returned
    almost unchanged; uncertain rows get (almost) the misinformation posterior. Deterministic;
    rows are independent (the misinformation model runs in eval mode, without gradients, on
    ``x``'s device, to which it is moved on first use).

    Args:
        misinformation: an ``nn.Module`` mapping the query batch ``x`` ``(N, ...)`` to logits
            ``(N, K)``, typically trained with
            :func:`stealguard.defenses.misinformation.train_misinformation_model` (the CLI
            loads it from ``<victim_dir>/misinformation/`` or trains it there). Required.
        tau: detector threshold in (0, 1] (default 0.5). The paper sweeps ``tau`` to trace its
            security/accuracy trade-off and reports operating points costing benign users
            < 0.5% accuracy. 0.5 is close to one on digits (mlp victim, 96.7% clean): defender
            accuracy 96.1%, mean L1 0.027 on the test set, while Knockoff with 600 FashionMNIST
            queries drops from 72.7% to 31.5% (tau = 0.9: 86.4%, L1 0.27, attacker 7.5%).
            Raise it for victims that are confident in-distribution.
        nu: detector steepness, ``> 0`` (default 1000, a near-step at ``tau`` as in the paper;
            the authors' code uses 10000; same default as ``dcp``).

    Budget: none (``budget()`` is None): a row below ``tau`` may move by up to 2 in L1.

    Argmax: rows whose top probability exceeds :func:`blend_argmax_threshold` ``(tau, nu)`` keep
    their argmax whatever the misinformation model says (~0.5047 for the defaults,
    ~0.9002 for ``tau = 0.9``, just above 1/2 for ``tau`` well below 1/2); below it no promise. Ties aside.

    Shape:
        x: ``(N, ...)`` as the misinformation model takes it; probs ``(N, K)``; output
        ``(N, K)``, dtype and device of probs.

    Raises:
        ValueError: a parameter out of range, or no misinformation model. TypeError: a parameter
            of the wrong type. At call time, ValueError when the model's output is not ``(N, K)``
            or not finite.
    """

    name = "adaptive_misinformation"
    requires = ("misinformation",)

    def __init__(self, *, misinformation: nn.Module | None = None, tau: float = 0.5, nu: float = 1000.0) -> None:
        if misinformation is None:
            raise ValueError(
                f"{self.name} needs misinformation=<nn.Module> (a model trained to put low probability on the true class); "
                "the CLI loads or trains one next to the victim"
            )
        if not isinstance(misinformation, nn.Module):
            raise TypeError(f"misinformation must be an nn.Module, got {type(misinformation).__name__}")
        self.misinformation = misinformation.eval()
        self.tau = check_number("tau", tau, low=0, high=1, low_inclusive=False)
        self.nu = check_number("nu", nu, low=0, low_inclusive=False)
        self._argmax_threshold = blend_argmax_threshold(tau=self.tau, nu=self.nu)

    def misinformation_probs(self, x: Tensor) -> Tensor:
        """``softmax(f^(x))`` in float64 ``(N, K)`` on ``x``'s device (moves the model there)."""
        model = self.misinformation
        parameter = next(model.parameters(), None)
        if parameter is not None and parameter.device != x.device:
            model = self.misinformation = model.to(x.device)
        model.eval()
        with torch.no_grad():
            logits = model(x.float())
        return torch.softmax(logits.double(), dim=1)

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        misinformed = self.misinformation_probs(x)
        if misinformed.shape != probs.shape:
            raise ValueError(
                f"misinformation model must map x to logits of shape {tuple(probs.shape)}, got {tuple(misinformed.shape)}"
            )
        if not bool(torch.isfinite(misinformed).all()):
            raise ValueError("misinformation model returned non-finite logits")
        weight = low_confidence_weight(probs, tau=self.tau, nu=self.nu)
        return (1 - weight) * probs + weight * misinformed

    def params(self) -> dict[str, Any]:
        return {"tau": self.tau, "nu": self.nu}

    def budget(self) -> tuple[str, float] | None:
        return None

    def argmax_threshold(self) -> float | None:
        """Rows whose top probability exceeds this keep their argmax (None: no promise); see :func:`blend_argmax_threshold`."""
        return self._argmax_threshold
