"""Invariants every registered defense must satisfy; new registry entries are covered automatically.

Promises a defense declares are read from it: ``budget()`` -> ``(norm, epsilon) | None`` and,
where present, ``argmax_threshold()`` -> ``float | None`` (rows whose top probability exceeds
the value keep their argmax; None: no promise).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import stealguard.defenses as D
from stealguard.defenses.simplex import distance

from .conftest import (
    INPUT_DIM,
    TEST_PARAMS,
    VARIANT_PARAMS,
    defense_names,
    make_defense,
    make_queries,
    max_classes,
    posterior_batches,
)

SUM_TOLERANCE = 1e-6
BUDGET_TOLERANCE = 1e-6
TIE_GAP = 1e-9
"""Rows whose two largest inputs are closer than this count as ties for the argmax check."""

FAST = settings(max_examples=50, deadline=None)


def declared_argmax_threshold(defense: D.Defense) -> float | None:
    method = getattr(defense, "argmax_threshold", None)
    return None if method is None else method()


@pytest.mark.parametrize("name", defense_names())
@FAST
@given(data=st.data())
def test_output_on_simplex_and_declared_promises(name, data):
    probs = data.draw(posterior_batches(max_classes=max_classes(name)))
    rows, num_classes = probs.shape
    defense = make_defense(name, num_classes)
    out = defense(make_queries(rows), probs)

    assert out.shape == probs.shape and out.dtype == probs.dtype and out.device == probs.device
    assert torch.isfinite(out).all()
    assert (out >= 0).all()
    sums = out.double().sum(dim=1)
    assert ((sums - 1).abs() <= SUM_TOLERANCE).all(), sums

    budget = defense.budget()
    if budget is not None and rows:
        norm, epsilon = budget
        assert (distance(out.double(), probs.double(), norm) <= epsilon + BUDGET_TOLERANCE).all()

    threshold = declared_argmax_threshold(defense)
    if threshold is not None and rows:
        clean = probs.double()
        top2 = clean.topk(2, dim=1).values
        checked = (top2[:, 0] > threshold) & (top2[:, 0] - top2[:, 1] > TIE_GAP)
        kept = out.gather(1, clean.argmax(dim=1, keepdim=True)).squeeze(1) == out.max(dim=1).values
        assert kept[checked].all(), (threshold, clean[checked & ~kept].max(dim=1).values)


@pytest.mark.parametrize("name", defense_names())
@FAST
@given(data=st.data())
def test_batch_equals_row_by_row(name, data):
    probs = data.draw(posterior_batches(min_rows=1, max_rows=6, max_classes=max_classes(name)))
    rows, num_classes = probs.shape
    x = make_queries(rows)
    defense = make_defense(name, num_classes)
    batch = defense(x, probs)
    single = torch.cat([defense(x[i : i + 1], probs[i : i + 1]) for i in range(rows)])
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", defense_names())
@FAST
@given(data=st.data())
def test_same_params_same_output(name, data):
    probs = data.draw(posterior_batches(min_rows=1, max_rows=6, max_classes=max_classes(name)))
    rows, num_classes = probs.shape
    x = make_queries(rows)
    first = make_defense(name, num_classes)(x, probs)
    second = make_defense(name, num_classes)(x, probs)
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", defense_names())
def test_tolerated_off_simplex_rows(name):
    """The base accepts rows off the simplex by up to 1e-3; answers must still be on it and keep their promises."""
    clean = torch.tensor(
        [[0.6, 0.3, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.4, 0.35, 0.2, 0.05]],
        dtype=torch.float64,
    )
    probs = clean + torch.tensor([[9e-4, 0, 0, -9e-4], [-9e-4, 0, 0, 0], [0, 0, 9e-4, -5e-4], [0, 0, 0, 9e-4]])
    defense = make_defense(name, 4)
    out = defense(make_queries(4), probs)
    assert torch.isfinite(out).all() and (out >= 0).all()
    assert ((out.sum(dim=1) - 1).abs() <= SUM_TOLERANCE).all()
    normalised = probs.clamp_min(0) / probs.clamp_min(0).sum(dim=1, keepdim=True)
    budget = defense.budget()
    if budget is not None:
        norm, epsilon = budget
        assert (distance(out, normalised, norm) <= epsilon + BUDGET_TOLERANCE).all()
    if declared_argmax_threshold(defense) == 0.0:
        assert (out.gather(1, probs.argmax(dim=1, keepdim=True)).squeeze(1) == out.max(dim=1).values).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", defense_names())
def test_empty_batch(name, dtype):
    defense = make_defense(name, 5)
    out = defense(torch.empty(0, INPUT_DIM), torch.empty(0, 5, dtype=dtype))
    assert out.shape == (0, 5) and out.dtype == dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", defense_names())
def test_output_stays_on_cuda(name):
    probs = torch.softmax(torch.randn(4, 7, generator=torch.Generator().manual_seed(0)), dim=1).cuda()
    defense = make_defense(name, 7)
    if hasattr(defense, "surrogate"):
        defense.surrogate.cuda()
    x = make_queries(4).cuda()
    out = defense(x, probs)
    assert out.device == probs.device and out.dtype == probs.dtype
    torch.testing.assert_close(out.cpu(), make_defense(name, 7)(x.cpu(), probs.cpu()), rtol=0, atol=1e-5)


def _valid_probs(rows: int = 3, classes: int = 4) -> torch.Tensor:
    return torch.full((rows, classes), 1.0 / classes)


BAD_INPUTS = {
    "nan": (lambda: (make_queries(3), _valid_probs().index_put((torch.tensor([1]),), torch.tensor(float("nan")))),
            ValueError, "finite"),
    "one_dim": (lambda: (make_queries(3), torch.full((3,), 1 / 3)), ValueError, r"shape \(N, K\)"),
    "one_class": (lambda: (make_queries(3), torch.ones(3, 1)), ValueError, "K >= 2"),
    "int64": (lambda: (make_queries(3), torch.zeros(3, 4, dtype=torch.int64)), TypeError, "float32 or float64"),
    "not_normalised": (lambda: (make_queries(3), _valid_probs() * 2), ValueError, "sum to 1"),
    "negative": (lambda: (make_queries(3), torch.tensor([[1.5, -0.5]] * 3)), ValueError, "non-negative"),
    "batch_mismatch": (lambda: (make_queries(2), _valid_probs(3)), ValueError, "same batch size"),
    "not_tensor": (lambda: (make_queries(3), [[0.5, 0.5]] * 3), TypeError, "torch tensors"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("name", defense_names())
def test_bad_inputs_raise(name, case):
    build, error, match = BAD_INPUTS[case]
    x, probs = build()
    defense = make_defense(name, 4)
    with pytest.raises(error, match=match):
        defense(x, probs)


BAD_PARAMS = [
    ("reverse_sigmoid", {"beta": -0.1}, ValueError, "beta"),
    ("reverse_sigmoid", {"gamma": 0.0}, ValueError, "gamma"),
    ("reverse_sigmoid", {"beta": "0.3"}, TypeError, "beta"),
    ("reverse_sigmoid", {"gamma": float("nan")}, ValueError, "gamma"),
    ("dcp", {"tau": 0.0}, ValueError, "tau"),
    ("dcp", {"tau": 1.5}, ValueError, "tau"),
    ("dcp", {"beta": -1.0}, ValueError, "beta"),
    ("dcp", {"gamma": -1.0}, ValueError, "gamma"),
    ("dcp", {"nu": 0.0}, ValueError, "nu"),
    ("dcp", {"epsilon": 0.0}, ValueError, "epsilon"),
    ("dcp", {"epsilon": 2.5}, ValueError, "epsilon"),
    ("dcp", {"epsilon": True}, TypeError, "epsilon"),
    ("random_noise", {"epsilon": 0.0}, ValueError, "epsilon"),
    ("random_noise", {"epsilon": 2.1}, ValueError, "epsilon"),
    ("random_noise", {"epsilon": 1.5, "norm": "l2"}, ValueError, "epsilon"),
    ("random_noise", {"norm": "linf"}, ValueError, "norm"),
    ("random_noise", {"consistent": 1}, TypeError, "consistent"),
    ("random_noise", {"seed": -1}, ValueError, "seed"),
    ("random_noise", {"seed": 1.0}, TypeError, "seed"),
    ("random_noise", {"space": "logits"}, ValueError, "space"),
    ("random_noise", {"space": "logit", "epsilon": 51.0}, ValueError, "epsilon"),
    ("dcp", {"variant": "author"}, ValueError, "variant"),
    ("dcp", {"variant": "authors", "tau": 0.5}, ValueError, "tau"),
    ("topk", {"k": 0}, ValueError, "k"),
    ("topk", {"k": 2.0}, TypeError, "k"),
    ("rounding", {"decimals": -1}, ValueError, "decimals"),
    ("rounding", {"decimals": 11}, ValueError, "decimals"),
    ("rounding", {"decimals": True}, TypeError, "decimals"),
]


@pytest.mark.parametrize("name,params,error,match", BAD_PARAMS)
def test_bad_params_raise_naming_the_param(name, params, error, match):
    with pytest.raises(error, match=match):
        D.create(name, **params)


def test_bad_params_table_covers_every_parameter_of_these_defenses():
    covered = {(name, key) for name, params, _, _ in BAD_PARAMS for key in params}
    for name in {name for name, *_ in BAD_PARAMS}:
        assert {(name, key) for key in D.parameters(name)} <= covered


@pytest.mark.parametrize("name", defense_names())
def test_unknown_parameter_is_a_type_error(name):
    base, params = VARIANT_PARAMS.get(name, (name, {}))
    with pytest.raises(TypeError, match="not_a_param"):
        D.create(base, **params, not_a_param=1)


def test_unknown_name_lists_registered_names():
    with pytest.raises(ValueError, match="available: .*label_only.*reverse_sigmoid"):
        D.create("nope")


@pytest.mark.parametrize("name", sorted(TEST_PARAMS) + sorted(VARIANT_PARAMS))
def test_params_rebuild_the_same_defense(name):
    name, params = VARIANT_PARAMS.get(name, (name, TEST_PARAMS.get(name)))
    defense = D.create(name, **params)
    assert D.create(name, **defense.params()).params() == defense.params()
    assert set(defense.params()) <= set(D.parameters(name))
    assert type(defense).__name__ in repr(defense)
