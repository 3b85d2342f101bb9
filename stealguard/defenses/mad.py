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
(with ``c`` up-weighted by a factor ``1 + 1e-3`` so the interpolation never ties it),
searched greedily as in the reference code (start from ``{c}``, add the class that most
increases ``H``, keep the best set seen), for any K; every step is batched over samples.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from stealguard._checks import check_choice, check_int, check_number
from stealguard.defenses.base import Defense
from stealguard.defenses.simplex import MAX_DISTANCE, NORMS, shrink_to_budget
from stealguard.defenses.jacobian import (
    JACOBIANS,
    GramGeometry,
    LastLayerGeometry,
    full_gram,
    last_linear,
    surrogate_gram,
)

GREEDY_MARGIN = 1e-6
"""A larger set must lower the cosine by more than this to be kept: float32 surrogate noise
(batched vs single-row forward passes) must not decide between near-equal sets."""
TOP_CLASS_WEIGHT = 1e-3
"""Extra relative mass of the top class in MAD-argmax targets (the reference uses 1e-5)."""

__all__ = ["MAD", "MADArgmax", "surrogate_gram"]


class MAD(Defense):
    """Maximizing Angular Deviation (MAD), Orekondy et al. 2020, Eq. 5-6.

    Args:
        epsilon: distortion budget, ``(0, 2]`` for ``l1`` or ``(0, sqrt 2]`` for ``l2``. Default 0.5.
        norm: ``"l1"`` (default) or ``"l2"``; the norm of the budget.
        surrogate: the attacker-model surrogate: an ``nn.Module`` mapping ``x`` to logits
            ``(N, K)``, used in eval mode; typically a randomly initialised copy of the
            victim's architecture (the CLI builds one from the victim's card). Required.
        jacobian: ``"last_layer"`` (default; weight of the surrogate's final ``nn.Linear``,
            closed form, one forward pass) or ``"full"`` (all parameters).
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
        if surrogate is None:
            raise ValueError(
                f"{self.name} needs surrogate=<nn.Module> (a randomly initialised copy of the victim architecture); "
                "the CLI builds one from the victim's card"
            )
        if not isinstance(surrogate, nn.Module):
            raise TypeError(f"surrogate must be an nn.Module, got {type(surrogate).__name__}")
        self.surrogate = surrogate.eval()
        self.jacobian = check_choice("jacobian", jacobian, JACOBIANS)
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

    def geometry(self, x: Tensor) -> LastLayerGeometry | GramGeometry:
        """The surrogate's gradient geometry at ``x`` (moves the surrogate to ``x``'s device)."""
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
            vertex = self.geometry(x).best_vertex(probs)
        return torch.nn.functional.one_hot(vertex, k).to(probs.dtype)

    def _rng(self) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        return self._generator


class MADArgmax(MAD):
    """MAD-argmax (Orekondy et al. 2020, Sec. 4.3): MAD whose answer always keeps the top-1 label.

    Targets are ``y* ∝ 1_S + 1e-3 e_c`` for class sets ``S`` containing the top class ``c``;
    ``oracle="extreme"`` (default) searches them greedily (K - 1 batched steps, any K),
    ``oracle="random"`` draws ``S`` with each other class included with probability 1/2.
    Same parameters and budget as :class:`MAD`.

    Guarantees: on the simplex, within budget, and ``argmax y~ == argmax y`` for every row
    (a row where floating point would tie the top class is answered with ``y`` itself).
    """

    name = "mad_argmax"

    @staticmethod
    def _oracles() -> tuple[str, ...]:
        return ("extreme", "random")

    def __call__(self, x: Tensor, probs: Tensor) -> Tensor:
        perturbed = super().__call__(x, probs)
        changed = perturbed.argmax(dim=1) != probs.argmax(dim=1)
        return torch.where(changed.unsqueeze(1), probs, perturbed)

    def argmax_threshold(self) -> float:
        return 0.0

    def _target(self, x: Tensor, probs: Tensor) -> Tensor:
        n, k = probs.shape
        top = probs.argmax(dim=1)
        if self.oracle == "random":
            members = torch.rand(n, k, generator=self._rng()).to(probs.device) < 0.5
            members = members.scatter(1, top.unsqueeze(1), True)
        else:
            members = greedy_argmax_preserving_set(self.geometry(x), probs, top)
        weights = members.to(probs.dtype).scatter_add(
            1, top.unsqueeze(1), torch.full((n, 1), TOP_CLASS_WEIGHT, dtype=probs.dtype, device=probs.device)
        )
        return weights / weights.sum(dim=1, keepdim=True)


def greedy_argmax_preserving_set(geometry: LastLayerGeometry | GramGeometry, probs: Tensor, top: Tensor) -> Tensor:
    """Greedy search of the class set ``S ∋ top`` whose uniform target maximises H.

    Starts from ``S = {top}``; each of the K - 1 steps adds, per sample, the class that
    minimises ``cos(G^T 1_S, G^T y)``; returns the best set seen. Shapes: ``probs (N, K)``,
    ``top (N,)`` -> boolean ``(N, K)``.
    """
    n, k = probs.shape
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
