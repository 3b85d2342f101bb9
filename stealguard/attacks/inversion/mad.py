"""Inverting MAD (Orekondy et al., ICLR 2020, arXiv 1906.10908) and its keyed variant.

MAD answers ``y~ = (1 - alpha) y + alpha t`` with ``t`` the oracle's target and
``alpha = min(1, epsilon / ||t - y||_p)`` (:mod:`stealguard.defenses.mad`). Since
``y~ - t = (1 - alpha)(y - t)``, the step is readable from the answer alone::

    alpha = epsilon / (||y~ - t||_p + epsilon)             (L1 vertex target: epsilon / (2 (1 - y~_k) + epsilon))
    y     = (y~ - alpha t) / (1 - alpha)

For MAD the target is a vertex ``t = e_k``; every class ``k`` with ``y~_k >= alpha_k`` gives a
valid candidate (all entries >= 0, sum 1, exactly ``epsilon`` from the answer). MAD's oracle
picks the vertex maximising the angle between ``G^T e_k`` and ``G^T y``; with the last-layer
Jacobian that angle is the angle between ``e_k - p`` and ``y - p`` (``p`` the surrogate's
posterior), and a randomly initialised surrogate has ``p`` close to uniform ``u``. The
inverter therefore keeps the candidate that its own surrogate, ``p = u``, would have chosen::

    k* = argmin_{k valid} cos(e_k - u, y^(k) - u) = argmin (y^(k)_k - 1/K) / ||y^(k) - u||_2

with ``|y^(k)_k|`` in place of ``y^(k)_k``: a wrong candidate let through by the sign tolerance
has a slightly negative target entry (for ``epsilon >= 1`` a confident row's top class and
target are otherwise symmetric). ``select="average"`` averages the valid candidates instead.
``mad_keyed`` mixes a keyed random
point ``r(x)`` into the target, ``t = (1 - mix) e_k + mix r(x)``; the attacker cannot compute
``r`` and substitutes its mean ``u``, which is exact only where ``r = u``. The candidate of the
true target is then off by ``alpha mix (r(x) - u) / (1 - alpha)`` and has negative entries, so
usually no candidate is valid; ``fallback="project"`` (the keyed inverter's default) then takes
the least inconsistent candidate (the smallest negative mass: a wrong target's candidate has a
target entry near ``-alpha (1 - mix) / (1 - alpha)``) and projects it onto the simplex
(:func:`~stealguard.defenses.simplex.project_to_simplex`); ``fallback="keep"`` (MAD's default,
where a row without a valid candidate contradicts the model) returns the answer.

Unknown ``epsilon`` (``epsilon=None``): if class ``k`` was the target and its clean entry is 0,
``alpha = y~_k`` (for ``mix = 0``) and ``epsilon = alpha d_k / (1 - alpha)`` (``d_k = ||y~ - t_k||``).
MAD's targets are the classes the clean posterior nearly excludes, so the rows' targets all
imply nearly the true budget (slightly more, by the clean entry's share), a sharp spike among
the smooth spread of wrong hypotheses; the estimate is the median of the densest relative
window of width ``tol`` (:func:`~stealguard.attacks.inversion.estimate.densest_cluster`). On
confident rows the top class implies about ``2 - epsilon`` (L1; target and top class swap
roles), a broader peak. The answers seen so far (up to ``memory`` rows) are pooled.
For ``mad_keyed`` the target's keyed entry blurs that spike; with the L1 budget the keyed
inverter reads the budget from the top entry instead: a one-hot clean row ``e_c`` moves
``alpha (1 - t_c)`` of its mass off ``c`` at L1 cost ``2 alpha (1 - t_c) = epsilon``, so its
answer's entry ``c`` is exactly ``1 - epsilon / 2`` whatever ``r`` and ``k``, and it stays the top
entry while ``epsilon <= 1`` (beyond, the target's entry overtakes it and the estimate comes out
low: give the budget); less confident rows imply more (their answers are further from a vertex),
so the estimate is the lowest window holding at least :data:`KEYED_SUPPORT` of the values ``2 (1 - max y~)``
(:func:`~stealguard.attacks.inversion.estimate.lowest_cluster`). Queries far from the victim's
data give few confident rows; rows whose answer is the target itself (``alpha = 1``, diffuse
rows at a large budget) imply less, and the estimate comes out low there.

A one-hot answer (``alpha = 1``: the budget reached the vertex) cannot be undone; it is kept.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from stealguard._checks import check_choice, check_int, check_number
from stealguard.attacks.inversion.base import Inverter
from stealguard.attacks.inversion.estimate import densest_cluster, lowest_cluster
from stealguard.defenses.simplex import MAX_DISTANCE, NORMS, project_to_simplex

SELECTIONS = ("angle", "average")
FALLBACKS = ("keep", "project")
"""What to return for a row with no valid candidate: the answer, or the least inconsistent candidate projected."""
KEYED_SUPPORT = 10
"""Fewest answers whose top entries must agree (relative window :data:`KEYED_WIDTH`) for the keyed budget estimate."""
KEYED_WIDTH = 1e-2
ONE_HOT = 1e-12
"""Rows within this of a vertex (``1 - max``) are one-hot answers and are returned as they are."""


def vertex_mixture_geometry(answers: Tensor, *, mix: float, norm: str) -> Tensor:
    """``d_k = ||y~ - t_k||_norm`` for every target ``t_k = (1 - mix) e_k + mix u``: ``(N, K)``.

    Computed in O(NK) from row totals (one coordinate of ``t_k`` differs from ``mix u``).
    """
    k = answers.shape[1]
    base = mix / k
    if norm == "l1":
        off = (answers - base).abs()
        on = (answers - (1 - mix) - base).abs()
        return off.sum(dim=1, keepdim=True) - off + on
    off = (answers - base) ** 2
    on = (answers - (1 - mix) - base) ** 2
    return (off.sum(dim=1, keepdim=True) - off + on).clamp_min(0).sqrt()


def vertex_candidates(answers: Tensor, *, epsilon: float, mix: float, norm: str, tol: float) -> tuple[Tensor, Tensor, Tensor]:
    """Step, validity and selection score of each target hypothesis ``k``.

    Returns ``alpha (N, K)``, ``valid (N, K)`` (every recovered entry >= -tol) and the score
    ``cos(e_k - u, y^(k) - u)`` ``(N, K)`` with ``|y^(k)_k|`` for ``y^(k)_k`` (lower: the more
    MAD-like target; a wrong candidate within the tolerance has a slightly negative entry).
    """
    k = answers.shape[1]
    distance = vertex_mixture_geometry(answers, mix=mix, norm=norm)
    alpha = (epsilon / (distance + epsilon)).clamp(max=1 - 1e-15)
    shift = alpha * mix / k
    keep = 1 - alpha
    target_entry = (answers - alpha * (1 - mix) - shift) / keep
    smallest = answers.topk(min(2, k), dim=1, largest=False).values
    other_min = torch.where(answers == smallest[:, :1], smallest[:, -1:], smallest[:, :1])
    valid = (target_entry >= -tol) & ((other_min - shift) / keep >= -tol)
    squares = (answers**2).sum(dim=1, keepdim=True) - 2 * shift + k * shift**2
    total_sq = (squares - (answers - shift) ** 2) / keep**2 + target_entry**2
    spread = (total_sq - 1 / k).clamp_min(1e-30).sqrt()
    return alpha, valid, (target_entry.abs() - 1 / k) / spread


def invert_vertex_mixture(
    answers: Tensor, *, epsilon: float, mix: float, norm: str, select: str, tol: float, fallback: str = "keep"
) -> Tensor:
    """Recovered posteriors ``(N, K)`` for targets ``t_k = (1 - mix) e_k + mix u`` (module docstring).

    ``fallback``: rows with no valid candidate keep their answer (``"keep"``) or take the candidate
    with the smallest negative mass, projected onto the simplex (``"project"``).
    """
    n, k = answers.shape
    alpha, valid, score = vertex_candidates(answers, epsilon=epsilon, mix=mix, norm=norm, tol=tol)
    keep = (1 - alpha).unsqueeze(2)
    eye = torch.eye(k, dtype=answers.dtype, device=answers.device)
    targets = (1 - mix) * eye + mix / k
    # candidates[n, k, :] = (y~_n - alpha_nk t_k) / (1 - alpha_nk): (N, K, K), K^2 per row.
    candidates = (answers.unsqueeze(1) - alpha.unsqueeze(2) * targets) / keep
    rows = torch.arange(n, device=answers.device)
    if select == "average":
        weights = valid.to(answers.dtype)
        recovered = (weights.unsqueeze(2) * candidates).sum(dim=1) / weights.sum(dim=1, keepdim=True).clamp_min(1)
    else:
        best = score.masked_fill(~valid, torch.inf).argmin(dim=1)
        recovered = candidates[rows, best]
    one_hot = answers.amax(dim=1, keepdim=True) >= 1 - ONE_HOT
    usable = valid.any(dim=1, keepdim=True) & ~one_hot
    if fallback == "project":
        least_inconsistent = candidates.clamp(max=0).sum(dim=2).argmax(dim=1)
        projected = project_to_simplex(candidates[rows, least_inconsistent])
        return torch.where(usable, recovered, torch.where(one_hot, answers, projected))
    return torch.where(usable, recovered, answers)


def top_implied_epsilons(answers: Tensor) -> Tensor:
    """The L1 budget each row implies if its clean posterior is one-hot: ``2 (1 - max y~)``, ``(N,)``."""
    return 2 * (1 - answers.amax(dim=1))


def vertex_implied_epsilons(answers: Tensor, *, mix: float, norm: str, tol: float) -> Tensor:
    """The budget each (row, class) implies if that class was the target and its clean entry is 0: flat ``(M,)``.

    ``y_k = 0`` gives ``alpha = y~_k / (1 - mix + mix/K)`` (ignoring the ``mix/K`` shift of the
    other entries) and ``epsilon = alpha d_k / (1 - alpha)``. Classes with ``y~_k <= tol`` are
    left out (every nearly empty class implies a budget near 0).
    """
    k = answers.shape[1]
    distance = vertex_mixture_geometry(answers, mix=mix, norm=norm)
    alpha = answers / (1 - mix + mix / k)
    inside = (answers > tol) & (alpha < 1)
    return (alpha * distance / (1 - alpha).clamp_min(1e-15))[inside]


class MADInversion(Inverter):
    """Undo ``mad`` (vertex targets), with its budget known or estimated from the answers.

    Args:
        epsilon: MAD's budget, as in the defense (``(0, 2]`` L1, ``(0, sqrt 2]`` L2), or None
            (default) to estimate it from the answers (module docstring).
        norm: ``"l1"`` (default) or ``"l2"``, the defense's budget norm (must be known).
        select: ``"angle"`` (default: the candidate a uniform-posterior surrogate would target)
            or ``"average"`` (mean of the valid candidates).
        tol: slack on the recovered entries' sign and on the hidden entry in the estimate, in
            (0, 0.1] (default 1e-3).
        memory: answer rows pooled for the estimate, >= 1 (default 50000).
        fallback: a row with no valid candidate keeps its answer (``"keep"``, default) or takes
            the least inconsistent candidate projected onto the simplex (``"project"``).

    MAD's other parameters (``jacobian``, ``oracle``, ``seed``, ``chunk_size``) do not change
    the inversion and are not accepted. Exact (floating point) when ``epsilon`` is known and
    the MAD-targeted class is the selected candidate, except for one-hot answers.
    """

    name = "mad"
    exact = True
    mix: float = 0.0

    def __init__(
        self,
        *,
        epsilon: float | None = None,
        norm: str = "l1",
        select: str = "angle",
        tol: float = 1e-3,
        memory: int = 50_000,
        fallback: str = "keep",
    ) -> None:
        self.norm = check_choice("norm", norm, NORMS)
        self.epsilon = None if epsilon is None else check_number(
            "epsilon", epsilon, low=0, high=MAX_DISTANCE[self.norm], low_inclusive=False
        )
        self.select = check_choice("select", select, SELECTIONS)
        self.tol = check_number("tol", tol, low=0, high=0.1, low_inclusive=False)
        self.memory = check_int("memory", memory, low=1)
        self.fallback = check_choice("fallback", fallback, FALLBACKS)
        self._seen: Tensor | None = None
        self.estimated_epsilon: float | None = None

    def params(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "norm": self.norm, "select": self.select, "mix": self.mix, "fallback": self.fallback}

    def _estimate(self, pooled: Tensor) -> float | None:
        """The budget estimate from the pooled answers (module docstring)."""
        implied = vertex_implied_epsilons(pooled, mix=self.mix, norm=self.norm, tol=self.tol)
        return densest_cluster(implied, width=self.tol, floor=self.tol)

    def current_epsilon(self, answers: Tensor) -> float | None:
        """The known budget, or the estimate from the answers seen so far plus ``answers``."""
        if self.epsilon is not None:
            return self.epsilon
        pooled = answers if self._seen is None else torch.cat([self._seen.to(answers), answers])
        self._seen = pooled[-self.memory :].cpu()
        estimate = self._estimate(pooled)
        self.estimated_epsilon = None if estimate is None else min(estimate, MAX_DISTANCE[self.norm])
        return self.estimated_epsilon

    def _invert(self, answers: Tensor) -> Tensor:
        epsilon = self.current_epsilon(answers)
        if epsilon is None:
            return answers
        return invert_vertex_mixture(
            answers, epsilon=epsilon, mix=self.mix, norm=self.norm, select=self.select, tol=self.tol, fallback=self.fallback
        )


class MADKeyedInversion(MADInversion):
    """The attacker's best inversion of ``mad_keyed``: MAD's inversion with the keyed point replaced by its mean.

    ``t_k = (1 - mix) e_k + mix u``; the part ``alpha mix (r(x) - u)`` of each answer stays in the
    estimate (not exact), and rows without a valid candidate take the least inconsistent one,
    projected onto the simplex (``fallback="project"``, the default here). An unknown L1 budget
    is read from the answers' top entries (module docstring; valid for budgets up to 1). Args as :class:`MADInversion`, plus
    ``mix`` in [0, 1] (default 0.5, the defense's default; it must be known, it is not estimated).
    """

    name = "mad_keyed"
    exact = False

    def __init__(
        self,
        *,
        epsilon: float | None = None,
        norm: str = "l1",
        mix: float = 0.5,
        select: str = "angle",
        tol: float = 1e-3,
        memory: int = 50_000,
        fallback: str = "project",
    ) -> None:
        super().__init__(epsilon=epsilon, norm=norm, select=select, tol=tol, memory=memory, fallback=fallback)
        self.mix = check_number("mix", mix, low=0, high=1)

    def _estimate(self, pooled: Tensor) -> float | None:
        if self.norm != "l1":
            return super()._estimate(pooled)
        return lowest_cluster(top_implied_epsilons(pooled), width=KEYED_WIDTH, support=KEYED_SUPPORT, floor=self.tol)
