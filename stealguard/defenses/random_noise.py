"""``random_noise``: a random perturbation inside an L1 or L2 budget, in probability or logit space.

Holds the vectorised input hash (:func:`input_keys`) and the counter-based normal sampler
(:func:`hashed_normal`) used by the consistent mode. All integer arithmetic stays below 2**63
in int64 (32-bit lanes, 16-bit split multiplies), so it never relies on signed overflow and
gives the same bits on CPU and CUDA.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from stealguard._checks import check_bool, check_choice, check_int, check_number
from stealguard.defenses.base import Defense
from stealguard.defenses.simplex import (
    MAX_DISTANCE,
    NORMS,
    distance,
    project_to_simplex,
    shrink_to_budget,
)

_MASK32 = 0xFFFFFFFF
_LANE_SALTS = (0x9E3779B9, 0x85EBCA6B)
_UNIFORM_SALTS = (0xC2B2AE35, 0x27D4EB2F)


def _mul32(values: Tensor, factor: int) -> Tensor:
    """``(values * factor) mod 2**32`` for int64 ``values`` in [0, 2**32), without overflow."""
    low = (values & 0xFFFF) * factor
    high = (((values >> 16) * factor) & 0xFFFF) << 16
    return (low + high) & _MASK32


def _mix32(values: Tensor) -> Tensor:
    """A 32-bit avalanche finaliser ("lowbias32", C. Wellons) on int64 values in [0, 2**32)."""
    values = values ^ (values >> 16)
    values = _mul32(values, 0x7FEB352D)
    values = values ^ (values >> 15)
    values = _mul32(values, 0x846CA68B)
    return values ^ (values >> 16)


def input_keys(x: Tensor, seed: int) -> Tensor:
    """Two 32-bit hash keys per row of ``x``, a deterministic function of the row's bytes and ``seed``.

    Each row's bytes (``x`` in its own dtype, C order) are read as little-endian 32-bit words
    ``w_j``; key ``l`` is ``mix(sum_j mix(w_j ^ mix(j ^ s_l)) mod 2**32 ^ mix(s_l ^ W))`` with
    ``s_l`` derived from ``seed`` and lane ``l``. Vectorised over rows and words (no Python loop).
    Rows with equal bytes get equal keys wherever they sit in the batch.

    Shape:
        x: ``(N, ...)`` any dtype; returns int64 ``(N, 2)`` with values in [0, 2**32).
    """
    rows = x.shape[0]
    raw = x.detach().reshape(rows, -1).contiguous().view(torch.uint8).to(torch.int64)
    raw = F.pad(raw, (0, (-raw.shape[1]) % 4)).reshape(rows, -1, 4)
    words = raw[..., 0] | (raw[..., 1] << 8) | (raw[..., 2] << 16) | (raw[..., 3] << 24)
    num_words = words.shape[1]
    positions = torch.arange(num_words, dtype=torch.int64, device=x.device)
    keys = []
    for salt in _LANE_SALTS:
        lane = torch.tensor([(seed & _MASK32) ^ salt], dtype=torch.int64, device=x.device)
        lane = _mix32(_mix32(lane) ^ ((seed >> 32) & _MASK32))
        total = _mix32(words ^ _mix32(positions ^ lane)).sum(dim=1) & _MASK32
        keys.append(_mix32(total ^ _mix32(lane ^ num_words)))
    return torch.stack(keys, dim=1)


def hashed_uniform(keys: Tensor, num_classes: int, *, salt: int = _UNIFORM_SALTS[0]) -> Tensor:
    """Uniform draws in (0, 1) ``(N, num_classes)`` float64, entry ``(i, k)`` a function of ``keys[i]``, ``k`` and ``salt``.

    One 32-bit hash of (key, class index, salt) per entry, mapped to ``(bits + 1/2) / 2**32``.

    Shape:
        keys: int64 ``(N, 2)`` in [0, 2**32); returns ``(N, num_classes)``.
    """
    classes = torch.arange(num_classes, dtype=torch.int64, device=keys.device)
    bits = _mix32(_mix32(keys[:, :1] ^ _mix32(classes ^ salt)) ^ keys[:, 1:])
    return (bits.to(torch.float64) + 0.5) / 2.0**32


def hashed_normal(keys: Tensor, num_classes: int) -> Tensor:
    """Standard normal draws ``(N, num_classes)`` float64, entry ``(i, k)`` a function of ``keys[i]`` and ``k`` only.

    Two 32-bit uniforms per entry (:func:`hashed_uniform` with two salts), then Box-Muller.

    Shape:
        keys: int64 ``(N, 2)`` in [0, 2**32); returns ``(N, num_classes)``.
    """
    first, second = (hashed_uniform(keys, num_classes, salt=salt) for salt in _UNIFORM_SALTS)
    radius = torch.sqrt(-2.0 * torch.log(first))
    return radius * torch.cos(2.0 * math.pi * second)


def project_to_ball(values: Tensor, *, epsilon: float, norm: str) -> Tensor:
    """Euclidean projection of each row onto the ``norm`` ball of radius ``epsilon`` (rows inside are kept).

    ``"l1"``: rows with ``||v||_1 > epsilon`` become ``sign(v) * epsilon * P(|v| / epsilon)``, ``P`` the
    projection onto the unit simplex (Duchi et al., ICML 2008, the reduction of their Fig. 1 the MAD
    reference uses); ``"l2"``: ``epsilon * v / max(||v||_2, epsilon)``.

    Shape:
        values: ``(N, K)``; returns ``(N, K)``.
    """
    length = distance(values, torch.zeros_like(values), norm).unsqueeze(1)
    if norm == "l2":
        return values * (epsilon / length.clamp_min(epsilon))
    outside = (length > epsilon).squeeze(1).nonzero().squeeze(1)
    if outside.numel() == 0:
        return values
    rows = values[outside]
    projected = project_to_simplex(rows.abs() / epsilon).mul_(epsilon).mul_(rows.sign())
    return values.index_copy(0, outside, projected)


def sigmoid_shift(probs: Tensor, shift: Tensor) -> Tensor:
    """``S(S^-1(y) + delta)`` entrywise, as ``y / (y + (1 - y) exp(-delta))``: exact at ``y = 0`` and ``y = 1``.

    Equal to the sigmoid of the shifted logit without forming the logit (no infinities at 0 and 1).
    ``exp(-delta)`` must be finite (``delta > -709`` in float64; :class:`RandomNoise` shifts are >= 0).

    Shape:
        probs, shift: ``(N, K)``; returns ``(N, K)`` in [0, 1].
    """
    return probs / torch.neg(shift).exp_().mul_(1 - probs).add_(probs)


MAX_LOGIT_EPSILON = 50.0
"""Largest logit-space radius of ``space="logit"`` (a shift of 50 already maps every entry > 2e-22 to ~1)."""

PATH_MAX_STEP = 2.0**20
"""Largest ``s`` of the path ``P(y + s z)`` that :func:`along_projected_path` goes to."""

PATH_ITERATIONS = 40
"""Most safeguarded Newton steps of :func:`along_projected_path` (rows usually converge in 1 to 4)."""

COMPACT_FROM = 8192
"""Converged rows leave :func:`along_projected_path`'s loop early only while the live rows hold at
least this many entries and half of them converged: on fewer, each operation's fixed cost
dominates and gathering the live rows costs more than it saves."""

PATH_TOLERANCE = 1e-10
"""Relative distance error at which a row of :func:`along_projected_path` counts as converged."""


def _far_end(noise: Tensor) -> Tensor:
    """``lim_{s -> inf} P(y + s z)``: the uniform point on the face of ``z``'s largest entries ``(n, K)``."""
    face = noise.div(noise.amax(dim=1, keepdim=True)).floor_().clamp_min_(0)
    return face / face.sum(dim=1, keepdim=True)


def _path_slope(point: Tensor, clean: Tensor, noise: Tensor, reach: Tensor, norm: str) -> Tensor:
    """``d/ds ||P(y + s z) - y||`` on the path's current linear piece ``(n, 1)``.

    On the piece the active entries (``point > 0``) move along ``z - mean_active(z)``, the others stay 0.
    """
    active = point.sign()
    velocity = (noise - (noise * active).sum(dim=1, keepdim=True) / active.sum(dim=1, keepdim=True)) * active
    offset = point - clean
    if norm == "l1":
        # sign(offset), or sign(velocity) where offset is 0 (|offset| >> 1e-300 |velocity| elsewhere)
        sign = torch.add(offset, velocity, alpha=1e-300).sign_()
        return (sign * velocity).sum(dim=1, keepdim=True)
    return (offset * velocity).sum(dim=1, keepdim=True) / reach.clamp_min(torch.finfo(reach.dtype).tiny)


def along_projected_path(probs: Tensor, noise: Tensor, *, epsilon: float, norm: str) -> Tensor:
    """A point of the projected path ``s -> P(y + s z)`` at distance ``epsilon`` from ``y``.

    ``P`` is the Euclidean projection onto the simplex and ``||z||_norm = epsilon``. Rows
    where ``y + z`` is on the simplex return ``y + z`` (``s = 1``, exactly the budget). For
    the others ``g(s) = ||P(y + s z) - y||_norm`` is continuous and piecewise smooth (the path
    is piecewise linear in ``s``: an entry that reaches 0 stays there, the others move along
    ``z`` minus its mean over them). The path leaves the straight segment at ``s0 = min_{z_i < 0}
    y_i / -z_i`` (``g(s0) = s0 epsilon``, no projection needed); from there safeguarded Newton
    steps on ``g(s) = epsilon`` use the slope of the current linear piece, keep a bracket
    ``g(low) < epsilon <= g(high)`` and fall back to its (Illinois) secant when a step leaves
    it; on large inputs rows leave the loop as they converge (``COMPACT_FROM``).
    Rows converge (relative error ``PATH_TOLERANCE``) in a few steps, each one projection
    (one sort). The point found is pulled back along the segment to ``y`` onto the budget
    (:func:`~stealguard.defenses.simplex.shrink_to_budget`; rows not converged after
    ``PATH_ITERATIONS`` use their bracket's upper end), so the row moves by exactly ``epsilon``
    and stays on the simplex. The path bends along the simplex's faces, so peaked and one-hot
    rows spend the whole budget instead of losing it to a single projection. Rows whose path
    cannot get ``epsilon`` away (its end as ``s -> inf`` is the face of ``z``'s largest
    entries) but whose path along ``-z`` gets farther use ``-z`` (a one-hot row whose ``z``
    favours its own top class never moves along ``+z``); if neither gets ``epsilon`` away
    (``s <= PATH_MAX_STEP``) the farthest point is returned.

    Shape:
        probs: ``(N, K)`` float64 on the simplex; noise ``(N, K)`` with zero row sums; returns ``(N, K)``.
    """
    result = probs + noise
    boundary = (result.amin(dim=1) < 0).nonzero().squeeze(1)
    if boundary.numel() == 0:
        return result
    clean, noise = probs[boundary], noise[boundary]
    reach_plus = distance(_far_end(noise), clean, norm).unsqueeze(1)
    reach_minus = distance(_far_end(-noise), clean, norm).unsqueeze(1)
    noise = torch.where((reach_plus < epsilon) & (reach_minus > reach_plus), -noise, noise)

    inf = torch.tensor(float("inf"), dtype=probs.dtype, device=probs.device)
    exits = torch.where(noise < 0, clean / -noise, inf)
    low = exits.amin(dim=1, keepdim=True)
    point = (clean + low * noise).masked_fill_(exits <= low, 0).clamp_min_(0)
    state = {
        "clean": clean, "noise": noise, "step": low, "point": point, "reach": low * epsilon, "low": low,
        "reach_low": low * epsilon, "high": torch.full_like(low, float("inf")),
        "reach_high": torch.full_like(low, float("inf")), "upper": point, "below": torch.ones_like(low, dtype=torch.bool),
    }
    found = torch.empty_like(clean)
    live = torch.arange(len(clean), device=clean.device)
    for iteration in range(PATH_ITERATIONS):
        _path_step(state, epsilon, norm)
        reach, step = state["reach"], state["step"]
        converged = ((reach - epsilon).abs() <= PATH_TOLERANCE * epsilon) | ((reach < epsilon) & (step >= PATH_MAX_STEP))
        converged = converged.squeeze(1)
        count = int(converged.sum())
        last = count == len(converged) or iteration == PATH_ITERATIONS - 1
        small = len(converged) * clean.shape[1] < COMPACT_FROM
        if not last and (small or 2 * count < len(converged)):
            continue
        done = torch.arange(len(converged), device=clean.device) if last else converged.nonzero().squeeze(1)
        # a row stopped short of converging falls back on its bracket's upper end (g >= epsilon)
        fallback = (~converged & torch.isfinite(state["high"].squeeze(1)))[done].to(clean.dtype).unsqueeze(1)
        point, upper = state["point"][done], state["upper"][done]
        found[live[done]] = point + fallback * (upper - point)
        if last:
            break
        remaining = (~converged).nonzero().squeeze(1)
        live = live[remaining]
        state = {key: value[remaining] for key, value in state.items()}
    return result.index_copy(0, boundary, shrink_to_budget(clean, found, epsilon=epsilon, norm=norm))


def _path_step(state: dict[str, Tensor], epsilon: float, norm: str) -> None:
    """One safeguarded Newton step of :func:`along_projected_path` on every row of ``state`` (updated in place).

    Newton from the last point on its linear piece; when that leaves the bracket, the secant of
    the bracket with the Illinois modification (the end kept twice in a row has its distance
    error halved, so the other end moves); with no upper end yet (or no usable secant), ``s``
    grows fourfold, staying inside the bracket.
    """
    clean, noise, step, reach = state["clean"], state["noise"], state["step"], state["reach"]
    low, high, reach_low, reach_high = state["low"], state["high"], state["reach_low"], state["reach_high"]
    slope = _path_slope(state["point"], clean, noise, reach, norm)
    newton = step + (epsilon - reach) / slope
    secant = low + (epsilon - reach_low) * (high - low) / (reach_high - reach_low)
    fallback = torch.where(secant > low, secant, torch.minimum((low + high) / 2, 4 * step.clamp_min(1e-3)))
    step = torch.where((slope > 0) & (newton > low) & (newton < high), newton, fallback).clamp_max_(PATH_MAX_STEP)
    point = project_to_simplex(clean + step * noise)
    reach = distance(point, clean, norm).unsqueeze(1)
    below = reach < epsilon
    repeated = below == state["below"]
    state["low"], state["high"] = torch.where(below, step, low), torch.where(below, high, step)
    state["reach_low"] = torch.where(below, reach, torch.where(repeated, (epsilon + reach_low) / 2, reach_low))
    state["reach_high"] = torch.where(below, torch.where(repeated, (epsilon + reach_high) / 2, reach_high), reach)
    state["upper"] = point + below.to(point.dtype) * (state["upper"] - point)
    state["step"], state["point"], state["reach"], state["below"] = step, point, reach, below


SPACES = ("prob", "logit")
"""Where :class:`RandomNoise` adds its noise: the probabilities (default) or the logits ``S^-1(y)``."""


def logit_space_l1_bound(epsilon: float, norm: str) -> float:
    """Largest L1 distance between ``y`` and ``N(S(S^-1(y) + delta))`` over ``||delta||_norm <= epsilon``, bounded.

    With ``a = S(S^-1(y) + delta)`` and ``s = sum a``: ``||a / s - y||_1 <= ||a - y||_1 + |1 - s|
    <= 2 ||a - y||_1`` (``sum y = 1``). ``S`` is 1/4-Lipschitz, so ``||a - y||_1 <= ||delta||_1 / 4``
    (``"l1"``: bound ``epsilon / 2``); and ``|a_i - y_i| <= y_i (exp|delta_i| - 1)``, so
    ``||a - y||_1 <= exp(max_i |delta_i|) - 1 <= exp(epsilon) - 1`` (``"l2"``: bound
    ``2 (exp(epsilon) - 1)``). Capped at 2, the L1 diameter of the simplex.
    """
    bound = epsilon / 2 if norm == "l1" else 2 * math.expm1(epsilon)
    return min(bound, MAX_DISTANCE["l1"])


class RandomNoise(Defense):
    """Random perturbation inside a distortion budget, in probability space (``space="prob"``, the
    default) or in logit space (``space="logit"``, the baseline of the MAD paper).

    ``space="prob"`` (this library's own variant, kept as the default for backwards compatibility)::

        z  = (g - mean(g)) * epsilon / ||g - mean(g)||_norm,   g ~ N(0, I_K)
        y~ = P(y + s z),   s such that ||y~ - y||_norm = epsilon

    ``P`` is the Euclidean projection onto the simplex; ``s`` is found by safeguarded Newton
    steps along the piecewise-linear path (:func:`along_projected_path`). Where ``y + z`` is already on the simplex (entries of
    ``y`` large enough) ``s = 1`` and ``y~ = y + z``: unbiased, exactly the budget. Near the
    boundary (peaked and one-hot rows) the path ``P(y + s z)`` bends along the faces, so those
    rows are perturbed by the full budget too, with a bias toward the simplex interior. Every
    output row is on the simplex and within budget.

    ``space="logit"``: the random-noise baseline of Orekondy et al., "Prediction Poisoning:
    Towards Defenses Against DNN Model Stealing Attacks" (ICLR 2020), as its reference code
    runs it (``defenses/victim/bb_randnoise.py``, ``RandomNoise.compute_noise`` with its default
    ``strat='uniform'``)::

        delta = Proj_{||.||_norm <= epsilon}(u * 2 epsilon / K^(1/p)),   u ~ U[0, 1)^K,  p = 1 or 2
        y~    = N(S(S^-1(y) + delta))

    ``S`` is the sigmoid, ``S^-1`` the logit, ``N`` divides each row by its sum; ``Proj`` is the
    Euclidean projection onto the ball (:func:`project_to_ball`, applied only to rows outside
    it). The scale ``2 epsilon / K^(1/p)`` makes ``||E[u]||_p = epsilon`` before the projection.
    Every entry of ``delta`` is >= 0, so every logit moves up. ``epsilon`` is a radius in logit
    space, not a distance between posteriors: the L1 distance of ``y~`` from ``y`` is at most
    ``epsilon / 2`` (``"l1"``) or ``2 (exp(epsilon) - 1)`` (``"l2"``), and usually much less
    (:func:`logit_space_l1_bound`); compare the two spaces at equal measured distortion. Entries
    0 and 1 stay 0 and 1 before ``N``.

    Two modes:

    * ``consistent=False``: the draws (``g`` or ``u``) come from a ``torch.Generator`` seeded
      with ``seed`` at construction (on the CPU, float32, then moved to the data's device);
      each call advances it. Same seed and same sequence of calls give the same outputs. Batch
      == row by row does not hold draw for draw (a batch of N uses the stream differently from
      N single calls); each row gets an independent draw of the same distribution either way.
      Repeating a query and averaging the answers converges toward ``y`` (``"prob"``) or
      toward a fixed distortion of it (``"logit"``: the noise has a positive mean).
    * ``consistent=True``: the draws for a row are a deterministic function of the row of ``x``
      (its bytes) and ``seed`` (:func:`input_keys`, :func:`hashed_normal`,
      :func:`hashed_uniform`): repeating a query returns the identical answer, so averaging
      repeated queries gains nothing, and batch == row by row holds exactly. Inputs differing
      in any byte get unrelated noise, so this does not stop averaging over near-duplicate queries.

    Args:
        epsilon: budget (default 0.1). ``space="prob"``: in (0, 2] for ``"l1"`` or (0, sqrt 2]
            for ``"l2"``; ``space="logit"``: the logit-space radius, in (0, 50].
        norm: ``"l1"`` (default) or ``"l2"``.
        space: ``"prob"`` (default) or ``"logit"``.
        consistent: whether the noise is a function of the input (default False).
        seed: integer in [0, 2**63 - 1] (default 0).

    Budget: ``budget()`` returns ``(norm, epsilon)`` for ``space="prob"`` and ``("l1",
    logit_space_l1_bound(epsilon, norm))`` for ``space="logit"``. ``y`` is the input row
    clamped at 0 and renormalised (identical for rows on the simplex; the base class accepts
    rows off it by up to 1e-3).

    Argmax: ``space="prob"``: no guarantee (a row whose top-2 gap is below the budget can
    flip). ``space="logit"``: rows whose top probability ``a`` exceeds ``S(epsilon / 2)`` keep
    it: another entry ``b <= 1 - a`` overtakes it only if ``delta_b - delta_a >= S^-1(a) -
    S^-1(b) >= 2 S^-1(a)``, while ``0 <= delta_i <= epsilon`` in either norm; ``N`` keeps the
    order. Ties aside.

    Shape:
        x: ``(N, ...)``; probs: ``(N, K)``; output ``(N, K)``, dtype and device of probs.

    Raises:
        ValueError: a parameter out of range. TypeError: a parameter of the wrong type.

    Example:
        >>> import torch
        >>> from stealguard.defenses import create
        >>> defense = create("random_noise", epsilon=0.1, consistent=True, seed=1)
        >>> x, probs = torch.ones(1, 4), torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
        >>> bool(torch.equal(defense(x, probs), defense(x, probs)))
        True
        >>> round(float((defense(x, probs) - probs).abs().sum()), 6)
        0.1
        >>> logit = create("random_noise", epsilon=0.5, space="logit", seed=1)
        >>> bool((logit(x, probs) - probs).abs().sum() <= logit.budget()[1])
        True
    """

    name = "random_noise"
    compute_dtype = None

    def __init__(
        self,
        *,
        epsilon: float = 0.1,
        norm: str = "l1",
        space: str = "prob",
        consistent: bool = False,
        seed: int = 0,
    ) -> None:
        self.norm = check_choice("norm", norm, NORMS)
        self.space = check_choice("space", space, SPACES)
        high = MAX_DISTANCE[self.norm] if self.space == "prob" else MAX_LOGIT_EPSILON
        self.epsilon = check_number("epsilon", epsilon, low=0, high=high, low_inclusive=False)
        self.consistent = check_bool("consistent", consistent)
        self.seed = check_int("seed", seed, low=0, high=2**63 - 1)
        self._generator = torch.Generator(device="cpu").manual_seed(self.seed)

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        """In the input's dtype for ``space="logit"``; in float64 for the path of ``space="prob"``."""
        if self.space == "logit":
            return self._perturb_logits(x, probs)
        probs = probs.double()
        rows, num_classes = probs.shape
        if self.consistent:
            gaussian = hashed_normal(input_keys(x, self.seed), num_classes).to(probs.device)
        else:
            gaussian = torch.randn(rows, num_classes, generator=self._generator, dtype=torch.float32)
            gaussian = gaussian.to(probs.device, torch.float64)
        direction = gaussian - gaussian.mean(dim=1, keepdim=True)
        length = distance(direction, torch.zeros_like(direction), self.norm).unsqueeze(1)
        noise = torch.where(length > 0, direction * (self.epsilon / length.clamp_min(1e-300)), 0.0)
        return along_projected_path(probs, noise, epsilon=self.epsilon, norm=self.norm)

    def _perturb_logits(self, x: Tensor, probs: Tensor) -> Tensor:
        """``S(S^-1(y) + delta)`` unnormalised (the base class divides by the row sums: ``N``), in ``probs``' dtype."""
        rows, num_classes = probs.shape
        if self.consistent:
            uniform = hashed_uniform(input_keys(x, self.seed), num_classes).to(probs.device, probs.dtype)
        else:
            uniform = torch.rand(rows, num_classes, generator=self._generator, dtype=torch.float32)
            uniform = uniform.to(probs.device, probs.dtype)
        power = 1 if self.norm == "l1" else 2
        shift = uniform.mul_(2 * self.epsilon / num_classes ** (1 / power))
        shift = project_to_ball(shift, epsilon=self.epsilon, norm=self.norm)
        return sigmoid_shift(probs, shift)

    def params(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon, "norm": self.norm, "space": self.space,
            "consistent": self.consistent, "seed": self.seed,
        }

    def budget(self) -> tuple[str, float] | None:
        if self.space == "logit":
            return ("l1", logit_space_l1_bound(self.epsilon, self.norm))
        return (self.norm, self.epsilon)

    def argmax_threshold(self) -> float | None:
        """Rows whose top probability exceeds this keep their argmax (None: no promise; see the class docstring)."""
        if self.space == "prob":
            return None
        return 1 / (1 + math.exp(-self.epsilon / 2))
