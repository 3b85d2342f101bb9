"""Inverting reverse sigmoid (Lee et al., IEEE S&P Workshops 2019, arXiv:1806.00054).

The defense answers ``y~ = f(y) / Z`` with the per-entry map
``f(y) = y - beta (S(gamma S^-1(y)) - 1/2)`` (logit clamped to ``[1e-7, 1 - 1e-7]``) and
``Z = sum_j f(y_j)`` (for ``beta`` below :func:`~stealguard.defenses.reverse_sigmoid.positive_map_beta_bound`,
2.16 for ``gamma = 0.2``, no entry is clamped at 0: ``f > 0`` on [0, 1]). So
``y_j = f^-1(Z y~_j)`` with the one unknown ``Z`` fixed by ``sum_j f^-1(Z y~_j) = 1``.

``f`` is monotone only when ``beta gamma S'(gamma T)/S'(T) <= 1``; with the defaults
(``beta = 0.3, gamma = 0.2``) it rises on ``[0, 1e-7]``, falls to a minimum near ``y = 0.013``,
rises to a maximum near ``y = 0.987`` and falls again (``f(1 - y) = 1 - f(y)``), so a value in
either fold has two or three preimages. The inverter takes, per entry, the outermost
preimage (closest to 0 below 1/2, closest to 1 above: clean posteriors put most entries near
0 and the top one near 1), which is exact for entries outside the folds' inner branches;
clean entries on an inner branch (about 0.013 to 0.06 and 0.94 to 0.987 for the defaults)
are misread.
The pieces of ``f`` are tabulated on a fixed grid (log-spaced near 0), each preimage is read
off by interpolation and polished by Newton steps; ``Z`` is found per row by a scan over a
log grid of its feasible range ``[min f / min y~, max f / max y~]`` followed by bisection on
the first bracket that straddles the root (the smallest normaliser). Batched over rows and entries.

**Estimating beta** (``gamma`` known, the defense's default 0.2 unless given). Entries below the
clamp all map to ``f(0) = beta a`` (plus at most 1e-7) and entries above ``1 - 1e-7`` to ``f(1) =
1 - beta b`` (``a = b = 1/2 - S(gamma logit(1e-7))`` in exact arithmetic; see :func:`clamp_offsets`
for float32), so every answer to a clean row that is one-hot up to the clamp has the same ratio
``max / min = (1 - beta b) / (beta a)``. Each answer row thus implies one ``beta`` (the clamp
evaluated in the answers' float type); rows that are not one-hot imply values spread smoothly, the
one-hot ones a spike, and the estimate is the densest cluster of the implied values
(:func:`~stealguard.attacks.inversion.estimate.densest_cluster`, as for MAD's budget, here with a
window of relative width ``tol`` = 1e-5) over the answers seen so far. The defense and the
attacker share the clamp constant (it is part of the public defense). With fewer than
``support`` rows in the densest window (queries far from the victim's training data rarely get a
one-hot posterior) there is no estimate and the inverter falls back to the defense's default
``beta`` (0.3), the best guess left.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from stealguard._checks import check_choice, check_int, check_number
from stealguard.attacks.inversion.base import Inverter
from stealguard.attacks.inversion.estimate import densest_cluster
from stealguard.defenses.reverse_sigmoid import (
    DEFAULT_BETA,
    LOGIT_CLAMP,
    positive_map_beta_bound,
)

GRID_POINTS = 4096
"""Points of each half (log-spaced below 0.5, mirrored above) of the tabulated ``f``."""
Z_GRID = 48
"""Candidate normalisers scanned per row."""
BISECTION_STEPS = 30
SCAN_MARGIN = 1e-9
"""Relative widening of each row's feasible range of normalisers before the scan."""
NEWTON_STEPS = 3


def check_unclamped_beta(beta: float, gamma: float) -> float:
    """``beta`` checked to lie in ``[0, positive_map_beta_bound(gamma))``, where the map clamps no entry at 0.

    Raises:
        ValueError: ``beta`` outside that range (the map's clamped entries cannot be inverted).
        TypeError: not a real number.
    """
    return check_number("beta", beta, low=0, high=positive_map_beta_bound(gamma), high_inclusive=False)


def forward_map(y: Tensor, *, beta: float | Tensor, gamma: float) -> Tensor:
    """``f(y) = y - beta (S(gamma logit_clamped(y)) - 1/2)``, elementwise (``beta`` a scalar or broadcastable tensor)."""
    return y - beta * (torch.sigmoid(gamma * torch.logit(y, eps=LOGIT_CLAMP)) - 0.5)


def forward_slope(y: Tensor, *, beta: float | Tensor, gamma: float) -> Tensor:
    """``f'(y)``: ``1 - beta gamma S'(gamma logit y) / (y (1 - y))`` inside the clamp, 1 outside."""
    inside = (y > LOGIT_CLAMP) & (y < 1 - LOGIT_CLAMP)
    safe = y.clamp(LOGIT_CLAMP, 1 - LOGIT_CLAMP)
    s = torch.sigmoid(gamma * torch.logit(safe))
    return torch.where(inside, 1 - beta * gamma * s * (1 - s) / (safe * (1 - safe)), torch.ones_like(y))


class MonotonePieces:
    """A per-entry map on [0, 1] tabulated and cut into maximal monotone pieces, for batched preimage lookup.

    Args:
        beta, gamma: the map's parameters, passed to ``forward`` and ``slope``.
        forward: the map ``f(y, beta=, gamma=)`` (default :func:`forward_map`, reverse sigmoid's).
        slope: its derivative (default :func:`forward_slope`).
        symmetric: ``f(1 - y) = 1 - f(y)`` holds (reverse sigmoid's map; default True).
    """

    def __init__(
        self, *, beta: float, gamma: float, forward: Callable[..., Tensor] = forward_map,
        slope: Callable[..., Tensor] = forward_slope, symmetric: bool = True,
    ) -> None:
        self.beta, self.gamma = beta, gamma
        self.forward, self.slope, self.symmetric = forward, slope, symmetric
        half = torch.logspace(-16, math.log10(0.5), GRID_POINTS, dtype=torch.float64)
        grid = torch.cat([torch.zeros(1, dtype=torch.float64), half, (1 - half).flip(0)[1:], torch.ones(1, dtype=torch.float64)])
        grid = torch.unique(torch.cat([grid, torch.tensor([LOGIT_CLAMP, 1 - LOGIT_CLAMP], dtype=torch.float64)]))
        values = forward(grid, beta=beta, gamma=gamma)
        rising = values[1:] >= values[:-1]
        cuts = (rising[1:] != rising[:-1]).nonzero().squeeze(1) + 1
        bounds = [0, *cuts.tolist(), len(grid) - 1]
        self.pieces = [(grid[a : b + 1], values[a : b + 1]) for a, b in itertools.pairwise(bounds)]
        self.low = float(values.min())
        self.high = float(values.max())

    def _preimage(self, v: Tensor, *, polish: bool, largest: bool) -> Tensor:
        v = v.clamp(self.low, self.high)
        result = torch.full_like(v, math.nan)
        # Later pieces overwrite earlier ones: in reverse order the smallest preimage wins, in order the largest.
        for ys, fs in self.pieces if largest else reversed(self.pieces):
            order = fs.argsort()
            fsorted, ysorted = fs[order], ys[order]
            inside = (v >= fsorted[0]) & (v <= fsorted[-1])
            index = torch.searchsorted(fsorted, v.clamp(float(fsorted[0]), float(fsorted[-1]))).clamp(1, len(fsorted) - 1)
            f0, f1 = fsorted[index - 1], fsorted[index]
            y0, y1 = ysorted[index - 1], ysorted[index]
            share = ((v - f0) / (f1 - f0).where(f1 > f0, torch.ones_like(f1))).clamp(0, 1)
            guess = y0 + share * (y1 - y0)
            lo, hi = float(ys.min()), float(ys.max())
            for _ in range(NEWTON_STEPS if polish else 0):
                slope = self.slope(guess, beta=self.beta, gamma=self.gamma)
                step = (self.forward(guess, beta=self.beta, gamma=self.gamma) - v) / slope.where(slope.abs() > 1e-12, torch.ones_like(slope))
                guess = (guess - step).clamp(lo, hi)
            result = torch.where(inside, guess, result)
        return result

    def smallest_preimage(self, v: Tensor, *, polish: bool = True) -> Tensor:
        """Smallest ``y`` in [0, 1] with ``f(y) = v``, same shape as ``v``; ``v`` is first clamped to the range of ``f``.

        ``polish``: refine the table's linear interpolation by Newton steps (off while searching ``Z``).
        """
        return self._preimage(v, polish=polish, largest=False)

    def outermost_preimage(self, v: Tensor, *, polish: bool = True) -> Tensor:
        """The preimage of ``v`` closest to 0 for ``v <= 1/2`` and closest to 1 above.

        For a symmetric map (``f(1 - y) = 1 - f(y)``, the clamp being symmetric) the largest
        preimage of ``v`` is ``1 -`` the smallest preimage of ``1 - v``.
        """
        low = v <= 0.5
        if not self.symmetric:
            return torch.where(low, self._preimage(v, polish=polish, largest=False), self._preimage(v, polish=polish, largest=True))
        small = self.smallest_preimage(torch.where(low, v, 1 - v), polish=polish)
        return torch.where(low, small, 1 - small)

    def inner_preimage(self, v: Tensor, *, polish: bool = True) -> Tensor:
        """The preimage of ``v`` closest to 1/2: the largest for ``v <= 1/2``, the smallest above."""
        low = v <= 0.5
        return torch.where(low, self._preimage(v, polish=polish, largest=True), self._preimage(v, polish=polish, largest=False))

    def preimage(self, v: Tensor, *, branch: str, polish: bool = True) -> Tensor:
        """:meth:`outermost_preimage` (``branch="outer"``) or :meth:`inner_preimage` (``"inner"``)."""
        return self.outermost_preimage(v, polish=polish) if branch == "outer" else self.inner_preimage(v, polish=polish)


BRANCHES = ("auto", "outer", "inner")
"""Preimage rules of :func:`invert_renormalised_map`."""
CONFIDENT_TOP = 0.9
"""``branch="auto"`` keeps a row's outer solution when its top entry reaches this."""


def invert_renormalised_map(answers: Tensor, pieces: MonotonePieces, *, branch: str = "outer") -> Tensor:
    """``y`` with ``f(y) / sum f(y) = answers``, ``(N, K) -> (N, K)``; NaN rows where none is found.

    Where ``f`` is folded a value has several preimages. ``branch="outer"``: every entry's outermost
    (right for confident clean rows: entries near 0 and a top near 1); ``"inner"``: the one closest
    to 1/2 (right for uncertain rows, whose entries lie between the folds); ``"auto"``: per row, the
    outer solution when its top entry is at least :data:`CONFIDENT_TOP`, else the inner one. Where a
    row has no exact root under the rule (a clean row with entries on both branches) the closest
    is returned; the caller renormalises it.
    """
    if branch != "auto":
        return _solve(answers, pieces, branch)
    outer = _solve(answers, pieces, "outer")
    confident = outer.amax(dim=1, keepdim=True) >= CONFIDENT_TOP
    return torch.where(confident, outer, _solve(answers, pieces, "inner"))


def _solve(answers: Tensor, pieces: MonotonePieces, branch: str) -> Tensor:
    n, _ = answers.shape
    tiny = torch.finfo(answers.dtype).tiny
    # Every entry's Z y~_j must be a value of f: Z in [max_j low / y~_j, min_j high / y~_j].
    # Widened by SCAN_MARGIN: a row whose smallest entries sit at f's minimum (clean entries below the clamp) has
    # its root at the edge of the feasible range, which rounding can put just outside it.
    z_low = (pieces.low / answers.amin(dim=1).clamp_min(tiny) * (1 - SCAN_MARGIN)).clamp_min(tiny)
    z_high = torch.maximum(pieces.high / answers.amax(dim=1) * (1 + SCAN_MARGIN), z_low * (1 + 1e-12))
    steps = torch.linspace(0, 1, Z_GRID, dtype=answers.dtype, device=answers.device)
    zs = torch.exp(torch.log(z_low).unsqueeze(1) + steps * (torch.log(z_high) - torch.log(z_low)).unsqueeze(1))

    def excess(z: Tensor) -> Tensor:
        return pieces.preimage(z.unsqueeze(-1) * answers.unsqueeze(1), branch=branch, polish=False).sum(dim=-1) - 1

    values = excess(zs)
    crossing = (values[:, :-1].sign() != values[:, 1:].sign()) & torch.isfinite(values[:, :-1]) & torch.isfinite(values[:, 1:])
    # The first bracket whose endpoints straddle zero (smallest normaliser).
    first = torch.where(crossing.any(dim=1), crossing.to(torch.int8).argmax(dim=1), values.abs().nan_to_num(math.inf).argmin(dim=1).clamp(max=Z_GRID - 2))
    rows = torch.arange(n, device=answers.device)
    low, high = zs[rows, first], zs[rows, first + 1]
    low_value = values[rows, first]
    for _ in range(BISECTION_STEPS):
        middle = (low * high).sqrt()
        value = excess(middle.unsqueeze(1)).squeeze(1)
        same = (value.sign() == low_value.sign()) | ~torch.isfinite(value)
        low = torch.where(same, middle, low)
        low_value = torch.where(same, value, low_value)
        high = torch.where(same, high, middle)
    z = (low * high).sqrt()
    return pieces.preimage(z.unsqueeze(1) * answers, branch=branch)


def clamp_offsets(gamma: float, dtype: torch.dtype) -> tuple[float, float]:
    """``(a, b)`` with ``f(0) = beta a`` and ``f(1) = 1 - beta b``, the logit clamp evaluated in ``dtype``.

    Exactly ``a = b = 1/2 - S(gamma logit(1e-7))``; in float32 ``1 - 1e-7`` rounds to ``1 - 1.19e-7``,
    so the top clamp differs and ``b`` with it.
    """
    ends = torch.logit(torch.tensor([0.0, 1.0], dtype=dtype), eps=LOGIT_CLAMP).double()
    squashed = torch.sigmoid(gamma * ends)
    return float(0.5 - squashed[0]), float(squashed[1] - 0.5)


def implied_betas(answers: Tensor, *, gamma: float, dtype: torch.dtype | None = None) -> Tensor:
    """Per answer row, the ``beta`` it implies if its clean row is one-hot up to the clamp (module
    docstring): ``max / min = (1 - beta b) / (beta a)``, so ``beta = 1 / (a max / min + b)``, ``(N,)``.

    The clamp is evaluated in ``dtype`` (default: the answers' float type), the type the defense
    computed in (one-hot rows cannot tell float32 from float64 arithmetic apart: both fit their ratio).
    """
    ratio = answers.double().amax(dim=1) / answers.double().amin(dim=1)
    a, b = clamp_offsets(gamma, answers.dtype if dtype is None else dtype)
    return 1 / (a * ratio + b)


class ReverseSigmoidInversion(Inverter):
    """Undo ``reverse_sigmoid`` with ``beta`` known or estimated, and ``gamma`` > 0 known (module docstring).

    A known ``beta`` must lie in ``[0, positive_map_beta_bound(gamma))`` (2.16 for ``gamma = 0.2``),
    where no entry is clamped at 0.

    Args:
        beta: the defense's ``beta``, or None (default) to estimate it from the answers seen so far.
        gamma: the defense's ``gamma`` (default 0.2, the defense's default); not estimated.
        tol: relative width of the cluster the estimate is read from, in (0, 0.1] (default 1e-5).
        memory: answer rows pooled for the estimate, >= 1 (default 50000).
        support: the fewest rows the estimate must rest on, >= 1 (default 20); with fewer the
            defense's default ``beta``, :data:`DEFAULT_BETA`, is assumed.
        branch: which preimage a folded value takes (:func:`invert_renormalised_map`): ``"outer"``
            (default; right for queries the victim is confident on), ``"inner"`` (right for
            queries far from its data, with diffuse posteriors) or ``"auto"`` (per row). The
            attacker's choice, from what it knows of its queries; not a defense parameter.

    Rows where no normaliser is found keep their answer. ``estimated_beta``: the last estimate
    (None: known ``beta``, or the default assumed).
    """

    name = "reverse_sigmoid"
    exact = False

    def __init__(
        self, *, beta: float | None = None, gamma: float = 0.2, tol: float = 1e-5, memory: int = 50_000, support: int = 20,
        branch: str = "outer",
    ) -> None:
        self.gamma = check_number("gamma", gamma, low=0, low_inclusive=False)
        self.beta = None if beta is None else check_unclamped_beta(beta, self.gamma)
        self.tol = check_number("tol", tol, low=0, high=0.1, low_inclusive=False)
        self.memory = check_int("memory", memory, low=1)
        self.support = check_int("support", support, low=1)
        self.branch = check_choice("branch", branch, BRANCHES)
        self._pieces: MonotonePieces | None = None
        self._seen: Tensor | None = None
        self._served_dtype = torch.float64
        self.estimated_beta: float | None = None

    def params(self) -> dict[str, Any]:
        return {"beta": self.beta, "gamma": self.gamma, "branch": self.branch}

    def __call__(self, answers: Tensor) -> Tensor:
        """As :meth:`Inverter.__call__`; the answers' float type is taken as the one the defense computed in."""
        self._served_dtype = answers.dtype if answers.dtype == torch.float32 else torch.float64
        return super().__call__(answers)

    def current_beta(self, answers: Tensor) -> float:
        """The known ``beta``, or the estimate from the answers seen so far plus ``answers``, or :data:`DEFAULT_BETA`."""
        if self.beta is not None:
            return self.beta
        pooled = answers if self._seen is None else torch.cat([self._seen.to(answers), answers])
        self._seen = pooled[-self.memory :].cpu()
        implied = implied_betas(pooled, gamma=self.gamma, dtype=self._served_dtype)
        estimate = densest_cluster(implied, width=self.tol, support=self.support)
        self.estimated_beta = None if estimate is None or estimate >= 1 else estimate
        return DEFAULT_BETA if self.estimated_beta is None else self.estimated_beta

    def pieces(self, beta: float) -> MonotonePieces:
        """The tabulated map for ``beta`` (rebuilt when ``beta`` changes)."""
        if self._pieces is None or self._pieces.beta != beta:
            self._pieces = MonotonePieces(beta=beta, gamma=self.gamma)
        return self._pieces

    def _invert(self, answers: Tensor) -> Tensor:
        beta = self.current_beta(answers)
        if not beta:
            return answers
        recovered = invert_renormalised_map(answers, self.pieces(beta), branch=self.branch)
        found = torch.isfinite(recovered).all(dim=1, keepdim=True)
        return torch.where(found, recovered, answers)


class ReverseSigmoidKeyedInversion(ReverseSigmoidInversion):
    """The attacker's best inversion of ``reverse_sigmoid_keyed``: reverse sigmoid at the mean magnitude.

    The per-query magnitude ``beta (1 - spread u(x))`` is keyed; the inverter uses its mean
    ``beta (1 - spread / 2)`` (not exact). Args: ``beta`` (default 0.3, the defense's default:
    the keyed magnitude spreads the ratio spike :class:`ReverseSigmoidInversion` estimates from,
    so it is not estimated), ``gamma`` as the defense, ``spread`` in [0, 1] (default 0.5).
    """

    name = "reverse_sigmoid_keyed"
    exact = False

    def __init__(self, *, beta: float = 0.3, gamma: float = 0.2, spread: float = 0.5, branch: str = "outer") -> None:
        self.spread = check_number("spread", spread, low=0, high=1)
        super().__init__(
            beta=check_unclamped_beta(beta, check_number("gamma", gamma, low=0, low_inclusive=False)) * (1 - self.spread / 2),
            gamma=gamma, branch=branch
        )
        self.nominal_beta = beta

    def params(self) -> dict[str, Any]:
        return {"beta": self.nominal_beta, "gamma": self.gamma, "spread": self.spread, "branch": self.branch}
