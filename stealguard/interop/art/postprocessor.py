"""stealguard defenses that need only the posteriors, as ART postprocessors.

ART's ``Postprocessor.__call__(preds)`` receives the classifier's outputs and nothing else:
never the inputs ``x`` they answer. A stealguard defense ``defense(x, probs)`` fits that
interface only when it ignores ``x``; :func:`uses_input` says which ones do not (a declared
table, checked by the tests). MAD, MAD-argmax, adaptive misinformation and ``random_noise``
with ``consistent=True`` need ``x`` and go through
:class:`stealguard.interop.art.DefendedClassifier` instead.

Wrapping stealguard's versions gives ART users two fixes of ART 1.20.1's own postprocessors:
``ClassLabels`` marks every row with the argmax columns of the whole batch (a batch of two
rows with argmax 0 and 1 answers ``[1, 1]`` on both), while ``label_only`` answers each row's
own one-hot; ``Rounded`` rows stop summing to 1 (at 2 decimals a uniform row over K = 1000
classes becomes all zeros), while ``rounding`` keeps every row on the simplex by
largest-remainder rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from art.defences.postprocessor import Postprocessor

from stealguard._checks import check_choice
from stealguard.defenses import DCP, Defense, LabelOnly, NoDefense, RandomNoise, ReverseSigmoid, Rounding, TopK
from stealguard.defenses.spec import defense_from_spec

PREDS = ("probs", "logits")

_POSTERIOR_ONLY: dict[type[Defense], Callable[[Any], bool]] = {
    NoDefense: lambda defense: True,
    ReverseSigmoid: lambda defense: True,
    DCP: lambda defense: True,
    TopK: lambda defense: True,
    Rounding: lambda defense: True,
    LabelOnly: lambda defense: True,
    RandomNoise: lambda defense: not defense.consistent,
}
"""Defense classes whose ``_perturb`` never reads ``x`` (under the stated condition on the instance)."""


def uses_input(defense: Defense) -> bool:
    """Whether ``defense(x, probs)`` depends on the query ``x`` and not only on ``probs``.

    True for every defense class not declared posterior-only here (MAD, MAD-argmax,
    adaptive misinformation, defenses registered later) and for ``random_noise`` with
    ``consistent=True`` (its noise is a hash of ``x``).

    Raises:
        TypeError: ``defense`` is not a stealguard ``Defense``.
    """
    if not isinstance(defense, Defense):
        raise TypeError(f"defense must be a stealguard Defense, got {type(defense).__name__}")
    posterior_only = _POSTERIOR_ONLY.get(type(defense))
    return posterior_only is None or not posterior_only(defense)


def as_defense(defense: Defense | str) -> Defense:
    """A ``Defense`` from an instance or a spec such as ``"rounding:decimals=2"``.

    Raises:
        TypeError: neither a ``Defense`` nor a string. ValueError: a bad spec.
    """
    if isinstance(defense, str):
        return defense_from_spec(defense)
    if not isinstance(defense, Defense):
        raise TypeError(f"defense must be a stealguard Defense or a spec string, got {type(defense).__name__}")
    return defense


def apply_defense(
    defense: Defense, x: torch.Tensor, preds: np.ndarray, *, kind: str, device: torch.device | None = None
) -> np.ndarray:
    """``defense(x, probs)`` on numpy predictions, in the predictions' float dtype.

    Args:
        defense: the stealguard defense.
        x: the queries ``(N, ...)`` the predictions answer (a placeholder ``(N, 0)`` for
            posterior-only defenses).
        preds: ``(N, K)`` float array: probabilities on the simplex (``kind="probs"``) or
            logits (``kind="logits"``, put through a softmax first).
        device: where the defense runs (default the CPU); the result comes back to the CPU.

    Returns:
        Defended probabilities ``(N, K)``, float32 unless ``preds`` is float64.

    Raises:
        TypeError: ``preds`` is not a floating-point array. ValueError: not ``(N, K)``, not
        finite, or (``kind="probs"``) rows off the simplex (see ``stealguard.defenses.check_query``).
    """
    array = np.asarray(preds)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"preds must be a floating-point array (N, K), got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"preds must have shape (N, K), got {array.shape}")
    probs = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64)).to(device or "cpu")
    if kind == "logits":
        if not bool(torch.isfinite(probs).all()):
            raise ValueError("preds must be finite; the logits contain NaN or Inf")
        probs = torch.softmax(probs, dim=1)
    defended = defense(x.to(probs.device), probs)
    dtype = np.float64 if array.dtype == np.float64 else np.float32
    return defended.cpu().numpy().astype(dtype, copy=False)


class DefensePostprocessor(Postprocessor):
    """A posterior-only stealguard defense as an ART ``Postprocessor`` (``apply_predict=True``).

    Attach it to any ART classifier (``postprocessing_defences=[DefensePostprocessor("dcp")]``)
    or call it on predictions: ``postprocessor(preds)`` equals ``defense(x, probs)`` for every
    ``x``, because the defense never reads ``x``. The defense's checks apply (``preds`` must be
    finite and, for ``preds="probs"``, on the simplex within 1e-3) and every output row is on
    the simplex (entries >= 0, sums 1 within 1e-6).

    ART's postprocessor interface passes ``preds`` only, never the inputs, so defenses that
    need ``x`` (MAD, MAD-argmax, adaptive misinformation, consistent ``random_noise``) are
    refused here; wrap the classifier in :class:`stealguard.interop.art.DefendedClassifier`.

    Args:
        defense: a stealguard ``Defense`` or a spec string (``"rounding:decimals=2"``).
        preds: what the classifier outputs: ``"probs"`` (default, e.g. a ``BlackBoxClassifier``)
            or ``"logits"`` (e.g. a ``PyTorchClassifier`` without softmax; a softmax is applied
            first, for every row alike).

    Shape:
        preds ``(N, K)`` float32/float64 -> ``(N, K)`` probabilities, same dtype (float32 for
        other float dtypes).

    Raises:
        TypeError: ``defense`` reads ``x`` (see :func:`uses_input`), or is not a defense/spec.
        ValueError: a bad spec or ``preds`` value.

    Example:
        >>> import numpy as np
        >>> post = DefensePostprocessor("label_only")
        >>> post(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32))
        array([[1., 0., 0.],
               [0., 0., 1.]], dtype=float32)
    """

    params: ClassVar[list[str]] = ["defense", "preds"]

    def __init__(self, defense: Defense | str, *, preds: str = "probs") -> None:
        self.defense = self._posterior_only(as_defense(defense))
        self.preds = check_choice("preds", preds, PREDS)
        super().__init__(is_fitted=True, apply_fit=False, apply_predict=True)

    @staticmethod
    def _posterior_only(defense: Defense) -> Defense:
        if uses_input(defense):
            raise TypeError(
                f"defense {defense.name!r} reads the query x, which an ART postprocessor never sees "
                "(ART passes preds only); wrap the classifier in stealguard.interop.art.DefendedClassifier"
            )
        return defense

    def __call__(self, preds: np.ndarray) -> np.ndarray:
        """Defended probabilities ``(N, K)`` for the predictions ``preds`` ``(N, K)``."""
        rows = int(np.shape(preds)[0]) if np.ndim(preds) else 0
        return apply_defense(self.defense, torch.empty(rows, 0), preds, kind=self.preds)

    def set_params(self, **kwargs: Any) -> None:
        """Replace ``defense`` and/or ``preds``, checked as in ``__init__``.

        Raises:
            TypeError: an unknown parameter (ART's own ``set_params`` drops it silently),
            or a defense that reads ``x``. ValueError: a bad value.
        """
        unknown = sorted(set(kwargs) - set(self.params))
        if unknown:
            raise TypeError(f"unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(self.params)}")
        defense = self._posterior_only(as_defense(kwargs.get("defense", self.defense)))
        self.preds = check_choice("preds", kwargs.get("preds", self.preds), PREDS)
        self.defense = defense

    def __repr__(self) -> str:
        return f"DefensePostprocessor({self.defense!r}, preds={self.preds!r})"
