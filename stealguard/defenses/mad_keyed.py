"""``mad_keyed``: MAD whose target mixes in a keyed pseudo-random point, so answers cannot be inverted exactly.

Plain MAD answers ``y~ = (1 - alpha) y + alpha e_k`` with ``alpha`` a function of ``y~`` and
``epsilon``; an attacker who knows the algorithm recovers ``y`` exactly
(:mod:`stealguard.attacks.inversion.mad`). ``mad_keyed`` uses the target::

    t = (1 - mix) e_k + mix r(x),      r(x) = softmax(z(x)),   z(x)_j ~ N(0, 1)

with ``k`` MAD's extreme vertex (Orekondy et al. 2020, Eq. 5, Sec. 4.2) and ``z(x)`` drawn by a
counter-based generator from a keyed hash of the query's bytes
(:func:`stealguard.defenses.random_noise.input_keys` with the defender's secret ``seed``), then
shrinks to the budget as MAD does: ``y~ = (1 - alpha) y + alpha t``,
``alpha = min(1, epsilon / ||t - y||_p)``. The same query always gets the same answer (repeating
and averaging gains nothing), and the ``mix alpha r(x)`` part of the answer is unknown to anyone
without the key: the attacker's best substitute is its mean, about uniform. What it cannot undo
is ``alpha mix (r(x) - u)`` per answer, up to ``alpha mix ||r - u||`` in the budget norm.

The hash is a 64-bit keyed mix (not a cryptographic MAC); the key is the defense's ``seed``,
never the attacker's.

Budget and argmax: as MAD (``||y~ - y||_norm <= epsilon``; no argmax promise).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from stealguard._checks import check_number
from stealguard.defenses.mad import MAD
from stealguard.defenses.random_noise import hashed_normal, input_keys


class MADKeyed(MAD):
    """MAD with a keyed random component in its target (module docstring).

    Args:
        mix: weight of the keyed random point in the target, in [0, 1] (default 0.5; 0 is MAD).
        seed: the defender's secret key, >= 0 (the harness passes the defender's seed).
        epsilon, norm, surrogate, jacobian, oracle, chunk_size: as :class:`~stealguard.defenses.mad.MAD`.

    Shape:
        x ``(N, ...)``; probs ``(N, K)`` -> ``(N, K)``.

    Guarantees: on the simplex, ``||y~ - y||_norm <= epsilon``, deterministic per query
    (batch output equals row-by-row output).
    """

    name = "mad_keyed"

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
        mix: float = 0.5,
    ) -> None:
        super().__init__(
            epsilon=epsilon, norm=norm, surrogate=surrogate, jacobian=jacobian, oracle=oracle, seed=seed, chunk_size=chunk_size
        )
        self.mix = check_number("mix", mix, low=0, high=1)

    @staticmethod
    def _oracles() -> tuple[str, ...]:
        return ("extreme", "argmin")

    def params(self) -> dict[str, Any]:
        """MAD's parameters and ``mix``; the key (``seed``) is secret and not reported."""
        public = {key: value for key, value in super().params().items() if key != "seed"}
        return {**public, "mix": self.mix}

    def _target(self, x: Tensor, probs: Tensor) -> Tensor:
        vertex = super()._target(x, probs)
        keyed = torch.softmax(hashed_normal(input_keys(x, self.seed), probs.shape[1]).to(probs.device), dim=1)
        return (1 - self.mix) * vertex + self.mix * keyed.to(probs.dtype)
