"""Defenses whose answers cannot be inverted: the inverter returns the answer (its best guess) and says why.

* ``none``: nothing to undo.
* ``rounding``: every clean posterior in a grid cell of width ``10^-decimals`` gives the same
  answer; the answer is the cell's representative (the information below the grid is gone).
* ``topk``: the entries below the k-th largest are zeroed and the rest renormalised; the
  zeroed mass and its split are gone (the kept entries' ratios are exact).
* ``label_only``: only the argmax survives.
* ``random_noise``: a zero-sum perturbation of norm ``epsilon`` drawn per query; with
  ``consistent=False`` a fresh draw per query averages out over repeats (the ``repeat``
  evasion option, not an inversion); with ``consistent=True`` the draw is a keyed function of
  the query, so repeating returns the same answer and nothing averages it away. Either way a
  single answer is ``y + n`` with ``n`` unknown: its best estimate is the answer itself.
* ``adaptive_misinformation``: rows below the detector threshold are replaced, almost entirely,
  by the misinformation model's posterior on ``x`` (``(1 - a) y + a y^`` with ``a ~ 1``); ``y``
  survives only with weight ``1 - a`` (about ``exp(-nu (tau - max y))``), far below float
  resolution for the default ``nu``. Confident rows are returned unchanged already.

Every class here accepts the defense's own spec parameters, so a defense spec can be passed
as it is; they do not change the (identity) estimate.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from stealguard._checks import check_bool, check_choice, check_int, check_number
from stealguard.attacks.inversion.base import Inverter
from stealguard.defenses.random_noise import MAX_LOGIT_EPSILON, SPACES
from stealguard.defenses.simplex import MAX_DISTANCE, NORMS


class Unrecoverable(Inverter):
    """Base of the identity inverters: returns the answers (the best guess); ``exact`` is False."""

    exact = False
    reason = ""

    def _invert(self, answers: Tensor) -> Tensor:
        return answers


class NoneInversion(Unrecoverable):
    """``none``: the answers are the clean posteriors (exact)."""

    name = "none"
    exact = True
    reason = "nothing was changed"

    def __init__(self) -> None:
        pass


class RoundingInversion(Unrecoverable):
    """``rounding``: identity; ``decimals`` in [0, 10] as the defense takes it."""

    name = "rounding"
    reason = "entries below the rounding grid are lost"

    def __init__(self, *, decimals: int = 2) -> None:
        self.decimals = check_int("decimals", decimals, low=0, high=10)

    def params(self) -> dict[str, Any]:
        return {"decimals": self.decimals}


class TopKInversion(Unrecoverable):
    """``topk``: identity; ``k`` >= 1 as the defense takes it."""

    name = "topk"
    reason = "the mass outside the top k is lost"

    def __init__(self, *, k: int = 5) -> None:
        self.k = check_int("k", k, low=1)

    def params(self) -> dict[str, Any]:
        return {"k": self.k}


class LabelOnlyInversion(Unrecoverable):
    """``label_only``: identity (the one-hot label)."""

    name = "label_only"
    reason = "only the argmax is returned"

    def __init__(self) -> None:
        pass


class RandomNoiseInversion(Unrecoverable):
    """``random_noise``: identity; parameters as the defense takes them (the seed is the defender's, unknown)."""

    name = "random_noise"
    reason = "the noise of one answer is unknown; consistent noise cannot be averaged over repeats"

    def __init__(
        self, *, epsilon: float = 0.1, norm: str = "l1", consistent: bool = False, seed: int = 0, space: str = "prob"
    ) -> None:
        self.norm = check_choice("norm", norm, NORMS)
        self.space = check_choice("space", space, SPACES)
        high = MAX_DISTANCE[self.norm] if self.space == "prob" else MAX_LOGIT_EPSILON
        self.epsilon = check_number("epsilon", epsilon, low=0, high=high, low_inclusive=False)
        self.consistent = check_bool("consistent", consistent)
        self.seed = check_int("seed", seed, low=0)

    def params(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "norm": self.norm, "consistent": self.consistent, "space": self.space}


class AdaptiveMisinformationInversion(Unrecoverable):
    """``adaptive_misinformation``: identity; ``tau`` in (0, 1], ``nu`` > 0 as the defense takes them."""

    name = "adaptive_misinformation"
    reason = "uncertain rows are replaced by the misinformation posterior"

    def __init__(self, *, tau: float = 0.5, nu: float = 1000.0) -> None:
        self.tau = check_number("tau", tau, low=0, high=1, low_inclusive=False)
        self.nu = check_number("nu", nu, low=0, low_inclusive=False)

    def params(self) -> dict[str, Any]:
        return {"tau": self.tau, "nu": self.nu}
