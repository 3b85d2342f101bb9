"""The one abstraction every answer inverter implements.

An inverter is the attacker's model of a public defense: it maps the answers the defended
API returned, ``y~ = D(y)``, to its best estimate of the clean posteriors ``y``::

    recovered = inverter(answers)

``Inverter.__call__`` is the only entry point: it checks that ``answers`` is an ``(N, K)``
float tensor on the simplex (within 1e-3), runs the subclass's ``_invert`` in float64 on
the rows clamped and renormalised onto the simplex, puts the result back on the simplex
(negative entries clamped to 0, rows renormalised; a row left without mass falls back to
its answer) and returns it in the answers' dtype and device.

An inverter sees answers only, never the queries or the defender's models; where the
defense is a deterministic map of ``y`` alone it can undo it, where the defense draws
randomness the attacker cannot reproduce or destroys information it returns its best guess
and says so in :attr:`Inverter.exact`.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import Tensor

from stealguard.defenses.base import SIMPLEX_TOLERANCE
from stealguard.defenses.simplex import onto_simplex


def check_answers(answers: Tensor) -> None:
    """Validate a batch of answers ``(N, K)``: float32/float64, K >= 2, finite, on the simplex within 1e-3.

    Raises:
        TypeError: not a float tensor. ValueError: wrong shape, NaN/Inf, or a row off the simplex.
    """
    if not isinstance(answers, Tensor) or answers.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"answers must be a float32 or float64 tensor, got {getattr(answers, 'dtype', type(answers).__name__)}")
    if answers.dim() != 2 or answers.shape[1] < 2:
        raise ValueError(f"answers must have shape (N, K) with K >= 2, got {tuple(answers.shape)}")
    if answers.shape[0] == 0:
        return
    if not bool(torch.isfinite(answers).all()):
        raise ValueError("answers must be finite; they contain NaN or Inf")
    sums = answers.double().sum(dim=1)
    if float(answers.amin()) < -SIMPLEX_TOLERANCE or float((sums - 1).abs().amax()) > SIMPLEX_TOLERANCE:
        row = int((((sums - 1).abs() > SIMPLEX_TOLERANCE) | (answers.amin(dim=1) < -SIMPLEX_TOLERANCE)).nonzero()[0, 0])
        raise ValueError(f"answers must be on the probability simplex (within {SIMPLEX_TOLERANCE:g}); row {row} is not")


class Inverter(abc.ABC):
    """Base class of answer inverters; subclasses implement :meth:`_invert`.

    Class attributes:
        name: the defense (registry name) this inverter undoes.
        exact: True when, with the defense's parameters known, the inversion is exact up to
            floating point on the rows the defense can be undone on; False when information is
            destroyed or randomness the attacker cannot reproduce is involved (best guess).
    """

    name: ClassVar[str] = ""
    exact: ClassVar[bool] = False

    def __call__(self, answers: Tensor) -> Tensor:
        """Recover clean posteriors from ``answers``.

        Shape:
            answers: ``(N, K)`` float32 or float64 on the simplex; returns ``(N, K)``, same dtype
            and device, rows on the simplex.

        Raises:
            TypeError, ValueError: see :func:`check_answers`.
        """
        check_answers(answers)
        if answers.shape[0] == 0:
            return answers.clone()
        clean = onto_simplex(answers.double())
        recovered = self._invert(clean).clamp_min(0)
        totals = recovered.sum(dim=1, keepdim=True)
        usable = torch.isfinite(totals) & (totals > 0)
        recovered = torch.where(usable, recovered / torch.where(usable, totals, 1.0), clean)
        return recovered.to(answers.dtype)

    @abc.abstractmethod
    def _invert(self, answers: Tensor) -> Tensor:
        """Estimate ``(N, K)`` of the clean posteriors from float64 answers on the simplex, N >= 1."""

    def params(self) -> dict[str, Any]:
        """Parameters of this inverter (JSON-serialisable); ``None`` marks one estimated from the answers."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params().items())
        return f"{type(self).__name__}({args})"
