"""The keyed hardened variants: ``mad_keyed`` and ``reverse_sigmoid_keyed``."""

from __future__ import annotations

import pytest
import torch

import stealguard.defenses as D

from .conftest import make_queries, make_surrogate


def posteriors(rows: int, classes: int = 6) -> torch.Tensor:
    gen = torch.Generator().manual_seed(4)
    return torch.softmax(5 * torch.randn(rows, classes, generator=gen, dtype=torch.float64), dim=1)


def test_mad_keyed_with_mix_zero_is_mad() -> None:
    x, y = make_queries(12), posteriors(12)
    surrogate = make_surrogate(6, x.shape[1])
    plain = D.create("mad", epsilon=0.4, surrogate=surrogate)(x, y)
    keyed = D.create("mad_keyed", epsilon=0.4, mix=0.0, seed=9, surrogate=surrogate)(x, y)
    torch.testing.assert_close(keyed, plain, rtol=0, atol=1e-12)


def test_mad_keyed_spends_its_budget_and_hides_its_key() -> None:
    x, y = make_queries(12), posteriors(12)
    defense = D.create("mad_keyed", epsilon=0.4, mix=0.5, seed=9, surrogate=make_surrogate(6, x.shape[1]))
    moved = (defense(x, y) - y).abs().sum(dim=1)
    assert (moved <= 0.4 + 1e-9).all() and (moved > 0.3).all()
    assert "seed" not in defense.params() and defense.params()["mix"] == 0.5


def test_reverse_sigmoid_keyed_magnitude_lies_between_the_bounds() -> None:
    x, y = make_queries(40), posteriors(40)
    keyed = D.create("reverse_sigmoid_keyed", beta=0.4, gamma=1.0, spread=0.5, seed=3)(x, y)
    full = D.create("reverse_sigmoid", beta=0.4, gamma=1.0)(x, y)
    half = D.create("reverse_sigmoid", beta=0.2, gamma=1.0)(x, y)
    moved = (keyed - y).abs().sum(dim=1)
    assert ((moved <= (full - y).abs().sum(dim=1) + 1e-9) & (moved >= (half - y).abs().sum(dim=1) - 1e-9)).all()
    assert D.create("reverse_sigmoid_keyed", beta=0.4, gamma=1.0).argmax_threshold() == D.create(
        "reverse_sigmoid", beta=0.4, gamma=1.0
    ).argmax_threshold()


@pytest.mark.parametrize("name, params, match", [
    ("mad_keyed", {"mix": 1.5}, "mix must be in"),
    ("mad_keyed", {"oracle": "random"}, "oracle"),
    ("reverse_sigmoid_keyed", {"spread": -0.1}, "spread must be in"),
])
def test_bad_parameters_are_refused(name: str, params: dict[str, object], match: str) -> None:
    extra = {"surrogate": make_surrogate(4, 8)} if name == "mad_keyed" else {}
    with pytest.raises(ValueError, match=match):
        D.create(name, **extra, **params)
