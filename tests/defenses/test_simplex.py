"""Simplex helpers against slow references."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stealguard.defenses.simplex import distance, project_to_simplex, shrink_to_budget

from .conftest import posterior_batches


def reference_projection(row: torch.Tensor) -> torch.Tensor:
    """Bisection on theta with sum(max(v - theta, 0)) = 1."""
    low, high = float(row.min()) - 1, float(row.max())
    for _ in range(200):
        theta = (low + high) / 2
        if float((row - theta).clamp_min(0).sum()) > 1:
            low = theta
        else:
            high = theta
    return (row - (low + high) / 2).clamp_min(0)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 6), classes=st.integers(2, 50), scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**31))
def test_projection_matches_bisection_reference(rows, classes, scale, seed):
    values = scale * torch.randn(rows, classes, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    fast = project_to_simplex(values)
    slow = torch.stack([reference_projection(row) for row in values])
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-9 * max(1.0, scale))
    assert (fast >= 0).all()
    torch.testing.assert_close(fast.sum(dim=1), torch.ones(rows, dtype=torch.float64))


@settings(max_examples=30, deadline=None)
@given(probs=posterior_batches(min_rows=1, dtypes=(torch.float64,)))
def test_projection_fixes_simplex_points(probs):
    torch.testing.assert_close(project_to_simplex(probs), probs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_shrink_to_budget(norm):
    probs = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    target = torch.tensor([[0.0, 0.0, 1.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    out = shrink_to_budget(probs, target, epsilon=0.4, norm=norm)
    torch.testing.assert_close(distance(out, probs, norm)[0], torch.tensor(0.4, dtype=torch.float64))
    torch.testing.assert_close(out[1], probs[1])
    torch.testing.assert_close(out.sum(dim=1), torch.ones(2, dtype=torch.float64))
    untouched = shrink_to_budget(probs, target, epsilon=2.0, norm=norm)
    torch.testing.assert_close(untouched, target)


def test_distance_rejects_unknown_norm():
    with pytest.raises(ValueError, match="norm"):
        distance(torch.zeros(1, 2), torch.zeros(1, 2), "linf")


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 40), scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**31), peaked=st.booleans())
def test_sort_free_projection_matches_the_sort(rows, scale, seed, peaked):
    """Large inputs take the sort-free (Michelot) steps; they agree with the sort-based projection."""
    from stealguard.defenses.simplex import SORT_BELOW, _project_by_sort

    classes = SORT_BELOW // rows + 1
    gen = torch.Generator().manual_seed(seed)
    values = scale * torch.randn(rows, classes, generator=gen, dtype=torch.float64)
    if peaked:  # a simplex row plus a small step: the random_noise path's inputs
        values = torch.softmax(values, dim=1) + 1e-3 * torch.randn(rows, classes, generator=gen, dtype=torch.float64)
    fast = project_to_simplex(values)
    torch.testing.assert_close(fast, _project_by_sort(values), rtol=0, atol=1e-12 * max(1.0, scale))
    torch.testing.assert_close(fast.sum(dim=1), torch.ones(rows, dtype=torch.float64))
