"""Inverting MAD-argmax (Orekondy et al., ICLR 2020, Sec. 4.3).

MAD-argmax targets ``t_S = (1_S + w e_c) / (|S| + w)`` (``w`` 1e-5 for K <= 10, where the defense's
default search is the reference code's exhaustive one, else 1e-3; ``c`` the top class, kept
by the answer) for a class set ``S`` containing ``c``, and answers
``y~ = (1 - alpha) y + alpha t_S`` with ``alpha = epsilon / ||t_S - y||_p``. As for MAD::

    alpha = epsilon / (||y~ - t_S||_p + epsilon),      y = (y~ - alpha t_S) / (1 - alpha)

``S`` is unknown. Its members other than ``c`` received ``alpha / (|S| + w)`` each and are
classes the clean posterior nearly excludes, so they are the next-largest answer entries
whenever that boost exceeds the clean mass of the classes outside ``S``: the candidates are
``S_m = {c} + the m largest other answer entries``, m = 0..K-1. A candidate is valid when
every recovered entry is >= -tol; the inverter keeps the largest valid set (a set with a
class outside ``S`` subtracts a boost that class never got, which drives a nearly empty entry
negative). Sets that are not of this form (the greedy search left out a class of large clean
mass, whose answer then ranks above boosted ones) are misread. Cost O(N K^2) (rows in chunks
of bounded memory).

Unknown ``epsilon``: each (row, m >= 1) implies the budget under which the smallest boosted
entry's clean mass is exactly 0; the estimate is the densest cluster of these values
(:func:`~stealguard.attacks.inversion.estimate.densest_cluster`), as for MAD.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from stealguard._checks import check_choice, check_int, check_number
from stealguard.attacks.inversion.base import Inverter
from stealguard.attacks.inversion.estimate import densest_cluster
from stealguard.defenses.mad import (
    EXHAUSTIVE_MAX_CLASSES,
    REFERENCE_TOP_CLASS_WEIGHT,
    TOP_CLASS_WEIGHT,
)
from stealguard.defenses.simplex import MAX_DISTANCE, NORMS, distance

CHUNK_ELEMENTS = 4_000_000
"""Most entries of the (rows, K, K) candidate tensor built at once."""


def default_top_weight(num_classes: int) -> float:
    """The top class's extra weight ``w`` ``mad_argmax`` uses by default for K classes: the reference code's
    1e-5 where its default search is exhaustive (K <= 10), this project's 1e-3 where it is greedy."""
    return REFERENCE_TOP_CLASS_WEIGHT if num_classes <= EXHAUSTIVE_MAX_CLASSES else TOP_CLASS_WEIGHT


def set_targets(answers: Tensor, top_weight: float | None = None) -> tuple[Tensor, Tensor]:
    """Candidate targets ``(N, K, K)`` (candidate m: ``S_m``) and, per candidate, the boosted-class mask ``(N, K, K)``.

    ``top_weight``: the top class's extra weight ``w`` (default :func:`default_top_weight`).
    """
    n, k = answers.shape
    top = answers.argmax(dim=1, keepdim=True)
    others = answers.scatter(1, top, -1.0).argsort(dim=1, descending=True)[:, : k - 1]
    rank_of = torch.full((n, k), k, dtype=torch.long, device=answers.device)
    rank_of.scatter_(1, others, torch.arange(1, k, device=answers.device).expand(n, k - 1).clone())
    sizes = torch.arange(k, device=answers.device)
    boosted = rank_of.unsqueeze(1) <= sizes.view(1, k, 1)
    weight = default_top_weight(k) if top_weight is None else top_weight
    members = boosted.to(answers.dtype).scatter(2, top.unsqueeze(1).expand(n, k, 1), 1.0 + weight)
    return members / members.sum(dim=2, keepdim=True), boosted


def _chunks(answers: Tensor) -> tuple[Tensor, ...]:
    """Row blocks of ``answers`` whose candidate tensors hold at most ``CHUNK_ELEMENTS`` entries."""
    k = answers.shape[1]
    return answers.split(max(1, CHUNK_ELEMENTS // (k * k)))


class MADArgmaxInversion(Inverter):
    """Undo ``mad_argmax``, with its budget known or estimated from the answers.

    Args:
        epsilon: the defense's budget, or None (default) to estimate it.
        norm: ``"l1"`` (default) or ``"l2"``.
        tol: slack on recovered entries, in (0, 0.1] (default 1e-3).
        memory: answer rows pooled for the estimate, >= 1 (default 50000).
        top_weight: the defense's ``top_weight``, in (0, 1], or None (default) for its default for
            K classes (:func:`default_top_weight`).

    Exact when ``epsilon`` is known and ``S`` is a candidate set that is selected; rows the
    defense answered with ``y`` itself (its argmax fallback) are then usually misread.
    """

    name = "mad_argmax"
    exact = True

    def __init__(
        self, *, epsilon: float | None = None, norm: str = "l1", tol: float = 1e-3, memory: int = 50_000,
        top_weight: float | None = None,
    ) -> None:
        self.norm = check_choice("norm", norm, NORMS)
        self.epsilon = None if epsilon is None else check_number(
            "epsilon", epsilon, low=0, high=MAX_DISTANCE[self.norm], low_inclusive=False
        )
        self.tol = check_number("tol", tol, low=0, high=0.1, low_inclusive=False)
        self.memory = check_int("memory", memory, low=1)
        self.top_weight = None if top_weight is None else check_number("top_weight", top_weight, low=0, high=1, low_inclusive=False)
        self._seen: Tensor | None = None
        self.estimated_epsilon: float | None = None

    def params(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "norm": self.norm, "top_weight": self.top_weight}

    def _invert(self, answers: Tensor) -> Tensor:
        epsilon = self.epsilon if self.epsilon is not None else self._estimate(answers)
        if epsilon is None:
            return answers
        return torch.cat([self._invert_chunk(chunk, epsilon) for chunk in _chunks(answers)])

    def _invert_chunk(self, answers: Tensor, epsilon: float) -> Tensor:
        n, k = answers.shape
        targets, _ = set_targets(answers, self.top_weight)
        spread = answers.unsqueeze(1).expand_as(targets)
        d = distance(spread.reshape(-1, k), targets.reshape(-1, k), self.norm).view(n, k, 1)
        alpha = (epsilon / (d + epsilon)).clamp(max=1 - 1e-15)
        candidates = (spread - alpha * targets) / (1 - alpha)
        valid = candidates.amin(dim=2) >= -self.tol
        # The largest valid set: adding a class outside S would subtract a boost it never got.
        best = (valid * torch.arange(1, k + 1, device=answers.device)).argmax(dim=1)
        recovered = candidates[torch.arange(n, device=answers.device), best]
        return torch.where(valid.any(dim=1, keepdim=True), recovered, answers)

    def _estimate(self, answers: Tensor) -> float | None:
        pooled = answers if self._seen is None else torch.cat([self._seen.to(answers), answers])
        self._seen = pooled[-self.memory :].cpu()
        implied = []
        for chunk in _chunks(pooled):
            targets, boosted = set_targets(chunk, self.top_weight)
            boosted = boosted & (chunk.unsqueeze(1) < chunk.amax(dim=1).view(-1, 1, 1))
            spread = chunk.unsqueeze(1).expand_as(targets)
            rows, k = chunk.shape
            d = distance(spread.reshape(-1, k), targets.reshape(-1, k), self.norm).view(rows, k)
            # alpha at which the smallest boosted class's clean entry is exactly 0.
            ratio = torch.where(boosted, spread / targets, torch.inf)
            alpha = ratio.amin(dim=2)
            entry = spread.gather(2, ratio.argmin(dim=2, keepdim=True)).squeeze(2)
            inside = boosted.any(dim=2) & (entry > self.tol) & (alpha < 1)
            implied.append((alpha * d / (1 - alpha).clamp_min(1e-15))[inside])
        estimate = densest_cluster(torch.cat(implied), width=self.tol, floor=self.tol)
        self.estimated_epsilon = None if estimate is None else min(estimate, MAX_DISTANCE[self.norm])
        return self.estimated_epsilon
