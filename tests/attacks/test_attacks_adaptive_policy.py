"""Knockoff's adaptive policy: finite rewards on degenerate answers, Welford moments, learning, sampling."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from stealguard.attacks.adaptive_policy import (
    AdaptivePolicy,
    RunningMoments,
    certainty_reward,
    diversity_reward,
    loss_reward,
)

K = 10


def _policy(arms: torch.Tensor, **kwargs) -> AdaptivePolicy:
    return AdaptivePolicy(arms, generator=torch.Generator().manual_seed(0), **kwargs)


@pytest.mark.parametrize("kind", ["one_hot", "uniform", "zeros_and_huge_logits"])
@pytest.mark.parametrize("reward", ["cert", "div", "loss", "all"])
def test_rewards_stay_finite_on_degenerate_answers(kind: str, reward: str) -> None:
    policy = _policy(torch.arange(200) % 5, reward=reward)
    for step in range(30):
        arms, _ = policy.draw(8)
        if kind == "one_hot":
            answers = torch.nn.functional.one_hot(torch.full((8,), step % K), K).float()
            logits = torch.randn(8, K)
        elif kind == "uniform":
            answers, logits = torch.full((8, K), 1.0 / K), torch.zeros(8, K)
        else:
            answers = torch.nn.functional.one_hot(torch.zeros(8, dtype=torch.int64), K).float()
            logits = torch.full((8, K), -1e30)
            logits[:, 1] = 1e30
        used = policy.update(arms, answers, logits)
        assert bool(torch.isfinite(used).all())
        assert bool(torch.isfinite(policy.preferences).all())
        probs = policy.probabilities()
        assert bool(torch.isfinite(probs).all()) and float(probs.sum()) == pytest.approx(1.0)


@given(seed=st.integers(0, 2**16), b=st.integers(1, 16))
@settings(max_examples=30, deadline=None)
def test_reward_ranges(seed: int, b: int) -> None:
    g = torch.Generator().manual_seed(seed)
    answers = torch.softmax(torch.randn(b, K, generator=g) * 4, dim=1)
    cert = certainty_reward(answers)
    assert bool(((cert >= 0) & (cert <= 1)).all())
    div = diversity_reward(answers, torch.softmax(torch.randn(K, generator=g), 0))
    assert bool(((div >= 0) & (div <= 1 + 1e-6)).all())
    assert bool((diversity_reward(answers, None) == 0).all())
    loss = loss_reward(answers, torch.randn(b, K, generator=g))
    assert bool(torch.isfinite(loss).all()) and bool((loss >= 0).all())


def test_certainty_is_the_top_two_margin() -> None:
    answers = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0]])
    assert torch.allclose(certainty_reward(answers), torch.tensor([0.5, 0.0, 1.0]))


@given(values=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40), split=st.integers(1, 5))
@settings(max_examples=40, deadline=None)
def test_running_moments_match_the_batch_statistics(values: list[float], split: int) -> None:
    data = torch.tensor(values, dtype=torch.float64)
    moments = RunningMoments()
    for part in data.split(split):
        moments.update(part)
    assert moments.count == len(values)
    assert moments.mean == pytest.approx(float(data.mean()), abs=1e-6)
    expected = float(data.std()) if len(values) > 1 else 0.0
    assert moments.std == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_standardise_never_divides_by_zero() -> None:
    moments = RunningMoments()
    assert torch.equal(moments.standardise(torch.ones(3)), torch.zeros(3))
    moments.update(torch.ones(5))
    assert bool(torch.isfinite(moments.standardise(torch.tensor([1.0, 2.0]))).all())


def test_bandit_learns_to_prefer_the_rewarding_arm() -> None:
    policy = _policy(torch.arange(400) % 4, reward="cert", alpha=0.5)
    for _ in range(200):
        arms, _ = policy.draw(8)
        answers = torch.full((8, K), 1.0 / K)
        answers[arms == 2] = torch.nn.functional.one_hot(torch.tensor(0), K).float()
        policy.update(arms, answers, torch.zeros(8, K))
    probs = policy.probabilities()
    assert int(probs.argmax()) == 2 and float(probs[2]) > 0.8
    assert int(policy.pulls.argmax()) == 2


def test_draw_uses_each_arms_images_without_replacement_then_refills() -> None:
    arms = torch.tensor([0, 0, 0, 1, 1, 2])
    policy = _policy(arms)
    drawn_arms, drawn_images = policy.draw(60)
    assert torch.equal(arms[drawn_images], policy.arm_ids[drawn_arms])
    for arm in range(3):
        taken = drawn_images[drawn_arms == arm].tolist()
        members = (arms == arm).sum().item()
        for start in range(0, len(taken) - members + 1, members):
            assert len(set(taken[start : start + members])) == members


def test_draws_are_seeded() -> None:
    a = _policy(torch.arange(50) % 3).draw(20)
    b = _policy(torch.arange(50) % 3).draw(20)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"reward": "entropy"}, ValueError, "reward"),
        ({"alpha": 0.0}, ValueError, "alpha"),
        ({"div_window": 0}, ValueError, "div_window"),
    ],
)
def test_bad_parameters(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        _policy(torch.arange(4), **kwargs)
    with pytest.raises(ValueError, match="arms must be"):
        _policy(torch.rand(4))
