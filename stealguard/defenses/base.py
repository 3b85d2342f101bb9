"""The one abstraction every defense implements.

A defense maps the victim's clean posterior to the posterior the API returns::

    perturbed = defense(x, probs)

with ``x`` the query batch ``(N, ...)`` and ``probs`` the clean probabilities ``(N, K)``.
``Defense.__call__`` is the only entry point: it checks shapes, finiteness and that
``probs`` lies on the probability simplex, runs the subclass's ``_perturb`` in float64
on rows clamped and renormalised onto the simplex (so that row sums hold to 1e-6 even
for K = 1000; ``_perturb`` may not modify its input in place), puts the result back on the simplex
(clamps round-off negatives, renormalises) and returns it in the input's dtype and device.
A ``_perturb`` result with a NaN/Inf entry or a row without positive mass is a defense bug:
it raises :class:`DefenseOutputError` instead of being mapped silently to some simplex point.
Subclasses write only ``_perturb``; their parameters are keyword-only and checked in
``__init__``.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import Tensor

from stealguard.defenses.simplex import onto_simplex

SIMPLEX_TOLERANCE = 1e-3
"""Largest accepted deviation of an input row sum from 1 (and of an entry below 0)."""


class DefenseOutputError(RuntimeError):
    """A defense's ``_perturb`` returned a row that cannot be put on the simplex (NaN, Inf, no mass).

    This is a bug in the defense, not in the caller's input; the message names the defense and
    the row index, never the row's values (they would reveal the clean posterior).
    """


def output_onto_simplex(name: str, perturbed: Tensor) -> Tensor:
    """Put ``_perturb``'s float64 ``(N, K)`` result on the simplex: clamp round-off negatives, renormalise.

    Raises:
        DefenseOutputError: a row contains NaN or +Inf, or has no positive mass.
    """
    clamped = perturbed.clamp_min(0)
    totals = clamped.sum(dim=1, keepdim=True)
    low, high = torch.aminmax(totals)
    # NaN propagates through clamp, sum and both reductions, so it fails both comparisons.
    if not (float(low) > 0 and float(high) < float("inf")):
        row = int((~((totals > 0) & torch.isfinite(totals))).nonzero()[0, 0])
        raise DefenseOutputError(
            f"defense {name!r} produced row {row} with NaN/Inf entries or no positive mass (a bug in the defense)"
        )
    return clamped / totals


def check_query(x: Tensor, probs: Tensor) -> None:
    """Validate one defense call's inputs.

    Args:
        x: the query batch ``(N, ...)``; any dtype, any device.
        probs: clean posteriors ``(N, K)``, float32 or float64, K >= 2, on ``x``'s device,
            finite, entries >= -1e-3 and rows summing to 1 within 1e-3.

    Raises:
        TypeError: ``x`` or ``probs`` is not a tensor, or ``probs`` is not float32/float64.
        ValueError: any other violation, with the offending row where there is one.
    """
    if not isinstance(x, Tensor) or not isinstance(probs, Tensor):
        raise TypeError(
            f"x and probs must be torch tensors, got {type(x).__name__} and {type(probs).__name__}"
        )
    if probs.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"probs must be float32 or float64, got {probs.dtype}")
    if probs.dim() != 2:
        raise ValueError(f"probs must have shape (N, K), got {tuple(probs.shape)}")
    if probs.shape[1] < 2:
        raise ValueError(f"probs must have K >= 2 classes, got K = {probs.shape[1]}")
    if x.dim() < 1 or x.shape[0] != probs.shape[0]:
        raise ValueError(
            f"x and probs must have the same batch size N, got x {tuple(x.shape)} and probs {tuple(probs.shape)}"
        )
    if x.device != probs.device:
        raise ValueError(f"x and probs must be on the same device, got {x.device} and {probs.device}")
    if probs.shape[0] == 0:
        return
    # One fused scalar: the worst row-sum error or negative entry. NaN propagates through both
    # reductions and fails the comparison, +Inf fails the sum, -Inf the minimum.
    worst = float(torch.maximum((probs.sum(dim=1) - 1).abs().amax(), probs.amin().neg()))
    if not worst <= SIMPLEX_TOLERANCE:
        row_ok = ((probs.sum(dim=1) - 1).abs() <= SIMPLEX_TOLERANCE) & (probs.amin(dim=1) >= -SIMPLEX_TOLERANCE)
        row = int((~row_ok).nonzero()[0, 0])
        values = probs[row]
        if not bool(torch.isfinite(values).all()):
            raise ValueError(f"probs must be finite; row {row} contains NaN or Inf")
        if float(values.min()) < -SIMPLEX_TOLERANCE:
            raise ValueError(f"probs must be non-negative; row {row} has min {float(values.min()):.3g}")
        raise ValueError(
            f"probs rows must sum to 1 (within {SIMPLEX_TOLERANCE:g}); row {row} sums to {float(values.sum()):.6g}"
        )


class Defense(abc.ABC):
    """Base class of every posterior-perturbation defense.

    Subclasses set ``name``, take keyword-only parameters checked in ``__init__`` and
    implement :meth:`_perturb`. ``params()`` returns the public parameters for result files.
    """

    name: ClassVar[str] = ""

    def __call__(self, x: Tensor, probs: Tensor) -> Tensor:
        """Perturb a batch of posteriors.

        Args:
            x: the query batch ``(N, ...)`` the posteriors answer.
            probs: clean posteriors ``(N, K)``, float32 or float64, on the simplex.

        Returns:
            Perturbed posteriors ``(N, K)``, same dtype and device as ``probs``, rows on the
            probability simplex (entries >= 0, sums 1 within 1e-6).

        Raises:
            TypeError, ValueError: see :func:`check_query`.
            DefenseOutputError: the defense itself produced NaN/Inf or an empty row (a bug).
        """
        check_query(x, probs)
        if probs.shape[0] == 0:
            return probs.clone()
        perturbed = output_onto_simplex(self.name, self._perturb(x, onto_simplex(probs.double())))
        return perturbed.to(probs.dtype)

    @abc.abstractmethod
    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        """Return the perturbed posteriors ``(N, K)`` for float64 ``probs`` on the simplex, N >= 1."""

    def params(self) -> dict[str, Any]:
        """Public parameters of this defense (JSON-serialisable), for result files."""
        return {}

    def argmax_threshold(self) -> float | None:
        """Rows whose top probability exceeds this value keep their argmax (ties aside).

        ``0.0``: every row keeps it; ``None`` (default): no promise.
        """
        return None

    def budget(self) -> tuple[str, float] | None:
        """The distortion budget this defense promises, ``(norm, epsilon)`` with norm ``"l1"`` or ``"l2"``.

        Every output row then satisfies ``||y~ - y||_norm <= epsilon``. ``None``: no budget.
        """
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params().items())
        return f"{type(self).__name__}({args})"
