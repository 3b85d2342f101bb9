"""rounding: grid values, per-entry error, exact sums, against a per-row largest-remainder reference."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import stealguard.defenses as D

from .conftest import make_queries, posterior_batches


def reference(row: list[float], decimals: int) -> list[Fraction]:
    """Largest remainder on exact fractions of the float64 inputs (renormalised exactly)."""
    exact = [Fraction(v) for v in row]
    total = sum(exact)
    units = 10**decimals
    scaled = [v / total * units for v in exact]
    floors = [int(v) for v in scaled]
    missing = units - sum(floors)
    order = sorted(range(len(row)), key=lambda i: (-(scaled[i] - floors[i]), i))
    for i in order[:missing]:
        floors[i] += 1
    return [Fraction(f, units) for f in floors]


@settings(max_examples=60, deadline=None)
@given(probs=posterior_batches(min_rows=1, max_classes=200, dtypes=(torch.float64,)), decimals=st.integers(0, 10))
def test_grid_error_and_sum(probs, decimals):
    out = D.create("rounding", decimals=decimals)(make_queries(len(probs)), probs)
    units = 10**decimals
    scaled = out * units
    assert ((scaled - scaled.round()).abs() <= 1e-6 * max(1, units * 1e-6)).all()
    assert ((out - probs).abs() < 10.0**-decimals + 1e-12).all()
    torch.testing.assert_close(out.sum(dim=1), torch.ones(len(probs), dtype=torch.float64), rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    probs=posterior_batches(min_rows=1, max_classes=60, dtypes=(torch.float64,)),
    decimals=st.integers(0, 4),
)
def test_matches_exact_reference(probs, decimals):
    """Away from remainder near-ties (where float64 and exact arithmetic may rank differently)."""
    out = D.create("rounding", decimals=decimals)(make_queries(len(probs)), probs)
    for row, answer in zip(probs.tolist(), out.tolist(), strict=True):
        expected = reference(row, decimals)
        remainders = sorted((Fraction(v) * 10**decimals) % 1 for v in row)
        if any(b - a < Fraction(1, 10**9) for a, b in zip(remainders, remainders[1:], strict=False) if a != b):
            continue
        assert [round(v * 10**decimals) for v in answer] == [int(v * 10**decimals) for v in expected]


def test_rows_sum_to_one_where_entrywise_rounding_does_not():
    thirds = torch.full((1, 3), 1 / 3, dtype=torch.float64)
    out = D.create("rounding", decimals=1)(make_queries(1), thirds)
    torch.testing.assert_close(out, torch.tensor([[0.4, 0.3, 0.3]], dtype=torch.float64))
    spread = torch.full((1, 1000), 1 / 1000, dtype=torch.float64)
    out = D.create("rounding", decimals=1)(make_queries(1), spread)
    assert (out[0, :10] == 0.1).all() and (out[0, 10:] == 0).all()


@pytest.mark.parametrize("decimals", [1, 2, 3])
def test_grid_rows_are_unchanged(decimals):
    probs = torch.tensor([[0.5, 0.3, 0.1, 0.1], [0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.4, 0.1]], dtype=torch.float64)
    probs = probs[:2] if decimals == 1 else probs
    out = D.create("rounding", decimals=decimals)(make_queries(len(probs)), probs)
    torch.testing.assert_close(out, probs, rtol=0, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(probs=posterior_batches(min_rows=1))
def test_zero_decimals_is_label_only(probs):
    x = make_queries(len(probs))
    assert torch.equal(D.create("rounding", decimals=0)(x, probs), D.create("label_only")(x, probs))
