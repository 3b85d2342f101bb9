"""label_only: one-hot of the first maximum."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings

import stealguard.defenses as D

from .conftest import make_queries, posterior_batches


@settings(max_examples=40, deadline=None)
@given(probs=posterior_batches(min_rows=1))
def test_one_hot_of_argmax(probs):
    out = D.create("label_only")(make_queries(len(probs)), probs)
    expected = F.one_hot(probs.argmax(dim=1), probs.shape[1]).to(probs.dtype)
    assert torch.equal(out, expected)


def test_ties_go_to_the_lowest_index():
    probs = torch.tensor([[0.2, 0.4, 0.4], [0.5, 0.5, 0.0]])
    out = D.create("label_only")(make_queries(2), probs)
    assert torch.equal(out, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))


def test_single_row_and_batch_paths_agree():
    """One row takes argmax directly; a batch takes floor(y / max) unless a row has tied maxima."""
    probs = torch.tensor([[0.3, 0.3, 0.4], [0.1, 0.6, 0.3], [0.45, 0.45, 0.1]], dtype=torch.float64)
    defense = D.create("label_only")
    batch = defense(make_queries(3), probs)
    for i in range(3):
        assert torch.equal(defense(make_queries(1), probs[i : i + 1]), batch[i : i + 1])
    assert torch.equal(defense(make_queries(2), probs[:2]), torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64))
