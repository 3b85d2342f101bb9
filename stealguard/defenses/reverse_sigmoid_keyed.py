"""``reverse_sigmoid_keyed``: reverse sigmoid whose strength is drawn per query from a keyed hash.

Reverse sigmoid (Lee et al. 2019, arXiv:1806.00054) answers ``y~ = N(y - beta r(y))`` with a
fixed, public per-entry map, which an attacker who knows ``beta`` and ``gamma`` inverts up to
the map's folds (:mod:`stealguard.attacks.inversion.reverse_sigmoid`). Here the magnitude is

    beta(x) = beta (1 - spread u(x)),      u(x) in [0, 1)

with ``u(x)`` a keyed hash of the query's bytes (:func:`stealguard.defenses.random_noise.input_keys`
with the defender's secret ``seed``): the same query always gets the same answer, and the
attacker, not knowing ``beta(x)``, has one more unknown per row than the normalisation
constraint fixes. Its best substitute is the mean ``beta (1 - spread / 2)``.

Argmax: the reverse-sigmoid promise for ``beta`` and ``gamma`` (every condition of
:func:`stealguard.defenses.reverse_sigmoid.argmax_threshold` holds for any smaller magnitude).
Budget: none (as reverse sigmoid).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from stealguard._checks import check_int, check_number
from stealguard.defenses.random_noise import input_keys
from stealguard.defenses.reverse_sigmoid import (
    ReverseSigmoid,
    reverse_sigmoid_noise,
    subtract_and_renormalise,
)


def keyed_uniform(x: Tensor, seed: int) -> Tensor:
    """A float64 ``(N, 1)`` value in [0, 1) per query row, a function of its bytes and ``seed`` only."""
    return (input_keys(x, seed)[:, :1].to(torch.float64) / 2.0**32).cpu()


class ReverseSigmoidKeyed(ReverseSigmoid):
    """Reverse sigmoid with a keyed per-query magnitude (module docstring).

    Args:
        beta: largest magnitude, ``>= 0`` (default 0.3). gamma: ``> 0`` (default 0.2).
        spread: fraction of ``beta`` the key may remove, in [0, 1] (default 0.5; 0 is reverse sigmoid).
        seed: the defender's secret key, ``>= 0`` (the harness passes the defender's seed).

    Shape:
        x: ``(N, ...)`` (hashed); probs ``(N, K)`` -> ``(N, K)``.
    """

    name = "reverse_sigmoid_keyed"

    def __init__(self, *, beta: float = 0.3, gamma: float = 0.2, spread: float = 0.5, seed: int = 0) -> None:
        super().__init__(beta=beta, gamma=gamma)
        self.spread = check_number("spread", spread, low=0, high=1)
        self.seed = check_int("seed", seed, low=0, high=2**63 - 1)

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        magnitude = self.beta * (1 - self.spread * keyed_uniform(x, self.seed).to(probs.device))
        noise = magnitude * reverse_sigmoid_noise(probs, beta=1.0, gamma=self.gamma)
        return subtract_and_renormalise(probs, noise)

    def params(self) -> dict[str, Any]:
        """``beta``, ``gamma`` and ``spread``; the key (``seed``) is secret and not reported."""
        return {**super().params(), "spread": self.spread}
