"""``mad`` and ``mad_argmax``: Prediction Poisoning (Orekondy, Schiele, Fritz, ICLR 2020, arXiv 1906.10908).

MAD perturbs the posterior ``y`` so that the gradient an attacker would take when training
on it, ``G^T y~``, points away from the honest one, ``G^T y``:

    max_{y~}  H(y~) = || G^T y~ / ||G^T y~||  -  G^T y / ||G^T y|| ||^2          (Eq. 5)
    s.t.      y~ on the simplex,  ||y~ - y||_p <= epsilon                         (Eq. 6)

with ``G = d log F_sur(x; w) / dw`` ``(K, D)`` under a surrogate of the attacker's model.
``H = 2 - 2 cos(G^T y~, G^T y)``, so only the Gram matrix ``G G^T`` is needed
(:mod:`stealguard.defenses.jacobian`). The oracle solves the unconstrained problem over
the simplex's extreme points, ``y* = argmax_k H(e_k)`` (Sec. 4.2), then the budget is met
(:func:`stealguard.defenses.simplex.shrink_to_budget`) by ``y~ = (1 - alpha) y + alpha y*`` with the largest ``alpha <= 1`` such that
``||y~ - y||_p <= epsilon``, i.e. ``alpha = min(1, epsilon / ||y* - y||_p)``.

``mad_argmax`` (Sec. 4.3) restricts the targets to distributions that keep the top-1
label: uniform distributions over class sets ``S`` that contain the top class ``c``
(with ``c`` up-weighted by ``w`` so the interpolation never ties it). As in the reference
code (``defenses/victim/bb_mad.py::oracle_argmax_preserving``), ``search="auto"`` tries
all ``2^(K-1)`` sets for K <= 10 (``w = 1e-5``) and searches greedily above (start from
``{c}``, add the class that most increases ``H``, keep the best set seen); ``"exhaustive"``
and ``"greedy"`` force one of the two. Every step is batched over samples.

``jacobian="identity"`` is the paper's ablation with ``G = I`` (the reference's
``disable_jacobian``): ``H`` then compares ``y~`` and ``y`` themselves, so MAD's oracle
picks the least likely class.

Where the reference's MAD differs from this module, see ``docs/fidelity.md``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from stealguard._checks import check_choice, check_int, check_number
from stealguard.defenses.base import Defense
from stealguard.defenses.jacobian import (
    JACOBIANS,
    GramGeometry,
    LastLayerGeometry,
    full_gram,
    last_linear,
    surrogate_gram,
)
from stealguard.defenses.simplex import MAX_DISTANCE, NORMS, shrink_to_budget

GREEDY_MARGIN = 1e-6
"""A larger set must lower the cosine by more than this to be kept (greedy search), and sets
within it of the best count as tied (exhaustive search): float32 surrogate noise (batched vs
single-row forward passes) must not decide between near-equal sets."""
TOP_CLASS_WEIGHT = 1e-3
"""Extra relative mass of the top class in MAD-argmax targets of the greedy search (this project's choice)."""
REFERENCE_TOP_CLASS_WEIGHT = 1e-5
"""Extra relative mass of the top class in the reference code's MAD-argmax targets (used by the exhaustive search)."""
EXHAUSTIVE_MAX_CLASSES = 10
"""Largest K the reference searches exhaustively (``search="auto"``)."""
EXHAUSTIVE_LIMIT = 16
"""Largest K ``search="exhaustive"`` accepts (2^(K-1) candidate sets per sample)."""
EXHAUSTIVE_ROWS = 256
"""Samples per block of the exhaustive search (bounds its ``(rows, 2^K)`` intermediates)."""
SEARCHES = ("auto", "exhaustive", "greedy")
DEFAULT_SEARCH = "auto"
MAD_JACOBIANS = (*JACOBIANS, "identity")

__all__ = ["MAD", "MADArgmax", "exhaustive_argmax_preserving_set", "greedy_argmax_preserving_set", "surrogate_gram"]


class MAD(Defense):
    """Maximizing Angular Deviation (MAD), Orekondy et al. 2020, Eq. 5-6.

    Args:
        epsilon: distortion budget, ``(0, 2]`` for ``l1`` or ``(0, sqrt 2]`` for ``l2``. Default 0.5.
        norm: ``"l1"`` (default) or ``"l2"``; the norm of the budget.
        surrogate: the attacker-model surrogate: an ``nn.Module`` mapping ``x`` to logits
            ``(N, K)``, used in eval mode; typically a randomly initialised copy of the
            victim's architecture (the CLI builds one from the victim's card). Required.
        jacobian: ``"last_layer"`` (default; weight of the surrogate's final ``nn.Linear``,
            closed form, one forward pass, the reference code's choice), ``"full"`` (all
            parameters) or ``"identity"`` (``G = I``, the paper's ablation; the surrogate
            is then not used and may be omitted).
        oracle: ``"extreme"`` (default; vertex maximising H), ``"argmin"`` (vertex of the least
            likely class), ``"random"`` (a random vertex) — the paper's ablations.
        seed: seed of the ``random`` oracle. Default 0.
        chunk_size: samples per backward pass of the ``full`` Jacobian (memory bound). Default 64.

    Shape:
        x ``(N, ...)`` as the surrogate takes it; probs ``(N, K)`` -> ``(N, K)``.

    Guarantees: outputs on the simplex and ``||y~ - y||_norm <= epsilon``. The argmax is not kept
    (use ``mad_argmax``). Batch output equals row-by-row output except for ``oracle="random"``.
    """

    name = "mad"
    requires = ("surrogate",)

    def __init__(
        self,
        *,
        epsilon: float = 0.5,
        norm: str = "l1",
        surrogate: nn.Module | None = None,
        jacobian: str = "last_layer",
        oracle: str = "extreme",
        seed: int = 0,
        chunk_size: int = 64,
    ) -> None:
        self.norm = check_choice("norm", norm, NORMS)
        self.epsilon = check_number(
            "epsilon", epsilon, low=0.0, high=MAX_DISTANCE[norm], low_inclusive=False
        )
        self.jacobian = check_choice("jacobian", jacobian, MAD_JACOBIANS)
        if surrogate is None and self.jacobian == "identity":
            surrogate = nn.Identity()
        if surrogate is None:
            raise ValueError(
                f"{self.name} needs surrogate=<nn.Module> (a randomly initialised copy of the victim architecture); "
                "the CLI builds one from the victim's card"
            )
        if not isinstance(surrogate, nn.Module):
            raise TypeError(f"surrogate must be an nn.Module, got {type(surrogate).__name__}")
        self.surrogate = surrogate.eval()
        self.oracle = check_choice("oracle", oracle, self._oracles())
        self.seed = check_int("seed", seed, low=0)
        self.chunk_size = check_int("chunk_size", chunk_size, low=1)
        self._output_layer = last_linear(self.surrogate) if self.jacobian == "last_layer" else None
        self._generator: torch.Generator | None = None
        self._checked = False

    @staticmethod
    def _oracles() -> tuple[str, ...]:
        return ("extreme", "argmin", "random")

    def params(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "norm": self.norm,
            "jacobian": self.jacobian,
            "oracle": self.oracle,
            "seed": self.seed,
            "surrogate": type(self.surrogate).__name__,
        }

    def budget(self) -> tuple[str, float]:
        return (self.norm, self.epsilon)

    def geometry(self, x: Tensor, probs: Tensor | None = None) -> LastLayerGeometry | GramGeometry:
        """The surrogate's gradient geometry at ``x`` (moves the surrogate to ``x``'s device).

        ``probs`` ``(N, K)`` is needed only for ``jacobian="identity"`` (it gives N and K).
        """
        if self.jacobian == "identity":
            if probs is None:
                raise ValueError("jacobian='identity' needs probs (N, K) to size G = I")
            n, k = probs.shape
            eye = torch.eye(k, dtype=torch.float64, device=probs.device)
            return GramGeometry(eye.expand(n, k, k))
        surrogate = self.surrogate
        if next(surrogate.parameters()).device != x.device:
            surrogate = self.surrogate = surrogate.to(x.device)
        inputs = x.float()
        if self.jacobian == "last_layer":
            geometry = LastLayerGeometry.of(surrogate, inputs, layer=self._output_layer, check=not self._checked)
            self._checked = True
            return geometry
        return GramGeometry(full_gram(surrogate, inputs, chunk_size=self.chunk_size))

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        target = self._target(x, probs)
        return shrink_to_budget(probs, target, epsilon=self.epsilon, norm=self.norm)

    def _target(self, x: Tensor, probs: Tensor) -> Tensor:
        """The oracle's target ``y*`` ``(N, K)`` on the simplex."""
        n, k = probs.shape
        if self.oracle == "argmin":
            vertex = probs.argmin(dim=1)
        elif self.oracle == "random":
            vertex = torch.randint(k, (n,), generator=self._rng(), device="cpu").to(probs.device)
        else:
            vertex = self.geometry(x, probs).best_vertex(probs)
        return torch.nn.functional.one_hot(vertex, k).to(probs.dtype)

    def _rng(self) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        return self._generator


class MADArgmax(MAD):
    """MAD-argmax (Orekondy et al. 2020, Sec. 4.3): MAD whose answer always keeps the top-1 label.

    Targets are ``y* ∝ 1_S + w e_c`` for class sets ``S`` containing the top class ``c``.
    ``oracle="extreme"`` (default) picks the set maximising ``H``; ``oracle="random"`` draws
    ``S`` with each other class included with probability 1/2.

    Args:
        search: how ``oracle="extreme"`` looks for the set: ``"auto"`` (the reference code:
            all ``2^(K-1)`` sets when K <= 10, greedy above), ``"exhaustive"`` (all sets,
            K <= 16) or ``"greedy"`` (start from ``{c}``, K - 1 batched steps, any K).
            Default :data:`DEFAULT_SEARCH`.
        top_weight: ``w`` > 0, or ``None`` (default): 1e-5 (the reference's) for sets found
            exhaustively, 1e-3 for sets found greedily (this project's earlier choice).
        **params: same parameters and budget as :class:`MAD`.

    Guarantees: on the simplex, within budget, and ``argmax y~ == argmax y`` for every row
    (a row where floating point would tie the top class is answered with ``y`` itself).
    """

    name = "mad_argmax"

    def __init__(self, *, search: str = DEFAULT_SEARCH, top_weight: float | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.search = check_choice("search", search, SEARCHES)
        self.top_weight = None if top_weight is None else check_number("top_weight", top_weight, low=0.0, low_inclusive=False)

    @staticmethod
    def _oracles() -> tuple[str, ...]:
        return ("extreme", "random")

    def params(self) -> dict[str, Any]:
        return {**super().params(), "search": self.search, "top_weight": self.top_weight}

    def __call__(self, x: Tensor, probs: Tensor) -> Tensor:
        perturbed = super().__call__(x, probs)
        changed = perturbed.argmax(dim=1) != probs.argmax(dim=1)
        return torch.where(changed.unsqueeze(1), probs, perturbed)

    def argmax_threshold(self) -> float:
        return 0.0

    def search_for(self, k: int) -> str:
        """``"exhaustive"`` or ``"greedy"``: the search this defense runs for K classes.

        Raises:
            ValueError: ``search="exhaustive"`` with K above :data:`EXHAUSTIVE_LIMIT`.
        """
        if self.search == "auto":
            return "exhaustive" if k <= EXHAUSTIVE_MAX_CLASSES else "greedy"
        if self.search == "exhaustive" and k > EXHAUSTIVE_LIMIT:
            raise ValueError(f"search='exhaustive' supports K <= {EXHAUSTIVE_LIMIT} classes, got K = {k}; use 'auto' or 'greedy'")
        return self.search

    def _target(self, x: Tensor, probs: Tensor) -> Tensor:
        n, k = probs.shape
        top = probs.argmax(dim=1)
        search = self.search_for(k)
        weight = self.top_weight
        if weight is None:
            weight = REFERENCE_TOP_CLASS_WEIGHT if search == "exhaustive" else TOP_CLASS_WEIGHT
        if self.oracle == "random":
            members = torch.rand(n, k, generator=self._rng()).to(probs.device) < 0.5
            members = members.scatter(1, top.unsqueeze(1), True)
        elif search == "exhaustive":
            members = exhaustive_argmax_preserving_set(self.geometry(x, probs), probs, top, top_weight=weight)
        else:
            members = greedy_argmax_preserving_set(self.geometry(x, probs), probs, top)
        weights = members.to(probs.dtype).scatter_add(
            1, top.unsqueeze(1), torch.full((n, 1), weight, dtype=probs.dtype, device=probs.device)
        )
        return weights / weights.sum(dim=1, keepdim=True)


def subset_masks(k: int, *, device: torch.device | str = "cpu") -> Tensor:
    """All ``2^k`` class sets as float64 masks ``(2^k, k)``, in ``itertools.product([0, 1], repeat=k)`` order.

    Row ``i`` holds the binary digits of ``i``, class 0 the most significant: the order in
    which the reference code visits the sets (it keeps the first of equal objectives).
    """
    codes = torch.arange(2**k, device=device)
    shifts = torch.arange(k - 1, -1, -1, device=device)
    return ((codes.unsqueeze(1) >> shifts) & 1).to(torch.float64)


def exhaustive_argmax_preserving_set(
    geometry: LastLayerGeometry | GramGeometry, probs: Tensor, top: Tensor, *, top_weight: float = REFERENCE_TOP_CLASS_WEIGHT
) -> Tensor:
    """The class set ``S ∋ top`` whose target ``(1_S + w e_top) / (|S| + w)`` maximises H, over all sets.

    H is ``2 - 2 cos(G^T y*, G^T y)``, evaluated from the Gram matrix ``M = G G^T`` for all
    ``2^(K-1)`` sets at once (the target's scale cancels in the cosine), in row blocks of
    :data:`EXHAUSTIVE_ROWS`. Sets within :data:`GREEDY_MARGIN` of the best cosine count as
    tied (float32 surrogate noise must not decide; with K = 2 every cosine is exactly -1 or
    1) and ties go to the set the reference code visits first. Shapes:
    ``probs (N, K)``, ``top (N,)`` -> boolean ``(N, K)``.
    """
    n, k = probs.shape
    gram_all = geometry.gram().to(torch.float64)
    masks = subset_masks(k, device=probs.device)
    best = torch.empty(n, dtype=torch.long, device=probs.device)
    for start in range(0, n, EXHAUSTIVE_ROWS):
        rows = slice(start, start + EXHAUSTIVE_ROWS)
        gram, y, c = gram_all[rows], probs[rows].to(torch.float64), top[rows]
        index = torch.arange(gram.shape[0], device=probs.device)
        m_y = torch.einsum("nkj,nj->nk", gram, y)
        y_norm_sq = (y * m_y).sum(dim=1, keepdim=True).clamp_min(0)
        m_top = gram[index, c]
        cross = m_y @ masks.T + top_weight * m_y[index, c].unsqueeze(1)
        quad = torch.einsum("sk,nkj,sj->ns", masks, gram, masks)
        quad = quad + 2 * top_weight * (m_top @ masks.T) + top_weight**2 * gram[index, c, c].unsqueeze(1)
        cosines = cross / (quad.clamp_min(0) * y_norm_sq).sqrt().clamp_min(1e-300)
        cosines = cosines.masked_fill(~masks[:, c].T.bool(), math.inf)
        near_best = cosines <= cosines.min(dim=1, keepdim=True).values + GREEDY_MARGIN
        best[rows] = near_best.to(torch.int8).argmax(dim=1)
    return masks[best].bool()


def greedy_argmax_preserving_set(geometry: LastLayerGeometry | GramGeometry, probs: Tensor, top: Tensor) -> Tensor:
    """Greedy search of the class set ``S ∋ top`` whose uniform target maximises H.

    Starts from ``S = {top}``; each of the K - 1 steps adds, per sample, the class that
    minimises ``cos(G^T 1_S, G^T y)``; returns the best set seen. Shapes: ``probs (N, K)``,
    ``top (N,)`` -> boolean ``(N, K)``.
    """
    k = probs.shape[1]
    search = geometry.subset_state(probs)
    best_cos = search.candidate_cosines().gather(1, top.unsqueeze(1)).squeeze(1)
    search.add(top)
    best = search.members
    for _ in range(k - 1):
        cosines = search.candidate_cosines().masked_fill(search.members, math.inf)
        step = cosines.argmin(dim=1)
        value = cosines.gather(1, step.unsqueeze(1)).squeeze(1)
        search.add(step)
        improved = value < best_cos - GREEDY_MARGIN
        best_cos = torch.where(improved, value, best_cos)
        best = torch.where(improved.unsqueeze(1), search.members, best)
    return best
