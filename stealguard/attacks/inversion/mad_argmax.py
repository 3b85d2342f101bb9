"""Inverting MAD-argmax (Orekondy et al., ICLR 2020, Sec. 4.3).

MAD-argmax targets ``t_S = (1_S + w e_c) / (|S| + w)`` (``w`` 1e-5 for K <= 10, where the defense's
default search is the reference code's exhaustive one, else 1e-3; ``c`` the top class, kept
by the answer) for a class set ``S`` containing ``c``, and answers
``y~ = (1 - alpha) y + alpha t_S`` with ``alpha = epsilon / ||t_S - y||_p``. As for MAD::

    alpha = epsilon / (||y~ - t_S||_p + epsilon),      y = (y~ - alpha t_S) / (1 - alpha)

``S`` is unknown. Every set whose recovered entries are all >= -tol is a valid candidate,
and there are many: the answer alone does not say which set the defense took. The defense
took the set maximising the angle between ``G^T t_S`` and ``G^T y``; with the last-layer
Jacobian that is the angle between ``t_S - p`` and ``y - p`` (``p`` the surrogate's posterior),
and a randomly initialised surrogate has ``p`` close to uniform ``u``. ``select="consistent"``
therefore keeps the valid candidates that a surrogate with ``p = u`` would have
answered with their own set: ``S`` minimises ``cos(t_S - u, y^(S) - u)`` over all sets with
the top class (within ``CONSISTENCY_MARGIN``). With ``p = u`` the best set of each size ``m`` is
the top class and the ``m - 1`` smallest other entries of ``y^(S)`` (``|t_S - u|`` depends on
``m`` alone), so the check costs a sort of K entries per candidate. Among the consistent
candidates the largest set wins (a set with a class outside ``S`` subtracts a boost that class
never got, which drives a nearly empty entry negative); where none is consistent, the rule of
``select="largest"`` applies: the candidates are ``S_m = {c} + the m largest other answer
entries``, m = 0..K-1, and the largest valid one is kept. Its members other than ``c`` received
``alpha / (|S| + w)`` each and are classes the clean posterior nearly excludes, so they are the
next-largest answer entries whenever that boost exceeds the clean mass of the classes outside
``S``; sets not of this form are misread. The consistent rule enumerates every set with the
top class for K <= ``EXHAUSTIVE_MAX_CLASSES`` (the defense's exhaustive search, ``2^(K-1)``
sets) and the nested ``S_m`` above (the defense's greedy search, which with ``p = u`` visits
exactly those). The uniform surrogate cannot tell apart the sets of a confident row (its
``y - u`` is nearly ``e_c - u``, whose angle to ``t_S - u`` depends on the sizes alone), where the
nested rule is reliable: ``select="auto"`` (default) keeps the nested candidate on rows whose
top entry is at least ``CONFIDENT_TOP`` and the consistent one elsewhere. Cost O(N 2^(K-1) K log K)
for K <= 10, O(N K^2 log K) above (rows in chunks of bounded memory).

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
    GREEDY_MARGIN,
    REFERENCE_TOP_CLASS_WEIGHT,
    TOP_CLASS_WEIGHT,
    subset_masks,
)
from stealguard.defenses.simplex import MAX_DISTANCE, NORMS, distance

CHUNK_ELEMENTS = 4_000_000
"""Most entries of a (rows, sets, K) candidate tensor built at once."""
SELECTIONS = ("auto", "consistent", "largest")
CONFIDENT_TOP = 0.8
"""``select="auto"``: rows whose largest valid nested candidate has a top entry at least this keep it (the
uniform surrogate cannot tell their sets apart); the others take the consistent candidate. Chosen among
0.5, 0.8 and 0.95 on the recovery rows (MNIST, Fashion-MNIST and synthetic queries, three budgets each)."""
CONSISTENCY_MARGIN = GREEDY_MARGIN
"""A candidate counts as the uniform surrogate's choice when its cosine is within this of the best set's
(the defense's own margin for near-equal sets)."""


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
    return set_targets_of(boosted, top.squeeze(1), weight, answers.dtype), boosted


def sets_with_top(top: Tensor, num_classes: int) -> Tensor:
    """Every class set that contains each row's top class: boolean ``(N, 2^(K-1), K)``.

    In the order of :func:`~stealguard.defenses.mad.subset_masks` (the reference code's), restricted to
    the sets holding ``top[i]``. Shape: ``top (N,)`` int64.
    """
    masks = subset_masks(num_classes, device=top.device).bool()
    per_class = torch.stack([masks[masks[:, c]] for c in range(num_classes)])
    return per_class[top]


def set_targets_of(members: Tensor, top: Tensor, top_weight: float, dtype: torch.dtype) -> Tensor:
    """Targets ``(1_S + w e_c) / (|S| + w)`` ``(N, S, K)`` of the boolean sets ``members`` ``(N, S, K)``, ``c = top``
    ``(N,)`` (added to every set whether ``members`` holds it or not)."""
    weights = members.to(dtype)
    index = top.view(-1, 1, 1).expand(members.shape[0], members.shape[1], 1)
    weights.scatter_(2, index, 1.0 + top_weight)
    return weights / weights.sum(dim=2, keepdim=True)


def recovered_candidates(answers: Tensor, targets: Tensor, epsilon: float, norm: str) -> Tensor:
    """``(y~ - alpha t) / (1 - alpha)`` with ``alpha = epsilon / (||y~ - t|| + epsilon)`` for every target ``(N, S, K)``."""
    n, sets, k = targets.shape
    spread = answers.unsqueeze(1).expand_as(targets)
    d = distance(spread.reshape(-1, k), targets.reshape(-1, k), norm).view(n, sets, 1)
    alpha = (epsilon / (d + epsilon)).clamp(max=1 - 1e-15)
    return (spread - alpha * targets) / (1 - alpha)


def _uniform_target_norm(size: Tensor, top_weight: float, num_classes: int) -> Tensor:
    """``||t_S - u||_2`` for sets of ``size`` classes (with the top class): ``(|S| + 2w + w^2) / (|S| + w)^2 - 1/K``, rooted."""
    return ((size + 2 * top_weight + top_weight**2) / (size + top_weight) ** 2 - 1 / num_classes).clamp_min(0).sqrt()


def uniform_surrogate_choice(candidates: Tensor, members: Tensor, top: Tensor, top_weight: float) -> Tensor:
    """Whether each candidate's set is the one MAD-argmax picks for it under a surrogate with posterior ``u``: ``(N, S)``.

    ``cos(t_S - u, v)`` with ``v = y^(S) - u`` (``u . v = 0``: candidates sum to 1) against the best
    cosine over all sets with the top class: for ``m`` classes that is the top class and the
    ``m - 1`` smallest other entries of ``v``, so one sort per candidate gives every size's best.
    Consistent: within :data:`CONSISTENCY_MARGIN` of the best.

    Shape:
        candidates: ``(N, S, K)`` recovered posteriors; members: boolean ``(N, S, K)`` (sets with the top class);
        top: ``(N,)``; returns boolean ``(N, S)``.
    """
    n, sets, k = candidates.shape
    v = candidates - 1 / k
    v_norm = v.norm(dim=2).clamp_min(1e-300)
    index = top.view(-1, 1, 1).expand(n, sets, 1)
    v_top = v.gather(2, index).squeeze(2)
    size = members.sum(dim=2).to(v.dtype)
    own = (v * members).sum(dim=2).add_(v_top, alpha=top_weight) / (size + top_weight)
    own = own / (_uniform_target_norm(size, top_weight, k) * v_norm)
    smallest = v.scatter(2, index, torch.inf).sort(dim=2).values[..., : k - 1]
    sums = torch.cat([torch.zeros_like(smallest[..., :1]), smallest.cumsum(dim=2)], dim=2)
    sizes = torch.arange(1, k + 1, dtype=v.dtype, device=v.device)
    best = (sums + (1 + top_weight) * v_top.unsqueeze(2)) / (sizes + top_weight)
    best = (best / (_uniform_target_norm(sizes, top_weight, k) * v_norm.unsqueeze(2))).amin(dim=2)
    return own <= best + CONSISTENCY_MARGIN


def _chunks(answers: Tensor, sets: int) -> tuple[Tensor, ...]:
    """Row blocks of ``answers`` whose ``(rows, sets, K)`` candidate tensors hold at most ``CHUNK_ELEMENTS`` entries."""
    return answers.split(max(1, CHUNK_ELEMENTS // (sets * answers.shape[1])))


class MADArgmaxInversion(Inverter):
    """Undo ``mad_argmax``, with its budget known or estimated from the answers.

    Args:
        epsilon: the defense's budget, or None (default) to estimate it.
        norm: ``"l1"`` (default) or ``"l2"``.
        tol: slack on recovered entries, in (0, 0.1] (default 1e-3).
        memory: answer rows pooled for the estimate, >= 1 (default 50000).
        top_weight: the defense's ``top_weight``, in (0, 1], or None (default) for its default for
            K classes (:func:`default_top_weight`).
        select: ``"auto"`` (default: ``"largest"`` on rows whose candidate's top entry is at least
            ``CONFIDENT_TOP``, ``"consistent"`` on the others), ``"consistent"`` (the largest valid set a
            uniform-posterior surrogate would have chosen for its own candidate, else the largest valid
            nested set) or ``"largest"`` (the largest valid nested set ``S_m`` alone); see the module docstring.

    Exact when ``epsilon`` is known and ``S`` is a candidate set that is selected; rows the
    defense answered with ``y`` itself (its argmax fallback) are then usually misread.
    """

    name = "mad_argmax"
    exact = True

    def __init__(
        self, *, epsilon: float | None = None, norm: str = "l1", tol: float = 1e-3, memory: int = 50_000,
        top_weight: float | None = None, select: str = "auto",
    ) -> None:
        self.norm = check_choice("norm", norm, NORMS)
        self.select = check_choice("select", select, SELECTIONS)
        self.epsilon = None if epsilon is None else check_number(
            "epsilon", epsilon, low=0, high=MAX_DISTANCE[self.norm], low_inclusive=False
        )
        self.tol = check_number("tol", tol, low=0, high=0.1, low_inclusive=False)
        self.memory = check_int("memory", memory, low=1)
        self.top_weight = None if top_weight is None else check_number("top_weight", top_weight, low=0, high=1, low_inclusive=False)
        self._seen: Tensor | None = None
        self.estimated_epsilon: float | None = None

    def params(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "norm": self.norm, "top_weight": self.top_weight, "select": self.select}

    def _invert(self, answers: Tensor) -> Tensor:
        epsilon = self.epsilon if self.epsilon is not None else self._estimate(answers)
        if epsilon is None:
            return answers
        k = answers.shape[1]
        sets = 2 ** (k - 1) if self.select != "largest" and k <= EXHAUSTIVE_MAX_CLASSES else k
        return torch.cat([self._invert_chunk(chunk, epsilon) for chunk in _chunks(answers, sets)])

    def _invert_chunk(self, answers: Tensor, epsilon: float) -> Tensor:
        n, k = answers.shape
        every_row = torch.arange(n, device=answers.device)
        targets, boosted = set_targets(answers, self.top_weight)
        candidates = recovered_candidates(answers, targets, epsilon, self.norm)
        valid = candidates.amin(dim=2) >= -self.tol
        # The largest valid set: adding a class outside S would subtract a boost it never got.
        best = (valid * torch.arange(1, k + 1, device=answers.device)).argmax(dim=1)
        recovered = torch.where(valid.any(dim=1, keepdim=True), candidates[every_row, best], answers)
        if self.select == "largest":
            return recovered
        rows = (recovered.amax(dim=1) < CONFIDENT_TOP).nonzero().squeeze(1) if self.select == "auto" else every_row
        if rows.numel() == 0:
            return recovered
        answers, top = answers[rows], answers[rows].argmax(dim=1)
        weight = default_top_weight(k) if self.top_weight is None else self.top_weight
        if k <= EXHAUSTIVE_MAX_CLASSES:
            members = sets_with_top(top, k)
            candidates = recovered_candidates(answers, set_targets_of(members, top, weight, answers.dtype), epsilon, self.norm)
        else:  # the nested sets S_m, whose candidates are computed above
            members = boosted[rows].scatter(2, top.view(-1, 1, 1).expand(len(rows), k, 1), True)
            candidates = candidates[rows]
        chosen = self._consistent(candidates, members, top, weight, recovered[rows])
        return recovered.index_copy(0, rows, chosen)

    def _consistent(self, candidates: Tensor, members: Tensor, top: Tensor, weight: float, fallback: Tensor) -> Tensor:
        """The largest valid candidate a uniform-posterior surrogate would have answered with its own set, else ``fallback``.

        Shapes: ``candidates (n, S, K)`` recovered for the boolean sets ``members (n, S, K)`` (each with the
        top class ``top (n,)``); ``fallback (n, K)``; returns ``(n, K)``.
        """
        # valid, with the answer's top class on top (the defense keeps it), and the uniform surrogate's own choice
        chosen = (candidates.amin(dim=2) >= -self.tol) & (candidates.argmax(dim=2) == top.unsqueeze(1))
        chosen &= uniform_surrogate_choice(candidates, members, top, weight)
        largest = (chosen * (members.sum(dim=2) + 1)).argmax(dim=1)
        picked = candidates[torch.arange(len(top), device=top.device), largest]
        return torch.where(chosen.any(dim=1, keepdim=True), picked, fallback)

    def _estimate(self, answers: Tensor) -> float | None:
        pooled = answers if self._seen is None else torch.cat([self._seen.to(answers), answers])
        self._seen = pooled[-self.memory :].cpu()
        implied = []
        for chunk in _chunks(pooled, pooled.shape[1]):
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
