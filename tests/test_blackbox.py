"""BlackBox: the one funnel — eval mode, no gradients, the defense applied, queries counted, the budget held."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from stealguard import defenses, models
from stealguard.blackbox import BlackBox, BudgetExceededError

SHAPE = (1, 8, 8)


def _victim() -> models.Classifier:
    torch.manual_seed(0)
    return models.create("mlp", input_shape=SHAPE, num_classes=10)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def test_answers_are_the_defended_softmax_and_carry_no_gradient() -> None:
    victim = _victim().train()
    box = BlackBox(victim, defenses.create("topk", k=2), device="cpu")
    x = _images(5).requires_grad_(True)
    answer = box.query(x)
    assert not victim.training and not answer.requires_grad
    clean = torch.softmax(victim(x.detach()), dim=1)
    assert torch.allclose(answer, defenses.create("topk", k=2)(x.detach(), clean), atol=1e-6)
    assert answer.dtype == torch.float32 and torch.allclose(answer.sum(1), torch.ones(5), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=8), st.integers(0, 30))
def test_the_budget_is_counted_exactly_and_never_exceeded(batches: list[int], budget: int) -> None:
    box = BlackBox(_victim(), budget=budget, device="cpu", batch_size=3)
    answered = 0
    for n in batches:
        if answered + n > budget:
            with pytest.raises(BudgetExceededError, match="refused"):
                box.query(_images(n))
        else:
            assert box.query(_images(n)).shape == (n, 10)
            answered += n
        assert box.queries_used == answered and box.remaining == budget - answered
    assert box.distortions().shape == (answered,)


def test_batching_does_not_change_answers() -> None:
    x = _images(11)
    small = BlackBox(_victim(), defenses.create("reverse_sigmoid", beta=0.5), batch_size=2, device="cpu").query(x)
    large = BlackBox(_victim(), defenses.create("reverse_sigmoid", beta=0.5), batch_size=64, device="cpu").query(x)
    assert torch.allclose(small, large, atol=1e-6)


def test_distortions_are_the_l1_to_the_clean_answers() -> None:
    box = BlackBox(_victim(), defenses.create("label_only"), device="cpu")
    x = _images(6)
    answer = box.query(x)
    clean = torch.softmax(_victim()(x), dim=1)
    assert torch.allclose(box.distortions(), (answer - clean).abs().sum(1), atol=1e-5)
    assert BlackBox(_victim(), device="cpu").distortions().numel() == 0


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.zeros(2, 1, 8, 8, dtype=torch.long), TypeError, "floating-point"),
        ([[0.0]], TypeError, "floating-point"),
        (torch.zeros(2, 1, 8, 9), ValueError, "shape"),
        (torch.zeros(1, 8, 8), ValueError, "shape"),
        (torch.full((2, 1, 8, 8), float("nan")), ValueError, "finite"),
    ],
)
def test_bad_queries_are_refused_and_cost_nothing(x, error: type, match: str) -> None:
    box = BlackBox(_victim(), budget=10, device="cpu")
    with pytest.raises(error, match=match):
        box.query(x)
    assert box.queries_used == 0


def test_an_empty_batch_is_answered_and_free() -> None:
    box = BlackBox(_victim(), budget=0, device="cpu")
    assert box.query(_images(0)).shape == (0, 10) and box.queries_used == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"budget": -1}, "budget"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_settings_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BlackBox(_victim(), device="cpu", **kwargs)


def test_a_model_without_shapes_needs_them_given() -> None:
    with pytest.raises(ValueError, match="input_shape and num_classes"):
        BlackBox(nn.Linear(4, 3), device="cpu")
    box = BlackBox(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), input_shape=(4,), num_classes=3, device="cpu")
    assert box.query(torch.rand(2, 4)).shape == (2, 3)
