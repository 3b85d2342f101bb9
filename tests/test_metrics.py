"""The metric functions against naive per-row loops over explicit Jacobians (foolbox's distance tests)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stealguard import metrics


def _simplex(n: int, k: int, seed: int) -> torch.Tensor:
    return torch.softmax(torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3, dim=1)


def _jacobians(n: int, k: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, k, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.integers(1, 12), st.integers(2, 9), st.integers(1, 20), st.integers(0, 2**16))
def test_gradient_cosine_and_angle_match_explicit_gradients(n: int, k: int, d: int, seed: int) -> None:
    y, y_tilde, jac = _simplex(n, k, seed), _simplex(n, k, seed + 1), _jacobians(n, k, d, seed + 2)
    gram = jac @ jac.transpose(1, 2)
    cosine = metrics.gradient_cosine(gram, y, y_tilde)
    angle = metrics.angular_deviation(gram, y, y_tilde)
    objective = metrics.mad_objective(gram, y, y_tilde)
    for row in range(n):
        a, b = jac[row].T @ y[row], jac[row].T @ y_tilde[row]
        if a.norm() < 1e-150 or b.norm() < 1e-150:
            continue
        expected = float(torch.dot(a, b) / (a.norm() * b.norm()))
        assert float(cosine[row]) == pytest.approx(expected, abs=1e-9)
        assert math.cos(float(angle[row])) == pytest.approx(expected, abs=1e-9)
        unit = a / a.norm() - b / b.norm()
        assert float(objective[row]) == pytest.approx(float(unit @ unit), abs=1e-9)
    assert bool(((cosine >= -1) & (cosine <= 1)).all()) and bool(((angle >= 0) & (angle <= math.pi)).all())


def test_a_zero_direction_has_cosine_one() -> None:
    gram = torch.zeros(2, 3, 3, dtype=torch.float64)
    y = _simplex(2, 3, 0)
    assert torch.equal(metrics.gradient_cosine(gram, y, y), torch.ones(2, dtype=torch.float64))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(2, 12), st.integers(0, 2**16))
def test_distances_match_a_loop_and_stay_in_range(n: int, k: int, seed: int) -> None:
    p, q = _simplex(n, k, seed), _simplex(n, k, seed + 1)
    l1, l2 = metrics.l1_distance(p, q), metrics.l2_distance(p, q)
    for row in range(n):
        assert float(l1[row]) == pytest.approx(sum(abs(float(a) - float(b)) for a, b in zip(p[row], q[row])), abs=1e-12)
        assert float(l2[row]) == pytest.approx(math.sqrt(sum((float(a) - float(b)) ** 2 for a, b in zip(p[row], q[row]))), abs=1e-12)
    assert bool((l1 <= 2 + 1e-12).all()) and bool((l2 <= math.sqrt(2) + 1e-12).all())
    assert bool((metrics.l1_distance(p, p) == 0).all())


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(2, 10), st.integers(0, 2**16))
def test_accuracy_and_fidelity_match_a_loop(n: int, k: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    scores, other = torch.randn(n, k, generator=generator), torch.randn(n, k, generator=generator)
    labels = torch.randint(0, k, (n,), generator=generator)
    assert metrics.accuracy(scores, labels) == pytest.approx(sum(int(scores[i].argmax()) == int(labels[i]) for i in range(n)) / n)
    assert metrics.fidelity(scores, other) == pytest.approx(sum(int(scores[i].argmax()) == int(other[i].argmax()) for i in range(n)) / n)
    assert metrics.fidelity(scores, scores) == 1.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: metrics.accuracy(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long)), "differ in length"),
        (lambda: metrics.accuracy(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)), "empty set"),
        (lambda: metrics.fidelity(torch.zeros(3, 2), torch.zeros(3, 3)), "shapes differ"),
        (lambda: metrics.fidelity(torch.zeros(0, 2), torch.zeros(0, 2)), "empty set"),
    ],
)
def test_undefined_metrics_raise(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
