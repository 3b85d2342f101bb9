"""Jacobian-based steps: shape, pixel range, direction, radius, and batch = row by row."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from torch import nn

from stealguard.attacks.augmentation import input_gradient, jacobian_step, targeted_linf_steps, top_other_classes

from ._fixtures import SHAPE, K, images, random_victim


def _linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, K)).eval()


@given(seed=st.integers(0, 2**16), n=st.integers(1, 12), step=st.sampled_from([0.1, -0.1, 0.3]))
@settings(max_examples=25, deadline=None)
def test_jacobian_step_is_a_clipped_signed_gradient_step(seed: int, n: int, step: float) -> None:
    model = _linear(seed % 7)
    x = images(n, seed)
    labels = torch.randint(0, K, (n,), generator=torch.Generator().manual_seed(seed))
    out = jacobian_step(model, x, labels, step)
    assert out.shape == x.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    expected = (x + step * input_gradient(model, x, labels).sign()).clamp(0, 1)
    assert torch.equal(out, expected)
    moved = (out - x).abs()
    assert bool((moved <= abs(step) + 1e-6).all())


def test_jacobian_step_up_the_loss_raises_it_and_down_lowers_it() -> None:
    model = random_victim(3)
    x = images(64, 4) * 0.5 + 0.25
    labels = model(x).argmax(dim=1)
    loss = nn.functional.cross_entropy(model(x), labels, reduction="none")
    up = nn.functional.cross_entropy(model(jacobian_step(model, x, labels, 0.05)), labels, reduction="none")
    down = nn.functional.cross_entropy(model(jacobian_step(model, x, labels, -0.05)), labels, reduction="none")
    assert float((up > loss).float().mean()) > 0.9
    assert float((down < loss).float().mean()) > 0.9


def test_jacobian_step_batch_equals_rows_and_leaves_the_model_alone() -> None:
    model = random_victim(1)
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    x, labels = images(9), torch.arange(9) % K
    batch = jacobian_step(model, x, labels, 0.1, chunk=4)
    rows = torch.cat([jacobian_step(model, x[i : i + 1], labels[i : i + 1], 0.1) for i in range(9)])
    assert torch.equal(batch, rows)
    assert model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


@given(seed=st.integers(0, 2**16), radius=st.sampled_from([0.05, 0.1]), steps=st.integers(1, 8))
@settings(max_examples=20, deadline=None)
def test_targeted_steps_stay_in_the_ball_and_the_pixel_range(seed: int, radius: float, steps: int) -> None:
    model = random_victim(seed % 5)
    x = images(6, seed)
    targets = torch.randint(0, K, (6,), generator=torch.Generator().manual_seed(seed + 1))
    out = targeted_linf_steps(model, x, targets, radius=radius, step=0.01, steps=steps)
    assert out.shape == x.shape
    assert float((out - x).abs().max()) <= radius + 1e-6
    assert float((out - x).abs().max()) <= 0.01 * steps + 1e-6
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_targeted_steps_raise_the_target_probability() -> None:
    model = random_victim(6)
    x = images(40, 8) * 0.6 + 0.2
    targets = model(x).argsort(dim=1)[:, 0]
    out = targeted_linf_steps(model, x, targets, radius=0.1, step=0.01, steps=8)
    with torch.no_grad():
        before = torch.softmax(model(x), 1).gather(1, targets[:, None])
        after = torch.softmax(model(out), 1).gather(1, targets[:, None])
    assert bool((after > before).all())
    rows = torch.cat([targeted_linf_steps(model, x[i : i + 1], targets[i : i + 1]) for i in range(5)])
    assert torch.equal(targeted_linf_steps(model, x[:5], targets[:5], chunk=2), rows)


def test_top_other_classes_skip_the_label_in_order() -> None:
    model = random_victim(2)
    x = images(30)
    logits = model(x).detach()
    labels = logits.argmax(dim=1)
    top = top_other_classes(model, x, labels, 3)
    assert top.shape == (30, 3)
    assert not bool((top == labels[:, None]).any())
    assert torch.equal(top, logits.argsort(dim=1, descending=True)[:, 1:4])
    other = (labels + 1) % K
    assert not bool((top_other_classes(model, x, other, 3) == other[:, None]).any())


def test_empty_batches() -> None:
    model = random_victim()
    empty = torch.zeros(0, *SHAPE)
    labels = torch.zeros(0, dtype=torch.int64)
    assert jacobian_step(model, empty, labels, 0.1).shape == (0, *SHAPE)
    assert targeted_linf_steps(model, empty, labels).shape == (0, *SHAPE)
    assert top_other_classes(model, empty, labels, 3).shape == (0, 3)


def test_gradient_is_per_row() -> None:
    model = random_victim()
    x, labels = images(4), torch.tensor([1, 2, 3, 4])
    grad = input_gradient(model, x, labels)
    assert grad.shape == x.shape
    assert torch.allclose(grad[2:3], input_gradient(model, x[2:3], labels[2:3]), atol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        input_gradient(model, x, labels[:2])
