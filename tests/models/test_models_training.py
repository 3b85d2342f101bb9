"""Training and inference: loss goes down, determinism, soft targets, augmentation, checks."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from stealguard.models import Classifier, accuracy_on, augment_crop_flip, create, fit, predict_logits, predict_proba
from stealguard.models.training import _lr_factor

K = 3


def _separable(n: int = 60, seed: int = 0, shape: tuple[int, int, int] = (1, 8, 8)) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c lights up horizontal band c of the image; background noise in [0, 0.2)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % K
    x = 0.2 * torch.rand(n, *shape, generator=g)
    band = shape[1] // K
    for c in range(K):
        x[labels == c, :, c * band : (c + 1) * band, :] += 0.7
    return x.clamp(0, 1), labels


def _mlp(seed: int = 0, shape: tuple[int, int, int] = (1, 8, 8)) -> Classifier:
    torch.manual_seed(seed)
    return create("mlp", input_shape=shape, num_classes=K)


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **overrides: object) -> list[float]:
    params: dict = {"epochs": 8, "batch_size": 16, "lr": 0.05, "progress": False, "device": "cpu", "seed": 0}
    params.update(overrides)
    return fit(model, x, y, **params)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_hard_labels_lowers_loss_and_raises_accuracy() -> None:
    x, y = _separable()
    model = _mlp()
    before = accuracy_on(model, x, y, device="cpu")
    losses = _fit(model, x, y)
    assert len(losses) == 8 and all(isinstance(v, float) for v in losses)
    assert losses[-1] < losses[0]
    assert accuracy_on(model, x, y, device="cpu") > before
    assert not model.training


def test_fit_soft_targets_lowers_loss_and_matches_soft_argmax() -> None:
    x, y = _separable(seed=1)
    probs = 0.7 * nn.functional.one_hot(y, K).float() + 0.3 / K
    model = _mlp(seed=1)
    before = accuracy_on(model, x, y, device="cpu")
    losses = _fit(model, x, probs, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="none")
    assert losses[-1] < losses[0]
    assert accuracy_on(model, x, y, device="cpu") > before


def test_soft_loss_equals_hard_loss_for_one_hot_targets() -> None:
    x, y = _separable(seed=2)
    hard, soft = _mlp(seed=2), _mlp(seed=2)
    loss_hard = _fit(hard, x, y, epochs=2)
    loss_soft = _fit(soft, x, nn.functional.one_hot(y, K).float(), epochs=2)
    assert loss_hard == pytest.approx(loss_soft, rel=1e-5)


def test_fit_is_deterministic_for_a_seed_and_restores_global_rng() -> None:
    x, y = _separable()
    base = _mlp()
    a, b, c = copy.deepcopy(base), copy.deepcopy(base), copy.deepcopy(base)
    state = torch.get_rng_state()
    la = _fit(a, x, y, epochs=3, seed=5)
    assert torch.equal(state, torch.get_rng_state())
    lb = _fit(b, x, y, epochs=3, seed=5)
    lc = _fit(c, x, y, epochs=3, seed=6)
    assert la == lb and _same_weights(a, b)
    assert la != lc and not _same_weights(a, c)


def test_fit_with_augmentation_is_deterministic() -> None:
    x, y = _separable(shape=(3, 9, 9))
    base = _mlp(shape=(3, 9, 9))
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    _fit(a, x, y, epochs=2, augment=augment_crop_flip(2), seed=3)
    _fit(b, x, y, epochs=2, augment=augment_crop_flip(2), seed=3)
    assert _same_weights(a, b)


@pytest.mark.parametrize(("optimizer", "schedule"), [("sgd", "step"), ("adam", "cosine"), ("sgd", "none")])
def test_fit_lenet_runs_with_each_optimizer_and_schedule(optimizer: str, schedule: str) -> None:
    x, y = _separable(n=18, shape=(1, 28, 28))
    torch.manual_seed(0)
    model = create("lenet", input_shape=(1, 28, 28), num_classes=K)
    losses = _fit(model, x, y, epochs=2, batch_size=8, optimizer=optimizer, lr=1e-3, schedule=schedule)
    assert len(losses) == 2 and all(v > 0 for v in losses)


def test_trailing_batch_of_one_joins_previous_batch_for_batchnorm() -> None:
    x, y = _separable(n=9)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, K))
    model = Classifier(net, input_shape=(1, 8, 8), num_classes=K)
    losses = _fit(model, x, y, epochs=2, batch_size=4)
    assert len(losses) == 2


def test_lr_schedules() -> None:
    assert _lr_factor("none", 7, 10, 3, 4) == 1.0
    assert _lr_factor("cosine", 0, 100, 0, 4) == 1.0
    cosine = [_lr_factor("cosine", s, 100, 0, 4) for s in range(100)]
    assert all(a > b for a, b in itertools.pairwise(cosine)) and cosine[-1] < 1e-3
    step = [_lr_factor("step", 0, 1, e, 8) for e in range(8)]
    assert step == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])


def test_predict_proba_and_logits() -> None:
    x, _ = _separable(n=11)
    model = _mlp().train()
    logits = predict_logits(model, x, batch_size=4, device="cpu")
    probs = predict_proba(model, x, device="cpu")
    assert model.training
    assert logits.shape == (11, K) and logits.dtype == torch.float32 and logits.device.type == "cpu"
    torch.testing.assert_close(probs, torch.softmax(logits, 1))
    torch.testing.assert_close(probs.sum(1), torch.ones(11))
    torch.testing.assert_close(predict_logits(model, x, batch_size=1, device="cpu"), logits)
    assert predict_proba(model, x[:0], device="cpu").shape == (0, K)


def test_accuracy_on_matches_argmax_count() -> None:
    x, y = _separable(n=30)
    model = _mlp()
    _fit(model, x, y, epochs=1)
    predicted = predict_logits(model, x, device="cpu").argmax(1)
    assert accuracy_on(model, x, y, device="cpu") == pytest.approx(float((predicted == y).float().mean()))


def test_augment_crop_flip_takes_crops_of_the_padded_image() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 2, 6, 5, generator=g)
    out = augment_crop_flip(2)(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = nn.functional.pad(x, (2, 2, 2, 2))
    flips = 0
    for i in range(len(x)):
        crops = {
            (dy, dx, flip)
            for dy in range(5)
            for dx in range(5)
            for flip in (False, True)
            if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 5].flip(-1) if flip else padded[i, :, dy : dy + 6, dx : dx + 5])
        }
        assert len(crops) >= 1, f"sample {i} is no crop of its padded image"
        flips += any(flip for *_, flip in crops)
    assert 0 < flips < len(x)


def test_augment_crop_flip_identity_and_determinism() -> None:
    x = torch.rand(8, 3, 8, 8)
    torch.testing.assert_close(augment_crop_flip(0, flip=False)(x, torch.Generator()), x)
    aug = augment_crop_flip()
    a = aug(x, torch.Generator().manual_seed(4))
    b = aug(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"padding must be an integer in \[0, inf\], got -1"):
        augment_crop_flip(-1)
    with pytest.raises(ValueError, match=r"expects \(N, C, H, W\) batches"):
        aug(torch.rand(3, 8, 8), torch.Generator())


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"epochs": 0}, ValueError, r"epochs must be an integer in \[1, inf\], got 0"),
        ({"epochs": 2.0}, TypeError, r"epochs must be an integer"),
        ({"batch_size": 0}, ValueError, r"batch_size must be an integer in \[1, inf\], got 0"),
        ({"optimizer": "rmsprop"}, ValueError, r"optimizer must be one of 'sgd', 'adam'; got 'rmsprop'"),
        ({"lr": 0.0}, ValueError, r"lr must be in \(0, inf\), got 0.0"),
        ({"lr": float("nan")}, ValueError, r"lr must be finite"),
        ({"momentum": 1.0}, ValueError, r"momentum must be in \[0, 1\), got 1.0"),
        ({"weight_decay": -1e-4}, ValueError, r"weight_decay must be in \[0, inf\), got -0.0001"),
        ({"schedule": "linear"}, ValueError, r"schedule must be one of 'cosine', 'step', 'none', 'onecycle'; got 'linear'"),
        ({"seed": -1}, ValueError, r"seed must be an integer in \[0, inf\], got -1"),
        ({"progress": "yes"}, TypeError, r"progress must be True or False"),
        ({"desc": 3}, TypeError, r"desc must be a string"),
        ({"augment": 3}, TypeError, r"augment must be callable or None"),
        ({"device": "tpu"}, ValueError, r"device must be 'auto', 'cpu', 'cuda'"),
    ],
)
def test_fit_rejects_bad_params(overrides: dict, error: type[Exception], match: str) -> None:
    x, y = _separable(n=6)
    with pytest.raises(error, match=match):
        _fit(_mlp(), x, y, **overrides)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda x, y: (x, y[:-1]), ValueError, r"targets must have N = 6 rows"),
        (lambda x, y: (x, y.float()), TypeError, r"targets must be int64 labels of shape \(N,\) or float probabilities"),
        (lambda x, y: (x, y - 1), ValueError, r"targets labels must be >= 0"),
        (lambda x, y: (x, y + K), ValueError, r"targets labels must be < num_classes = 3, got maximum 5"),
        (lambda x, y: (x, torch.full((6, K + 1), 1 / (K + 1))), ValueError, r"must have K = 3 columns like the model, got 4"),
        (lambda x, y: (x, torch.full((6, K), 0.5)), ValueError, r"targets probability rows must sum to 1"),
        (lambda x, y: (x, torch.full((6, K), -1.0)), ValueError, r"targets probabilities must be finite and >= 0"),
        (lambda x, y: ((x * 255).to(torch.uint8), y), TypeError, r"inputs must be a floating-point tensor"),
        (lambda x, y: (x.numpy(), y), TypeError, r"inputs must be a torch.Tensor"),
        (lambda x, y: (x[:0], y[:0]), ValueError, r"inputs must hold at least one sample"),
    ],
)
def test_fit_rejects_bad_data(make, error: type[Exception], match: str) -> None:
    x, y = make(*_separable(n=6))
    with pytest.raises(error, match=match):
        _fit(_mlp(), x, y)


def test_fit_rejects_non_module_and_diverging_loss() -> None:
    x, y = _separable(n=6)
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module"):
        _fit(object(), x, y)  # type: ignore[arg-type]
    with pytest.raises(FloatingPointError, match=r"training loss became"):
        _fit(_mlp(), x * float("inf"), y, epochs=1)


def test_prediction_helpers_reject_bad_params() -> None:
    x, y = _separable(n=6)
    model = _mlp()
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[1, inf\], got 0"):
        predict_proba(model, x, batch_size=0)
    with pytest.raises(TypeError, match=r"labels must be an int64 tensor"):
        accuracy_on(model, x, y.float())
    with pytest.raises(ValueError, match=r"labels must have shape \(6,\)"):
        accuracy_on(model, x, y[:3])
    with pytest.raises(ValueError, match=r"accuracy needs at least one sample"):
        accuracy_on(model, x[:0], y[:0])
