"""Inverting reverse sigmoid (Lee et al., IEEE S&P Workshops 2019, arXiv:1806.00054).

The defense answers ``y~ = f(y) / Z`` with the per-entry map
``f(y) = y - beta (S(gamma S^-1(y)) - 1/2)`` (logit clamped to ``[1e-7, 1 - 1e-7]``) and
``Z = sum_j f(y_j)`` (for ``beta < 1`` no entry is clamped at 0: ``f > 0`` on [0, 1]). So
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
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import Tensor

from stealguard._checks import check_number
from stealguard.attacks.inversion.base import Inverter
from stealguard.defenses.reverse_sigmoid import LOGIT_CLAMP

GRID_POINTS = 4096
"""Points of each half (log-spaced below 0.5, mirrored above) of the tabulated ``f``."""
Z_GRID = 48
"""Candidate normalisers scanned per row."""
BISECTION_STEPS = 30
NEWTON_STEPS = 3


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
    """``f`` on [0, 1] tabulated and cut into maximal monotone pieces, for batched smallest-preimage lookup."""

    def __init__(self, *, beta: float, gamma: float) -> None:
        self.beta, self.gamma = beta, gamma
        half = torch.logspace(-16, math.log10(0.5), GRID_POINTS, dtype=torch.float64)
        grid = torch.cat([torch.zeros(1, dtype=torch.float64), half, (1 - half).flip(0)[1:], torch.ones(1, dtype=torch.float64)])
        grid = torch.unique(torch.cat([grid, torch.tensor([LOGIT_CLAMP, 1 - LOGIT_CLAMP], dtype=torch.float64)]))
        values = forward_map(grid, beta=beta, gamma=gamma)
        rising = values[1:] >= values[:-1]
        cuts = (rising[1:] != rising[:-1]).nonzero().squeeze(1) + 1
        bounds = [0, *cuts.tolist(), len(grid) - 1]
        self.pieces = [(grid[a : b + 1], values[a : b + 1]) for a, b in itertools.pairwise(bounds)]
        self.low = float(values.min())
        self.high = float(values.max())

    def smallest_preimage(self, v: Tensor, *, polish: bool = True) -> Tensor:
        """Smallest ``y`` in [0, 1] with ``f(y) = v``, same shape as ``v``; ``v`` is first clamped to the range of ``f``.

        ``polish``: refine the table's linear interpolation by Newton steps (off while searching ``Z``).
        """
        v = v.clamp(self.low, self.high)
        result = torch.full_like(v, math.nan)
        for ys, fs in reversed(self.pieces):
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
                slope = forward_slope(guess, beta=self.beta, gamma=self.gamma)
                step = (forward_map(guess, beta=self.beta, gamma=self.gamma) - v) / slope.where(slope.abs() > 1e-12, torch.ones_like(slope))
                guess = (guess - step).clamp(lo, hi)
            result = torch.where(inside, guess, result)
        return result

    def outermost_preimage(self, v: Tensor, *, polish: bool = True) -> Tensor:
        """The preimage of ``v`` closest to 0 for ``v <= 1/2`` and closest to 1 above.

        ``f(1 - y) = 1 - f(y)`` (the clamp is symmetric), so the largest preimage of ``v`` is
        ``1 -`` the smallest preimage of ``1 - v``.
        """
        low = v <= 0.5
        small = self.smallest_preimage(torch.where(low, v, 1 - v), polish=polish)
        return torch.where(low, small, 1 - small)


def invert_renormalised_map(answers: Tensor, pieces: MonotonePieces) -> Tensor:
    """``y`` with ``f(y) / sum f(y) = answers`` (outermost preimages), ``(N, K) -> (N, K)``; NaN rows where none is found."""
    n, _ = answers.shape
    tiny = torch.finfo(answers.dtype).tiny
    # Every entry's Z y~_j must be a value of f: Z in [max_j low / y~_j, min_j high / y~_j].
    z_low = (pieces.low / answers.amin(dim=1).clamp_min(tiny)).clamp_min(tiny)
    z_high = torch.maximum(pieces.high / answers.amax(dim=1), z_low * (1 + 1e-12))
    steps = torch.linspace(0, 1, Z_GRID, dtype=answers.dtype, device=answers.device)
    zs = torch.exp(torch.log(z_low).unsqueeze(1) + steps * (torch.log(z_high) - torch.log(z_low)).unsqueeze(1))

    def excess(z: Tensor) -> Tensor:
        return pieces.outermost_preimage(z.unsqueeze(-1) * answers.unsqueeze(1), polish=False).sum(dim=-1) - 1

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
    return pieces.outermost_preimage(z.unsqueeze(1) * answers)


class ReverseSigmoidInversion(Inverter):
    """Undo ``reverse_sigmoid`` with known ``beta`` in [0, 1) and ``gamma`` > 0 (module docstring).

    The parameters must be known (defaults: the defense's, 0.3 and 0.2): answers alone do
    not identify them. Rows where no normaliser is found keep their answer.
    """

    name = "reverse_sigmoid"
    exact = False

    def __init__(self, *, beta: float = 0.3, gamma: float = 0.2) -> None:
        self.beta = check_number("beta", beta, low=0, high=1, high_inclusive=False)
        self.gamma = check_number("gamma", gamma, low=0, low_inclusive=False)
        self._pieces: MonotonePieces | None = None

    def params(self) -> dict[str, Any]:
        return {"beta": self.beta, "gamma": self.gamma}

    def pieces(self) -> MonotonePieces:
        if self._pieces is None:
            self._pieces = MonotonePieces(beta=self.beta, gamma=self.gamma)
        return self._pieces

    def _invert(self, answers: Tensor) -> Tensor:
        if self.beta == 0:
            return answers
        recovered = invert_renormalised_map(answers, self.pieces())
        found = torch.isfinite(recovered).all(dim=1, keepdim=True)
        return torch.where(found, recovered, answers)


class ReverseSigmoidKeyedInversion(ReverseSigmoidInversion):
    """The attacker's best inversion of ``reverse_sigmoid_keyed``: reverse sigmoid at the mean magnitude.

    The per-query magnitude ``beta (1 - spread u(x))`` is keyed; the inverter uses its mean
    ``beta (1 - spread / 2)`` (not exact). Args: ``beta``, ``gamma`` as the defense, ``spread``
    in [0, 1] (default 0.5).
    """

    name = "reverse_sigmoid_keyed"
    exact = False

    def __init__(self, *, beta: float = 0.3, gamma: float = 0.2, spread: float = 0.5) -> None:
        self.spread = check_number("spread", spread, low=0, high=1)
        super().__init__(beta=check_number("beta", beta, low=0, high=1, high_inclusive=False) * (1 - self.spread / 2), gamma=gamma)
        self.nominal_beta = beta

    def params(self) -> dict[str, Any]:
        return {"beta": self.nominal_beta, "gamma": self.gamma, "spread": self.spread}
