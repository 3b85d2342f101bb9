"""dcp: the detector gates the reverse-sigmoid noise, the L1 budget is enforced, argmax ranges hold."""

from __future__ import annotations

import warnings

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import stealguard.defenses as D
from stealguard.defenses.dcp import low_confidence_weight

from .conftest import make_queries, posterior_batches


def rows_with_top(tops: list[float], num_classes: int = 10, seed: int = 0) -> torch.Tensor:
    """float64 rows whose largest entry is exactly the given value, the rest random below it."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for top in tops:
        rest = 1 + 0.1 * torch.rand(num_classes - 1, generator=gen, dtype=torch.float64)
        rest = rest / rest.sum() * (1 - top)
        assert rest.max() < top
        rows.append(torch.cat([torch.tensor([top], dtype=torch.float64), rest]))
    return torch.stack(rows)


def test_confident_rows_almost_unchanged_uncertain_rows_deceived():
    probs = rows_with_top([0.9, 0.95, 0.99, 0.3, 0.5, 0.7])
    dcp = D.create("dcp", tau=0.8)
    out = dcp(make_queries(6), probs)
    change = (out - probs).abs().sum(dim=1)
    assert (change[:3] < 1e-9).all()
    reverse = D.create("reverse_sigmoid")(make_queries(6), probs)
    torch.testing.assert_close(out[3:], reverse[3:], rtol=0, atol=1e-12)
    assert (change[3:] > 1e-3).all()


def test_detector_is_one_half_at_tau_and_overflow_free():
    probs = rows_with_top([0.6, 0.95, 0.2], num_classes=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weight = low_confidence_weight(probs, tau=0.6, nu=1e12)
    assert weight.shape == (3, 1) and torch.isfinite(weight).all()
    assert float(weight[0]) == 0.5 and float(weight[1]) == 0.0 and float(weight[2]) == 1.0
    soft = low_confidence_weight(probs, tau=0.6, nu=1.0)
    assert 0 < float(soft[1]) < 0.5 < float(soft[2]) < 1


@settings(max_examples=60, deadline=None)
@given(probs=posterior_batches(min_rows=1), epsilon=st.floats(1e-4, 2.0), tau=st.floats(0.05, 1.0))
def test_l1_budget_is_enforced_and_binding(probs, epsilon, tau):
    dcp = D.create("dcp", tau=tau, beta=1.0, gamma=0.2, epsilon=epsilon)
    free = D.create("dcp", tau=tau, beta=1.0, gamma=0.2)
    x = make_queries(probs.shape[0])
    clean = probs.double()
    change = (dcp(x, probs).double() - clean).abs().sum(dim=1)
    free_change = (free(x, probs).double() - clean).abs().sum(dim=1)
    assert (change <= epsilon + 1e-6).all()
    # where the unconstrained answer exceeds the budget, the budget is spent exactly
    over = free_change > epsilon + 1e-4
    torch.testing.assert_close(change[over], torch.full_like(change[over], epsilon), rtol=0, atol=1e-5)
    # elsewhere the budget changes nothing
    torch.testing.assert_close(change[free_change < epsilon], free_change[free_change < epsilon], rtol=0, atol=1e-6)


def test_budget_declared():
    assert D.create("dcp").budget() is None
    assert D.create("dcp", epsilon=0.25).budget() == ("l1", 0.25)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    gamma=st.floats(0.01, 1.0),
    beta=st.floats(0.0, 0.999),
    tau=st.floats(0.05, 1.0),
    epsilon=st.one_of(st.none(), st.floats(1e-3, 2.0)),
)
def test_argmax_kept_for_rows_above_one_half(data, gamma, beta, tau, epsilon):
    dcp = D.create("dcp", tau=tau, beta=beta, gamma=gamma, nu=data.draw(st.floats(0.1, 1e4)), epsilon=epsilon)
    threshold = dcp.argmax_threshold()
    assert threshold is not None and threshold <= 0.5
    probs = data.draw(posterior_batches(min_rows=1))
    out = dcp(make_queries(probs.shape[0]), probs)
    clean = probs.double()
    top2 = clean.topk(2, dim=1).values
    checked = (top2[:, 0] > threshold) & (top2[:, 0] - top2[:, 1] > 1e-9)
    kept = out.gather(1, clean.argmax(dim=1, keepdim=True)).squeeze(1) == out.max(dim=1).values
    assert kept[checked].all()


def test_argmax_kept_for_every_row_with_steep_sigmoid():
    dcp = D.create("dcp", tau=1.0, beta=0.25, gamma=4.0)
    assert dcp.argmax_threshold() == 0.0
    probs = torch.tensor([[0.1] * 10 + [0.0], [0.09] + [0.091] * 10], dtype=torch.float64)
    probs = probs / probs.sum(dim=1, keepdim=True)
    out = dcp(make_queries(2), probs)
    assert torch.equal(out.argmax(dim=1), probs.argmax(dim=1))


def test_flat_rows_can_flip_with_defaults():
    probs = torch.tensor([[0.1] * 10 + [0.0]], dtype=torch.float64)
    out = D.create("dcp")(make_queries(1), probs)
    assert out[0, 10] > out[0, :10].max()
