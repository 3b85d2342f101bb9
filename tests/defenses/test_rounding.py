"""rounding: grid values, per-entry error, exact sums, against a per-row largest-remainder reference."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import stealguard.defenses as D
from stealguard.defenses import rounding
from stealguard.defenses.rounding import round_on_simplex

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
        if any(b - a < Fraction(1, 10**9) for a, b in itertools.pairwise(remainders) if a != b):
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


def float_transcription(probs: torch.Tensor, decimals: int) -> torch.Tensor:
    """Largest remainder in float64, row by row in Python: floors, then units to remainders by (-r, index)."""
    units = 10**decimals
    rows = []
    for row in probs.tolist():
        scaled = [v * units for v in row]
        floors = [math.floor(v) for v in scaled]
        remainders = [v - f for v, f in zip(scaled, floors, strict=True)]
        missing = min(max(units - sum(floors), 0), len(row))
        for i in sorted(range(len(row)), key=lambda i: (-remainders[i], i))[:missing]:
            floors[i] += 1
        rows.append([f / units for f in floors])
    return torch.tensor(rows, dtype=torch.float64)


@settings(max_examples=80, deadline=None)
@given(
    probs=posterior_batches(min_rows=1, max_rows=24, max_classes=300, dtypes=(torch.float64,)),
    decimals=st.integers(0, 10),
)
def test_topk_selection_equals_a_float_transcription(probs, decimals):
    """The partial selection (topk on integer keys, tied rows apart) gives exactly the per-row sort's units."""
    probs = probs / probs.sum(dim=1, keepdim=True)
    assert torch.equal(round_on_simplex(probs, decimals), float_transcription(probs, decimals))


@pytest.mark.parametrize("decimals", [1, 2, 3])
def test_ties_at_the_cut_in_some_rows_only(decimals):
    """Rows tied at the cut (uniform, repeated values) next to untied ones, and a row where every entry gains a unit."""
    generator = torch.Generator().manual_seed(decimals)
    untied = torch.softmax(3 * torch.randn(5, 12, generator=generator, dtype=torch.float64), dim=1)
    uniform = torch.full((2, 12), 1 / 12, dtype=torch.float64)
    repeated = torch.softmax(torch.randint(0, 3, (3, 12), generator=generator).to(torch.float64), dim=1)
    probs = torch.cat((untied[:2], uniform[:1], untied[2:], repeated, uniform[1:]))
    assert torch.equal(round_on_simplex(probs, decimals), float_transcription(probs, decimals))
    every = torch.full((1, 7), 1 / 7, dtype=torch.float64)
    assert torch.equal(round_on_simplex(every, 1), float_transcription(every, 1))


def half_remainder_rows(generator: torch.Generator, rows: int, num_classes: int, decimals: int) -> torch.Tensor:
    """Rows on the half-grid ``q / 2`` (many remainders exactly 0.5, many equal entries), summing to 1 in float64."""
    halves = 2 * 10**decimals
    counts = torch.randint(0, 3, (rows, num_classes), generator=generator).to(torch.float64)
    counts[:, 0] += halves - counts.sum(dim=1).clamp_max(halves)
    return counts / counts.sum(dim=1, keepdim=True)


@pytest.mark.parametrize("decimals", [1, 2, 3, 5])
def test_nearest_path_on_large_rows_equals_a_float_transcription(decimals):
    """Above ``SORT_BELOW`` entries (nearest rounding, then |d| corrections), rows short and over, tied and untied."""
    generator = torch.Generator().manual_seed(10 + decimals)
    num_classes = 2000
    peaked = torch.softmax(3 * torch.randn(4, num_classes, generator=generator, dtype=torch.float64), dim=1)
    flat = torch.softmax(0.01 * torch.randn(3, num_classes, generator=generator, dtype=torch.float64), dim=1)
    halves = half_remainder_rows(generator, 4, num_classes, decimals)
    uniform = torch.full((2, num_classes), 1 / num_classes, dtype=torch.float64)
    quarters = torch.full((1, num_classes), 0.0, dtype=torch.float64)
    quarters[0, :4] = 0.25
    probs = torch.cat((peaked[:2], halves[:2], uniform[:1], flat, peaked[2:], halves[2:], uniform[1:], quarters))
    assert probs.numel() >= rounding.SORT_BELOW
    expected = float_transcription(probs, decimals)
    assert torch.equal(round_on_simplex(probs, decimals), expected)
    units = torch.tensor(10.0**decimals, dtype=torch.float64)
    scaled = probs * units
    assert torch.equal(rounding._apportion(scaled.clone(), units), rounding._apportion_by_sort(scaled.clone(), units))


def test_remainders_of_one_half_over_and_short():
    """d < 0 with ties at 0.5 (the higher index loses), d > 0 with ties (the lower index gains), on both paths."""
    over = torch.tensor([[0.25, 0.25, 0.25, 0.25]], dtype=torch.float64)
    short = torch.tensor([[0.15, 0.15, 0.35, 0.35]], dtype=torch.float64)
    units = torch.tensor(10.0, dtype=torch.float64)
    for probs in (over, short, torch.full((1, 3), 1 / 3, dtype=torch.float64)):
        expected = float_transcription(probs, 1) * 10
        assert torch.equal(rounding._apportion(probs * units, units), expected)
        assert torch.equal(rounding._apportion_by_sort(probs * units, units), expected)
    assert torch.equal(round_on_simplex(over, 1), torch.tensor([[0.3, 0.3, 0.2, 0.2]], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_defense_renormalises_like_the_boundary(dtype):
    """The defense divides by the row sums itself (scale_invariant): equal to round_on_simplex of the renormalised rows."""
    generator = torch.Generator().manual_seed(3)
    probs = torch.softmax(3 * torch.randn(40, 300, generator=generator), dim=1).to(dtype)
    wide = probs.to(torch.float64)
    out = D.create("rounding", decimals=3)(make_queries(len(probs)), probs)
    assert torch.equal(out, round_on_simplex(wide / wide.sum(dim=1, keepdim=True), 3).to(dtype))
