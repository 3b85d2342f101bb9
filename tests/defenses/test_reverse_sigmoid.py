"""reverse_sigmoid: formula against a scalar reference, and the argmax ranges derived in its docstring."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import stealguard.defenses as D
from stealguard.defenses.reverse_sigmoid import (
    LOGIT_CLAMP,
    _max_slope_ratio,
    argmax_threshold,
    positive_map_beta_bound,
    reverse_sigmoid_noise,
    subtract_and_renormalise,
)

from .conftest import make_queries, posterior_batches


def reference(row: list[float], beta: float, gamma: float) -> list[float]:
    """Entry by entry with math: y - beta (S(gamma logit(clamp y)) - 1/2), clamp at 0, renormalise."""
    values = []
    for y in row:
        c = min(max(y, LOGIT_CLAMP), 1 - LOGIT_CLAMP)
        values.append(max(0.0, y - beta * (1 / (1 + math.exp(-gamma * math.log(c / (1 - c)))) - 0.5)))
    total = sum(values)
    return [v / total for v in values]


def global_bound(gamma: float) -> float:
    """Largest beta with f(y) = y - r(y) non-decreasing on [0, 1]."""
    return 1.0 / (gamma * _max_slope_ratio(gamma))


@settings(max_examples=50, deadline=None)
@given(
    probs=posterior_batches(min_rows=1, max_rows=4, max_classes=30, dtypes=(torch.float64,)),
    beta=st.floats(0, 3),
    gamma=st.floats(0.01, 5),
)
def test_matches_scalar_reference(probs, beta, gamma):
    out = D.create("reverse_sigmoid", beta=beta, gamma=gamma)(make_queries(probs.shape[0]), probs)
    expected = torch.tensor([reference(row, beta, gamma) for row in probs.tolist()], dtype=torch.float64)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-12)


REGIMES = {
    # every row: gamma >= 1 and beta * gamma <= 1
    "monotone_steep": st.tuples(st.floats(0, 0.999), st.floats(1, 20)).map(lambda t: (t[0] / t[1], t[1])),
    # every row: gamma < 1 and beta below the bound set by the logit clamp
    "monotone_flat": st.tuples(st.floats(0, 0.999), st.floats(0.01, 0.999)).map(
        lambda t: (t[0] * global_bound(t[1]), t[1])
    ),
    # rows with top > 1/2: gamma <= 1, beta < 1
    "top_half": st.tuples(st.floats(0, 0.999), st.floats(0.01, 1)),
}


@pytest.mark.parametrize("regime", sorted(REGIMES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_argmax_kept_in_documented_range(regime, data):
    beta, gamma = data.draw(REGIMES[regime])
    threshold = argmax_threshold(beta, gamma)
    assert threshold == (0.5 if regime == "top_half" and beta * gamma * _max_slope_ratio(gamma) > 1 else 0.0)
    probs = data.draw(posterior_batches(min_rows=1))
    out = D.create("reverse_sigmoid", beta=beta, gamma=gamma)(make_queries(probs.shape[0]), probs)
    clean = probs.double()
    top2 = clean.topk(2, dim=1).values
    checked = (top2[:, 0] > threshold) & (top2[:, 0] - top2[:, 1] > 1e-9)
    kept = out.gather(1, clean.argmax(dim=1, keepdim=True)).squeeze(1) == out.max(dim=1).values
    assert kept[checked].all()


def test_defaults_can_flip_a_flat_row():
    """Outside the every-row range the guarantee is real: a zero entry overtakes flat maxima."""
    defense = D.create("reverse_sigmoid")
    assert defense.argmax_threshold() == 0.5
    probs = torch.tensor([[0.1] * 10 + [0.0]], dtype=torch.float64)
    out = defense(make_queries(1), probs)
    assert out[0, 10] > out[0, :10].max()


@pytest.mark.parametrize("gamma", [0.1, 0.5, 0.9, 1.0, 2.0, 5.0])
def test_every_row_bound_is_sharp(gamma):
    """f(y) = y - r(y) is non-decreasing just below the bound and decreases somewhere just above it."""
    grid = torch.cat(
        [torch.zeros(1, dtype=torch.float64), torch.logspace(-9, 0, 400_001, dtype=torch.float64)]
    ).unique()
    for factor, monotone in ((0.99, True), (1.02, False)):
        beta = factor * global_bound(gamma)
        f = grid - reverse_sigmoid_noise(grid.unsqueeze(0), beta=beta, gamma=gamma).squeeze(0)
        assert bool((f.diff() >= 0).all()) == monotone
        assert (argmax_threshold(beta, gamma) == 0.0) == monotone


def test_no_guarantee_for_steep_large_beta():
    assert argmax_threshold(0.6, 2.0) is None
    assert argmax_threshold(1.5, 0.5) is None
    assert argmax_threshold(0.0, 7.0) == 0.0


def test_zero_beta_is_identity():
    probs = torch.softmax(torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64), dim=1)
    torch.testing.assert_close(D.create("reverse_sigmoid", beta=0.0)(make_queries(5), probs), probs)


def test_gamma_one_mixes_with_uniform():
    probs = torch.softmax(torch.randn(5, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64), dim=1)
    beta = 0.4
    out = D.create("reverse_sigmoid", beta=beta, gamma=1.0)(make_queries(5), probs)
    mixed = (1 - beta) * probs + beta / 2
    torch.testing.assert_close(out, mixed / mixed.sum(dim=1, keepdim=True))


def test_small_entries_grow_large_ones_shrink():
    probs = torch.tensor([[0.7, 0.2, 0.1, 0.0]], dtype=torch.float64)
    out = D.create("reverse_sigmoid")(make_queries(1), probs)
    noise = reverse_sigmoid_noise(probs, beta=0.3, gamma=0.2)
    assert noise[0, 0] > 0 and (noise[0, 1:] < 0).all()
    assert out[0, 0] < probs[0, 0] and out[0, 3] > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_rows_stay_finite(dtype):
    probs = torch.zeros(3, 1000, dtype=dtype)
    probs[0, 5] = 1
    probs[1] = 1 / 1000
    probs[2, 0] = 1 - 1e-30 if dtype == torch.float64 else 1
    probs[2, 1] = 1e-30
    out = D.create("reverse_sigmoid", beta=5.0, gamma=0.01)(make_queries(3), probs)
    assert torch.isfinite(out).all() and (out >= 0).all()


def test_subtract_and_renormalise_falls_back_to_input_when_nothing_is_left():
    probs = torch.tensor([[0.6, 0.4], [0.5, 0.5]], dtype=torch.float64)
    noise = torch.tensor([[1.0, 1.0], [0.1, 0.0]], dtype=torch.float64)
    out = subtract_and_renormalise(probs, noise)
    torch.testing.assert_close(out[0], probs[0])
    torch.testing.assert_close(out[1], torch.tensor([0.4 / 0.9, 0.5 / 0.9], dtype=torch.float64))


@pytest.mark.parametrize("gamma", [0.05, 0.2, 1.0, 5.0, 50.0])
def test_positive_map_beta_bound_is_where_entries_start_to_clamp(gamma):
    """Below the bound f stays positive on a dense grid of [0, 1]; 1% above it some entry goes negative."""
    y = torch.cat([torch.linspace(0, 1, 200_001, dtype=torch.float64), 1 - torch.logspace(-7, -1, 2001, dtype=torch.float64)])
    bound = positive_map_beta_bound(gamma)

    def smallest(beta: float) -> float:
        return float((y - beta * (torch.sigmoid(gamma * torch.logit(y, eps=LOGIT_CLAMP)) - 0.5)).min())

    assert smallest(bound) > 0 > smallest(1.01 * bound)
    if gamma == 0.2:
        assert 2.16 < bound < 2.166  # (1 - delta) / (S(gamma logit(1 - delta)) - 1/2), lowered by 0.1%
