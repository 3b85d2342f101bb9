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
