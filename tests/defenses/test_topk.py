"""topk against a per-row reference; ties, k >= K, k = 1."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import stealguard.defenses as D
from stealguard.defenses.topk import top_k_selection

from .conftest import make_queries, posterior_batches


def reference(row: list[float], k: int) -> list[float]:
    keep = sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]
    total = sum(row[i] for i in keep)
    return [row[i] / total if i in keep else 0.0 for i in range(len(row))]


@settings(max_examples=60, deadline=None)
@given(probs=posterior_batches(min_rows=1, max_classes=40, dtypes=(torch.float64,)), k=st.integers(1, 50))
def test_matches_reference(probs, k):
    out = D.create("topk", k=k)(make_queries(len(probs)), probs)
    expected = torch.tensor([reference(row, k) for row in probs.tolist()], dtype=torch.float64)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=0)
    assert ((out > 0).sum(dim=1) <= k).all()


def test_ties_at_the_cut_go_to_lower_index():
    probs = torch.tensor([[0.1, 0.3, 0.3, 0.3]], dtype=torch.float64)
    out = D.create("topk", k=2)(make_queries(1), probs)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.5, 0.5, 0.0]], dtype=torch.float64))


def test_k_at_least_k_classes_returns_input():
    probs = torch.softmax(torch.randn(4, 5, generator=torch.Generator().manual_seed(0)), dim=1)
    for k in (5, 99):
        torch.testing.assert_close(D.create("topk", k=k)(make_queries(4), probs), probs, rtol=0, atol=1e-7)
    exact = probs.double() / probs.double().sum(dim=1, keepdim=True)
    torch.testing.assert_close(D.create("topk", k=5)(make_queries(4), exact), exact, rtol=0, atol=1e-15)


@settings(max_examples=30, deadline=None)
@given(probs=posterior_batches(min_rows=1))
def test_k_one_is_label_only(probs):
    x = make_queries(len(probs))
    assert torch.equal(D.create("topk", k=1)(x, probs), D.create("label_only")(x, probs))


def stable_reference_support(row: list[float], k: int) -> set[int]:
    return set(sorted(range(len(row)), key=lambda i: (-row[i], i))[:k])


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.lists(st.sampled_from([0.0, -0.0, 0.1, 0.2, 0.25, 0.5, 1e-30]), min_size=3, max_size=12), min_size=1, max_size=8)
    .filter(lambda rows: len({len(row) for row in rows}) == 1),
    k=st.integers(1, 11),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_selection_breaks_ties_by_lower_index(values, k, dtype):
    """Many exact ties, signed zeros: the positive entries kept are the first k in (-value, index) order."""
    probs = torch.tensor(values, dtype=dtype)
    k = min(k, probs.shape[1] - 1)
    kept, indices = top_k_selection(probs, k)
    for row, row_kept, row_indices in zip(values, kept.tolist(), indices.tolist(), strict=True):
        expected = stable_reference_support(row, k)
        assert {i for i in row_indices if row[i] > 0} == {i for i in expected if row[i] > 0}
        assert sorted(row_kept, reverse=True) == sorted((torch.tensor(row, dtype=dtype)[sorted(expected)]).tolist(), reverse=True)


def test_tie_at_the_cut_in_one_row_of_a_batch():
    probs = torch.tensor([[0.1, 0.3, 0.3, 0.3], [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    out = D.create("topk", k=2)(make_queries(3), probs)
    expected = torch.tensor([[0.0, 0.5, 0.5, 0.0], [4 / 7, 3 / 7, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    torch.testing.assert_close(out, expected)
