"""The CIFAR recipe in fit: one-cycle schedule, Nesterov momentum, label smoothing; crop + flip invariants."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from stealguard.models import augment_crop_flip, create, fit
from stealguard.models.training import ONECYCLE_PEAK, _loss, _lr_factor, make_optimizer


def _data(n: int = 24, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % k
    x = (0.2 * torch.rand(n, 1, 8, 8, generator=g) + 0.6 * (y.view(n, 1, 1, 1) == torch.arange(8).view(1, 1, 8, 1) % k)).clamp(0, 1)
    return x, y


def _mlp(seed: int = 0):
    torch.manual_seed(seed)
    return create("mlp", input_shape=(1, 8, 8), num_classes=3)


def test_onecycle_rises_to_the_peak_then_falls_to_zero() -> None:
    total = 100
    factors = [_lr_factor("onecycle", s, total, 0, 1) for s in range(total)]
    peak = factors.index(max(factors))
    assert max(factors) == pytest.approx(1.0) and peak == round(ONECYCLE_PEAK * total) - 1
    assert all(a < b for a, b in itertools.pairwise(factors[: peak + 1]))
    assert all(a > b for a, b in zip(factors[peak + 1 :], factors[peak + 2 :]))
    assert 0 < factors[0] <= 0.05 and 0 < factors[-1] <= 0.02
    assert _lr_factor("onecycle", 0, 1, 0, 1) == 1.0


def test_fit_with_the_recipe_lowers_the_loss_and_is_seeded() -> None:
    x, y = _data()
    recipe = {
        "epochs": 6, "batch_size": 8, "lr": 0.2, "schedule": "onecycle", "nesterov": True, "label_smoothing": 0.1, "seed": 1, "progress": False, "device": "cpu"
    }
    first, second = _mlp(), _mlp()
    losses = fit(first, x, y, **recipe)
    fit(second, x, y, **recipe)
    assert losses[-1] < losses[0]
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))


def test_nesterov_reaches_the_optimizer() -> None:
    opt = make_optimizer(_mlp(), "sgd", 0.1, 0.9, 5e-4, nesterov=True)
    assert opt.param_groups[0]["nesterov"] is True
    assert make_optimizer(_mlp(), "sgd", 0.1, 0.9, 5e-4).param_groups[0]["nesterov"] is False


def test_label_smoothing_matches_torch_and_soft_targets() -> None:
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 3, 1, 1, 2])
    smoothed = _loss(logits, labels, False, 0.2)
    torch.testing.assert_close(smoothed, F.cross_entropy(logits, labels, label_smoothing=0.2))
    torch.testing.assert_close(_loss(logits, F.one_hot(labels, 4).float(), True, 0.2), smoothed)
    torch.testing.assert_close(_loss(logits, labels, False, 0.0), F.cross_entropy(logits, labels))


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"nesterov": True, "optimizer": "adam"}, ValueError, r"nesterov=True needs optimizer 'sgd' with momentum > 0"),
        ({"nesterov": True, "momentum": 0.0}, ValueError, r"nesterov=True needs optimizer 'sgd' with momentum > 0"),
        ({"nesterov": 1}, TypeError, r"nesterov must be True or False"),
        ({"label_smoothing": 1.0}, ValueError, r"label_smoothing must be in \[0, 1\), got 1.0"),
        ({"label_smoothing": -0.1}, ValueError, r"label_smoothing must be in \[0, 1\)"),
    ],
)
def test_recipe_parameters_are_checked(overrides: dict, error: type[Exception], match: str) -> None:
    x, y = _data()
    params = {"epochs": 1, "lr": 0.1, "progress": False, "device": "cpu"}
    params.update(overrides)
    with pytest.raises(error, match=match):
        fit(_mlp(), x, y, **params)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 6),
    channels=st.sampled_from([1, 3]),
    side=st.integers(1, 12),
    padding=st.integers(0, 5),
    flip=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_crop_flip_keeps_shape_range_and_pixels(n: int, channels: int, side: int, padding: int, flip: bool, seed: int) -> None:
    x = torch.rand(n, channels, side, side + 1, generator=torch.Generator().manual_seed(seed))
    augment = augment_crop_flip(padding, flip=flip)
    out = augment(x, torch.Generator().manual_seed(seed))
    assert out.shape == x.shape and out.dtype == x.dtype
    if n:
        assert float(out.min()) >= 0.0 and float(out.max()) <= float(x.max())
    for i in range(n):
        values = set(x[i].flatten().tolist()) | {0.0}
        assert set(out[i].flatten().tolist()) <= values
    torch.testing.assert_close(augment(x, torch.Generator().manual_seed(seed)), out)
