"""The adaptive sampling policy of Knockoff Nets: a gradient bandit over groups of images.

Orekondy, Schiele, Fritz, CVPR 2019 (arXiv:1812.02766), Sec. 4.1.2. The query set is split
into arms (its coarse labels, or k-means clusters when it has none). At each step the policy
draws arms from ``pi = softmax(H)``, sends an unused image of each drawn arm, scores the
answers with the rewards below, and moves the preferences by the gradient-bandit rule
(Sutton & Barto, Sec. 2.8), averaged over the step's batch:

    H(a) <- H(a) + alpha * mean_i (r_i - r_bar) * (1[a = a_i] - pi(a))

Rewards of one answer ``y`` (K,) for an image ``x``:

* ``cert``: margin ``y_(1) - y_(2)`` between the two largest probabilities (in [0, 1]);
* ``div``: ``sum_k max(0, y_k - m_k)``, with ``m`` the mean of the last ``div_window``
  answers (how much the answer departs from what was recently seen; in [0, 1]);
* ``loss``: the replica's soft cross-entropy ``-sum_k y_k log softmax(F_A(x))_k``;
* ``all``: the sum of the three after each is standardised by its running mean and
  standard deviation (so that none dominates by scale).

Numerical guards (ART's implementation divides by a zero variance and takes log(0)): the
loss uses ``log_softmax``; standardisation divides by ``max(std, 1e-6)`` and yields 0 while
fewer than two rewards are seen; preferences are re-centred and clamped to ``[-50, 50]``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from stealguard._checks import check_choice, check_int, check_number

REWARDS = ("cert", "div", "loss", "all")
PREFERENCE_BOUND = 50.0
STD_FLOOR = 1e-6


def certainty_reward(answers: Tensor) -> Tensor:
    """``cert``: top-1 minus top-2 probability of each answer. ``(B, K)`` -> ``(B,)`` in [0, 1]."""
    if answers.shape[1] < 2:
        return torch.ones(answers.shape[0], dtype=answers.dtype)
    top = answers.topk(2, dim=1).values
    return (top[:, 0] - top[:, 1]).clamp(0.0, 1.0)


def diversity_reward(answers: Tensor, recent_mean: Tensor | None) -> Tensor:
    """``div``: ``sum_k max(0, y_k - m_k)`` against the recent mean answer ``m`` (K,); 0 without history."""
    if recent_mean is None:
        return torch.zeros(answers.shape[0], dtype=answers.dtype)
    return (answers - recent_mean).clamp_min(0.0).sum(dim=1)


def loss_reward(answers: Tensor, replica_logits: Tensor) -> Tensor:
    """``loss``: soft cross-entropy of the replica's logits ``(B, K)`` against the answers; finite for any simplex rows."""
    log_probs = torch.log_softmax(replica_logits.float(), dim=1)
    return -(answers.float() * log_probs).sum(dim=1)


class RunningMoments:
    """Running mean and variance (Welford) of a stream of scalars, updated a batch at a time."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, values: Tensor) -> None:
        """Add the values of a 1-D tensor (Chan et al.'s parallel update)."""
        n = int(values.numel())
        if n == 0:
            return
        batch_mean = float(values.double().mean())
        batch_m2 = float(((values.double() - batch_mean) ** 2).sum())
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        """Sample standard deviation (0 with fewer than two values)."""
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0

    def standardise(self, values: Tensor) -> Tensor:
        """``(values - mean) / max(std, 1e-6)``; zeros while fewer than two values were seen."""
        if self.count < 2:
            return torch.zeros_like(values)
        return (values - self.mean) / max(self.std, STD_FLOOR)


class AdaptivePolicy:
    """Gradient bandit over arms of images; draws image indices, learns from rewards.

    Args:
        arms: int64 ``(N,)``, the arm of every query-set image (labels or cluster ids).
        reward: ``"cert"``, ``"div"``, ``"loss"`` or ``"all"`` (default ``"all"``).
        alpha: step size of the preference update, > 0 (default 0.1).
        div_window: answers averaged for the ``div`` reward's reference, >= 1 (default 25).
        generator: source of randomness for arm draws and the order images are used in.

    Images of an arm are used in a random order without replacement; an exhausted arm is
    refilled with a fresh order of its images, so every arm can always be drawn.
    """

    def __init__(
        self, arms: Tensor, *, reward: str = "all", alpha: float = 0.1, div_window: int = 25, generator: torch.Generator
    ) -> None:
        if not isinstance(arms, Tensor) or arms.dim() != 1 or arms.numel() == 0 or arms.is_floating_point():
            raise ValueError("arms must be a non-empty 1-D integer tensor (one arm id per image)")
        self.reward = check_choice("reward", reward, REWARDS)
        self.alpha = check_number("alpha", alpha, low=0, low_inclusive=False)
        self.div_window = check_int("div_window", div_window, low=1)
        self.generator = generator
        ids, inverse = torch.unique(arms, return_inverse=True)
        self.arm_ids = ids
        self.members = [torch.nonzero(inverse == a).flatten() for a in range(ids.numel())]
        self.preferences = torch.zeros(ids.numel(), dtype=torch.float64)
        self._orders = [self._shuffle(a) for a in range(ids.numel())]
        self._cursor = [0] * ids.numel()
        self._recent: Tensor | None = None
        self.moments = {name: RunningMoments() for name in ("cert", "div", "loss")}
        self.reward_baseline = RunningMoments()
        self.pulls = torch.zeros(ids.numel(), dtype=torch.int64)

    @property
    def num_arms(self) -> int:
        return int(self.arm_ids.numel())

    def probabilities(self) -> Tensor:
        """``pi = softmax(H)`` over the arms, float64 ``(A,)``."""
        return torch.softmax(self.preferences, dim=0)

    def draw(self, count: int) -> tuple[Tensor, Tensor]:
        """Draw ``count`` arms from ``pi`` and an unused image of each: ``(arm indices, image indices)``, both ``(count,)``."""
        chosen = torch.multinomial(self.probabilities(), count, replacement=True, generator=self.generator)
        images = torch.empty(count, dtype=torch.int64)
        for arm in torch.unique(chosen).tolist():
            slots = torch.nonzero(chosen == arm).flatten()
            images[slots] = self._take(arm, int(slots.numel()))
        self.pulls += torch.bincount(chosen, minlength=self.num_arms)
        return chosen, images

    def rewards(self, answers: Tensor, replica_logits: Tensor) -> dict[str, Tensor]:
        """The raw ``cert``, ``div`` and ``loss`` rewards ``(B,)`` of a batch of answers ``(B, K)``."""
        answers = answers.float()
        recent = None if self._recent is None else self._recent.mean(dim=0)
        return {
            "cert": certainty_reward(answers),
            "div": diversity_reward(answers, recent),
            "loss": loss_reward(answers, replica_logits),
        }

    def update(self, arms: Tensor, answers: Tensor, replica_logits: Tensor) -> Tensor:
        """Score a batch and apply the gradient-bandit update; returns the rewards used ``(B,)``.

        Shape:
            arms: ``(B,)`` from :meth:`draw`; answers: ``(B, K)``; replica_logits: ``(B, K)``.
        """
        raw = self.rewards(answers, replica_logits)
        for name, values in raw.items():
            self.moments[name].update(values)
        if self.reward == "all":
            reward = sum(self.moments[name].standardise(values.double()) for name, values in raw.items())
        else:
            reward = raw[self.reward].double()
        reward = torch.nan_to_num(reward, nan=0.0, posinf=0.0, neginf=0.0)
        advantage = reward - self.reward_baseline.mean if self.reward_baseline.count else torch.zeros_like(reward)
        self.reward_baseline.update(reward)
        pi = self.probabilities()
        onehot = torch.nn.functional.one_hot(arms, self.num_arms).double()
        step = (advantage.unsqueeze(1) * (onehot - pi.unsqueeze(0))).mean(dim=0)
        updated = self.preferences + self.alpha * step
        self.preferences = (updated - updated.mean()).clamp(-PREFERENCE_BOUND, PREFERENCE_BOUND)
        self._remember(answers.float())
        return reward

    def _remember(self, answers: Tensor) -> None:
        history = answers if self._recent is None else torch.cat([self._recent, answers])
        self._recent = history[-self.div_window :]

    def _shuffle(self, arm: int) -> Tensor:
        members = self.members[arm]
        return members[torch.randperm(members.numel(), generator=self.generator)]

    def _take(self, arm: int, count: int) -> Tensor:
        taken = []
        while count > 0:
            if self._cursor[arm] >= self._orders[arm].numel():
                self._orders[arm] = self._shuffle(arm)
                self._cursor[arm] = 0
            start = self._cursor[arm]
            piece = self._orders[arm][start : start + count]
            self._cursor[arm] += piece.numel()
            count -= piece.numel()
            taken.append(piece)
        return torch.cat(taken)
