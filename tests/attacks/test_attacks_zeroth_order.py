"""Zeroth-order gradient estimates against true gradients, and safe logit recovery."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from stealguard.attacks.zeroth_order import (
    estimate_gradient,
    forward_difference_points,
    random_unit_directions,
    recover_logits,
)


def _quadratic(weights: torch.Tensor):
    def loss(x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return (flat * weights).sum(dim=1) + 2.0 * (flat - 0.5).pow(2).sum(dim=1)

    return loss


def _true_gradient(weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (weights + 4.0 * (x.flatten(1) - 0.5)).view_as(x)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


@pytest.mark.parametrize(("directions", "threshold"), [(400, 0.6), (50, 0.2)])
def test_estimate_points_along_the_true_gradient(directions: int, threshold: float) -> None:
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(64, generator=g)
    x = 0.25 + 0.5 * torch.rand(16, 1, 8, 8, generator=g)
    estimate = estimate_gradient(_quadratic(weights), x, directions=directions, epsilon=1e-3, generator=g)
    assert estimate.shape == x.shape
    assert float(_cosine(estimate, _true_gradient(weights, x)).min()) > threshold


def test_more_directions_give_better_estimates() -> None:
    g = torch.Generator().manual_seed(1)
    weights = torch.randn(64, generator=g)
    x = 0.25 + 0.5 * torch.rand(64, 1, 8, 8, generator=g)
    cosines = [
        float(_cosine(estimate_gradient(_quadratic(weights), x, directions=m, epsilon=1e-3, generator=g), _true_gradient(weights, x)).mean())
        for m in (1, 10, 100)
    ]
    assert 0 < cosines[0] < cosines[1] < cosines[2]


def test_one_direction_is_unbiased_in_the_mean() -> None:
    g = torch.Generator().manual_seed(2)
    weights = torch.randn(16, generator=g)
    x = torch.full((4000, 1, 4, 4), 0.5)
    estimate = estimate_gradient(_quadratic(weights), x, directions=1, epsilon=1e-4, generator=g)
    assert float(_cosine(estimate.mean(dim=0, keepdim=True), _true_gradient(weights, x[:1]))) > 0.95


@given(n=st.integers(1, 6), m=st.integers(1, 5), eps=st.sampled_from([1e-3, 0.1, 0.5]))
@settings(max_examples=30, deadline=None)
def test_points_are_counted_and_clipped(n: int, m: int, eps: float) -> None:
    g = torch.Generator().manual_seed(n * 10 + m)
    x = torch.rand(n, 2, 3, 3, generator=g)
    points, moved = forward_difference_points(x, m, eps, g)
    assert points.shape == (n * (m + 1), 2, 3, 3)
    assert torch.equal(points[:n], x)
    assert float(points.min()) >= 0.0 and float(points.max()) <= 1.0
    assert moved.shape == (m, n, 2, 3, 3)
    assert torch.allclose(points[n:].view(m, n, 2, 3, 3), x.unsqueeze(0) + eps * moved, atol=1e-6)


def test_directions_are_unit_vectors() -> None:
    u = random_unit_directions(50, (3, 4, 4), torch.Generator().manual_seed(0))
    assert torch.allclose(u.flatten(1).norm(dim=1), torch.ones(50), atol=1e-5)


@given(seed=st.integers(0, 2**16), zeros=st.integers(0, 9))
@settings(max_examples=40, deadline=None)
def test_recovered_logits_are_finite_centred_and_give_back_the_probabilities(seed: int, zeros: int) -> None:
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(3 * torch.randn(5, 10, generator=g), dim=1)
    probs[:, :zeros] = 0.0
    probs = probs / probs.sum(dim=1, keepdim=True)
    logits = recover_logits(probs)
    assert bool(torch.isfinite(logits).all())
    assert torch.allclose(logits.sum(dim=1), torch.zeros(5), atol=1e-3)
    assert torch.allclose(torch.softmax(logits, dim=1), probs, atol=1e-6)
