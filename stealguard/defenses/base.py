"""The one abstraction every defense implements.

A defense maps the victim's clean posterior to the posterior the API returns::

    perturbed = defense(x, probs)

with ``x`` the query batch ``(N, ...)`` and ``probs`` the clean probabilities ``(N, K)``.
``Defense.__call__`` is the only entry point: it checks shapes, finiteness and that
``probs`` lies on the probability simplex (one fused reduction, one host read), runs the
subclass's ``_perturb`` in the subclass's ``compute_dtype`` (float64 unless the subclass
declares the input's dtype exact enough) on rows clamped and renormalised onto the simplex
(``_perturb`` may not modify its input in place), puts the result back on the simplex
(clamps round-off negatives, renormalises) and returns it in the input's dtype and device.
A ``_perturb`` result with a NaN/Inf entry or a row without positive mass is a defense bug:
it raises :class:`DefenseOutputError` instead of being mapped silently to some simplex point.
Subclasses whose ``_perturb`` returns simplex rows by construction say so with
``output_on_simplex = True`` and skip that last step. Subclasses write only ``_perturb``;
their parameters are keyword-only and checked in ``__init__``.
"""

from __future__ import annotations

import abc
import functools
import math
from typing import Any, ClassVar

import torch
from torch import Tensor

SIMPLEX_TOLERANCE = 1e-3
"""Largest accepted deviation of an input row sum from 1 (and of an entry below 0)."""
ON_SIMPLEX = 5e-7
"""Row sums within this of 1 count as on the simplex already (float rounding); half the 1e-6 the outputs promise."""


@functools.lru_cache(maxsize=1024)
def _cached_constant(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.tensor(value, dtype=dtype, device=device)


def constant(value: float, like: Tensor) -> Tensor:
    """``value`` as a 0-dim tensor of ``like``'s dtype and device, cached; never modify it in place.

    Arithmetic between a tensor and a Python number wraps the number on every call (several
    microseconds on the CPU, more than the operation on a small posterior); a cached 0-dim
    tensor operand skips that.
    """
    return _cached_constant(float(value), like.dtype, like.device)


class DefenseOutputError(RuntimeError):
    """A defense's ``_perturb`` returned a row that cannot be put on the simplex (NaN, Inf, no mass).

    This is a bug in the defense, not in the caller's input; the message names the defense and
    the row index, never the row's values (they would reveal the clean posterior).
    """


def _extremes(column: Tensor, *more: Tensor) -> list[float]:
    """Smallest and largest entry of the ``(N, 1)`` ``column``, then the 0-dim ``more``, as floats, in one host read.

    NaN in ``column`` gives NaN for both extremes. On the CPU each ``float()`` is a plain memory
    read (``item()``, well under a microsecond, cheaper than stacking), and a single row needs no reduction;
    elsewhere the values are stacked first, so that the device is synchronised once.
    """
    if column.device.type != "cpu":
        return torch.stack((*torch.aminmax(column), *more)).tolist()
    if column.shape[0] == 1:
        value = column.item()
        return [value, value, *(extra.item() for extra in more)]
    return [value.item() for value in (*torch.aminmax(column), *more)]


def output_onto_simplex(name: str, perturbed: Tensor) -> Tensor:
    """Put ``_perturb``'s ``(N, K)`` result on the simplex: clamp round-off negatives, renormalise.

    One host read: the smallest and largest row total are positive and finite exactly when every
    total is (NaN propagates through clamp, sum and both reductions).

    Raises:
        DefenseOutputError: a row contains NaN or +Inf, or has no positive mass.
    """
    clamped = perturbed.clamp_min(0)
    totals = clamped.sum(dim=1, keepdim=True)
    low, high = _extremes(totals)
    if not (low > 0 and high < math.inf):
        row = int((~((totals > 0) & torch.isfinite(totals))).nonzero()[0, 0])
        raise DefenseOutputError(
            f"defense {name!r} produced row {row} with NaN/Inf entries or no positive mass (a bug in the defense)"
        )
    return clamped.div_(totals)


def _check_layout(x: Tensor, probs: Tensor) -> None:
    """Types, dtype, shapes and devices of one call's inputs (no tensor is read)."""
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


def _raise_off_simplex(probs: Tensor) -> None:
    """Raise the precise error for the first row of ``probs`` that is off the simplex (the slow path)."""
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


def checked_onto_simplex(probs: Tensor, *, renormalise: bool = True) -> Tensor:
    """Check that the ``(N, K)`` rows of ``probs`` (N >= 1) are on the simplex and return them exactly on it.

    One fused check with a single host read: the smallest and largest row sum and the smallest
    entry. NaN fails every comparison, +Inf the largest sum, -Inf the smallest entry. Rows
    within ``SIMPLEX_TOLERANCE`` are clamped at 0 (only when an entry is negative) and divided
    by their sums (skipped when every sum is exactly 1, or when ``renormalise`` is False),
    in ``probs``' dtype.

    Raises:
        ValueError: a row is off the simplex, naming the row and what is wrong with it.
    """
    sums = probs.sum(dim=1, keepdim=True)
    low_sum, high_sum, lowest = _extremes(sums, probs.amin())
    if not (low_sum >= 1 - SIMPLEX_TOLERANCE and high_sum <= 1 + SIMPLEX_TOLERANCE and lowest >= -SIMPLEX_TOLERANCE):
        _raise_off_simplex(probs)
    if lowest < 0:
        probs = probs.clamp_min(0)
        return probs / probs.sum(dim=1, keepdim=True) if renormalise else probs
    if not renormalise or (low_sum >= 1 - ON_SIMPLEX and high_sum <= 1 + ON_SIMPLEX):
        return probs
    return probs / sums


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
    _check_layout(x, probs)
    if probs.shape[0] > 0:
        checked_onto_simplex(probs)


class Defense(abc.ABC):
    """Base class of every posterior-perturbation defense.

    Subclasses set ``name``, take keyword-only parameters checked in ``__init__`` and
    implement :meth:`_perturb`. ``params()`` returns the public parameters for result files.
    """

    name: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    """Models the defense takes from its victim, by parameter name (``"surrogate"``,
    ``"misinformation"``); :func:`stealguard.artifacts.build_defense` provides each from the
    victim's card and folder when a spec does not."""
    compute_dtype: ClassVar[torch.dtype | None] = torch.float64
    """The dtype ``_perturb`` sees: float64 (default) or None for the input's (float32 or float64)."""
    scale_invariant: ClassVar[bool] = False
    """True when ``_perturb`` depends only on the order or the ratios of a row's entries, so that
    the boundary need not divide rows by their sums (it still clamps negative entries at 0)."""
    output_on_simplex: ClassVar[bool] = False
    """True when ``_perturb`` returns finite rows >= 0 summing to 1 (up to the compute dtype's round-off)
    by construction; the boundary then returns them without clamping, renormalising and checking them."""

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
        _check_layout(x, probs)
        if probs.shape[0] == 0:
            return probs.clone()
        dtype = probs.dtype if self.compute_dtype is None else self.compute_dtype
        perturbed = self._perturb(x, checked_onto_simplex(probs.to(dtype), renormalise=not self.scale_invariant))
        if not self.output_on_simplex:
            perturbed = output_onto_simplex(self.name, perturbed)
        elif perturbed is probs:
            return probs.clone()
        return perturbed.to(probs.dtype)

    @abc.abstractmethod
    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        """Return the perturbed posteriors ``(N, K)`` for ``probs`` on the simplex (``compute_dtype``), N >= 1."""

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
