"""DP-SGD training with Opacus: mechanism (clipping, noise scale), accounting, reproducibility, IO, checks."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from opacus.validators import ModuleValidator
from torch import nn

from stealguard.data import load_dataset
from stealguard.models import Classifier, ModelCard, accuracy_on, create, load_model, predict_logits, save_model
from stealguard.models.dp import check_dp_params, default_delta, fit_dp

DIGITS_SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    return (*train.tensors(), *test.tensors())


@pytest.fixture(scope="module")
def small(digits) -> tuple[torch.Tensor, torch.Tensor]:
    """360 training digits: enough for the mechanism and the accounting, cheap to train on."""
    x, y, _, _ = digits
    return x[:360], y[:360]


def _mlp(seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    return create("mlp", input_shape=DIGITS_SHAPE, num_classes=10)


def _dp(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **overrides: object):
    params: dict = {
        "noise_multiplier": 1.0,
        "max_grad_norm": 1.0,
        "epochs": 1,
        "batch_size": 256,
        "optimizer": "adam",
        "lr": 1e-3,
        "device": "cpu",
        "progress": False,
        "seed": 0,
    }
    params.update(overrides)
    return fit_dp(model, x, y, **params)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_default_delta_is_a_power_of_ten_below_one_over_n() -> None:
    assert default_delta(1438) == 1e-5 and default_delta(60000) == 1e-5
    assert default_delta(100_000) == 1e-6 and default_delta(2_000_000) == 1e-7
    for n in (1, 9, 10, 99_999, 100_000, 123_456_789):
        assert default_delta(n) < 1 / n


def test_dp_training_is_reproducible_and_reports_finite_epsilon(small) -> None:
    x, y = small
    model = _mlp().eval()
    first = _dp(model, x, y, epochs=2, batch_size=128)
    assert first.model is model, "a model without BatchNorm is trained in place"
    again = _dp(_mlp(), x, y, epochs=2, batch_size=128)
    other_seed = _dp(_mlp(), x, y, epochs=2, batch_size=128, seed=1)
    assert _same_weights(first.model, again.model)
    assert not _same_weights(first.model, other_seed.model)
    assert first.epsilon == again.epsilon and 0 < first.epsilon < math.inf
    assert first.delta == default_delta(len(y)) and first.accountant == "rdp" and first.norm == "batch"
    assert first.steps == 2 * 3 and first.sample_rate == pytest.approx(1 / 3)
    assert len(first.losses) == 2 and all(math.isfinite(v) for v in first.losses)
    assert type(first.model) is Classifier and not first.model.training
    leftovers = [name for name, p in first.model.named_parameters() if hasattr(p, "grad_sample") or p.grad is not None]
    assert leftovers == [] and all(not m._forward_hooks and not m._backward_hooks for m in first.model.modules())


def test_epsilon_falls_with_more_noise_and_grows_with_more_steps(small) -> None:
    x, y = small
    little, much = _dp(_mlp(), x, y, noise_multiplier=0.8), _dp(_mlp(), x, y, noise_multiplier=1.6)
    longer = _dp(_mlp(), x, y, noise_multiplier=0.8, epochs=2)
    assert much.epsilon < little.epsilon < longer.epsilon
    looser = _dp(_mlp(), x, y, noise_multiplier=0.8, delta=1e-3)
    assert looser.epsilon < little.epsilon
    prv = _dp(_mlp(), x, y, noise_multiplier=0.8, accountant="prv")
    assert prv.accountant == "prv" and 0 < prv.epsilon < math.inf
    assert _dp(_mlp(), x, y, noise_multiplier=0.0).epsilon == math.inf


def test_tiny_noise_and_large_clip_learns_well_above_chance(digits) -> None:
    x, y, x_test, y_test = digits
    result = _dp(_mlp(), x, y, noise_multiplier=0.01, max_grad_norm=10.0, epochs=5, batch_size=64, lr=3e-3)
    assert accuracy_on(result.model, x_test, y_test, device="cpu") > 5 * 0.1
    assert result.losses[-1] < result.losses[0]


def _linear_problem(seed: int = 0) -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(16, 10)), input_shape=(1, 4, 4), num_classes=10)
    x = torch.rand(12, 1, 4, 4, generator=generator)
    y = torch.randint(0, 10, (12,), generator=generator)
    return model, x, y


Grads = dict[str, torch.Tensor]


def _clipped_mean(model: Classifier, x: torch.Tensor, y: torch.Tensor, clip: float) -> tuple[Grads, Grads, list[float]]:
    """Mean per-sample gradient, clipped (flat, over all parameters) and unclipped, computed one sample at a time."""
    names = [name for name, _ in model.named_parameters()]
    per_sample = []
    for i in range(len(y)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        per_sample.append({name: p.grad.detach().clone() for name, p in model.named_parameters()})
    norms = [math.sqrt(sum(float(g[name].pow(2).sum()) for name in names)) for g in per_sample]
    clipped = {name: sum(g[name] * min(1.0, clip / norm) for g, norm in zip(per_sample, norms)) / len(y) for name in names}
    plain = {name: sum(g[name] for g in per_sample) / len(y) for name in names}
    return clipped, plain, norms


def test_noiseless_update_is_the_mean_of_clipped_per_sample_gradients() -> None:
    model, x, y = _linear_problem()
    before = copy.deepcopy(model)
    _, _, norms = _clipped_mean(copy.deepcopy(model), x, y, 1.0)
    clip = sorted(norms)[len(norms) // 2]
    clipped, plain, norms = _clipped_mean(copy.deepcopy(model), x, y, clip)
    assert sum(n > clip for n in norms) >= 3
    # batch_size = N: Poisson rate 1, every sample in the one step; SGD lr 1 makes the update minus the gradient.
    result = fit_dp(model, x, y, noise_multiplier=0.0, max_grad_norm=clip, epochs=1, batch_size=len(y), optimizer="sgd",
                    lr=1.0, momentum=0.0, weight_decay=0.0, schedule="none", device="cpu", progress=False)
    assert result.steps == 1 and result.sample_rate == 1.0
    after = dict(result.model.named_parameters())
    for name, p in before.named_parameters():
        update = p.detach() - after[name].detach()
        torch.testing.assert_close(update, clipped[name], rtol=1e-4, atol=1e-6)
        assert not torch.allclose(update, plain[name], rtol=1e-3, atol=1e-5)


def test_noise_has_std_noise_multiplier_times_clip_over_batch() -> None:
    model, x, y = _linear_problem(seed=1)
    clip, sigma = 0.5, 2.0
    kwargs = {"max_grad_norm": clip, "epochs": 1, "batch_size": len(y), "optimizer": "sgd", "lr": 1.0, "momentum": 0.0,
                  "weight_decay": 0.0, "schedule": "none", "device": "cpu", "progress": False}
    quiet = fit_dp(copy.deepcopy(model), x, y, noise_multiplier=0.0, **kwargs).model
    noisy = fit_dp(copy.deepcopy(model), x, y, noise_multiplier=sigma, **kwargs).model
    noise = torch.cat([(a - b).detach().flatten() for a, b in zip(quiet.parameters(), noisy.parameters())])
    expected = sigma * clip / len(y)
    assert noise.numel() == 170 and 0.75 < float(noise.std()) / expected < 1.25
    assert abs(float(noise.mean())) < 3 * expected / math.sqrt(noise.numel())


@pytest.mark.parametrize("arch", ["vgg16_bn", "resnet18"])
def test_group_norm_variant_matches_opacus_fix(arch: str) -> None:
    torch.manual_seed(0)
    fixed = ModuleValidator.fix(create(arch, input_shape=(1, 32, 32), num_classes=3))
    variant = create(arch, input_shape=(1, 32, 32), num_classes=3, norm="group")
    assert str(fixed) == str(variant)
    assert {k: v.shape for k, v in fixed.state_dict().items()} == {k: v.shape for k, v in variant.state_dict().items()}
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in variant.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in variant.modules())


def test_batchnorm_victim_is_trained_as_groupnorm_saved_and_loaded(tmp_path: Path) -> None:
    torch.manual_seed(0)
    original = create("vgg16_bn", input_shape=(1, 32, 32), num_classes=3)
    untouched = copy.deepcopy(original)
    x = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 3
    result = _dp(original, x, y, batch_size=4, optimizer="sgd", lr=0.01)
    assert result.norm == "group" and _same_weights(original, untouched)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in result.model.modules())
    assert all(m.inplace for m in result.model.modules() if isinstance(m, nn.ReLU))
    card = ModelCard(arch="vgg16_bn", dataset="random", input_shape=(1, 32, 32), num_classes=3, dp=result.record())
    loaded, loaded_card = load_model(save_model(result.model, card, tmp_path / "vgg"))
    assert loaded_card.dp == json.loads(json.dumps(result.record())) and loaded_card.dp["norm"] == "group"
    assert torch.equal(predict_logits(loaded, x, device="cpu"), predict_logits(result.model, x, device="cpu"))


def test_mlp_dp_victim_round_trips_through_the_card(small, digits, tmp_path: Path) -> None:
    x, y = small
    x_test = digits[2]
    result = _dp(_mlp(), x, y)
    card = ModelCard(arch="mlp", dataset="digits", input_shape=DIGITS_SHAPE, num_classes=10, dp=result.record())
    loaded, loaded_card = load_model(save_model(result.model, card, tmp_path / "mlp"))
    assert loaded_card.dp["epsilon"] == pytest.approx(result.epsilon) and loaded_card.dp["accountant"] == "rdp"
    assert torch.equal(predict_logits(loaded, x_test, device="cpu"), predict_logits(result.model, x_test, device="cpu"))
    plain = ModelCard(arch="mlp", dataset="digits", input_shape=DIGITS_SHAPE, num_classes=10)
    assert "dp" not in plain.to_dict() and ModelCard.from_dict(plain.to_dict()).dp is None
    no_noise = _dp(_mlp(), x, y, noise_multiplier=0.0).record()
    assert no_noise["epsilon"] is None and ModelCard(arch="mlp", dataset="d", input_shape=DIGITS_SHAPE, num_classes=10, dp=no_noise)


GOOD_RECORD = {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-5, "epsilon": 3.0, "accountant": "rdp", "norm": "batch"}


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"noise_multiplier": -1.0}, ValueError, r"card field 'dp.noise_multiplier' must be in \[0, inf\)"),
        ({"delta": 1.0}, ValueError, r"card field 'dp.delta' must be in \(0, 1\)"),
        ({"norm": "layer"}, ValueError, r"card field 'dp.norm'"),
        ({"epsilon": "big"}, TypeError, r"card field 'dp.epsilon' must be a real number"),
        ({"colour": "red"}, ValueError, r"card field 'dp' must hold .* unknown \['colour'\]"),
    ],
)
def test_card_dp_record_validation(change: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ModelCard(arch="mlp", dataset="d", input_shape=DIGITS_SHAPE, num_classes=10, dp={**GOOD_RECORD, **change})
    with pytest.raises(ValueError, match=r"missing \['epsilon'\]"):
        ModelCard(arch="mlp", dataset="d", input_shape=DIGITS_SHAPE, num_classes=10,
                  dp={k: v for k, v in GOOD_RECORD.items() if k != "epsilon"})


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"noise_multiplier": -0.5}, ValueError, r"noise_multiplier must be in \[0, inf\), got -0.5"),
        ({"max_grad_norm": 0.0}, ValueError, r"max_grad_norm must be in \(0, inf\), got 0.0"),
        ({"delta": 0.0}, ValueError, r"delta must be in \(0, 1\), got 0.0"),
        ({"delta": 1.0}, ValueError, r"delta must be in \(0, 1\), got 1.0"),
        ({"accountant": "gdp"}, ValueError, r"accountant"),
        ({"accountant": "prv", "noise_multiplier": 0.1}, ValueError, r"accountant 'prv' needs noise_multiplier >= 0.3"),
        ({"epochs": 0}, ValueError, r"epochs must be an integer in \[1, inf\]"),
        ({"noise_multiplier": "1"}, TypeError, r"noise_multiplier must be a real number"),
        ({"lr": -1.0}, ValueError, r"lr must be in \(0, inf\)"),
    ],
)
def test_bad_parameters_raise_naming_them(change: dict, error: type[Exception], match: str) -> None:
    model, x, y = _linear_problem()
    with pytest.raises(error, match=match):
        _dp(model, x, y, **change)


def test_soft_labels_are_refused_and_dp_params_are_checked() -> None:
    model, x, y = _linear_problem()
    with pytest.raises(TypeError, match=r"hard labels only"):
        _dp(model, x, nn.functional.one_hot(y, 10).float())
    assert check_dp_params({"noise_multiplier": 1, "max_grad_norm": 2, "delta": 1e-6}) == {
        "noise_multiplier": 1.0, "max_grad_norm": 2.0, "delta": 1e-6}
    with pytest.raises(ValueError, match=r"unknown DP-SGD parameter\(s\) 'sigma'"):
        check_dp_params({"sigma": 1.0, "max_grad_norm": 1.0})
    with pytest.raises(ValueError, match=r"missing noise_multiplier"):
        check_dp_params({"max_grad_norm": 1.0})
    with pytest.raises(ValueError, match=r"max_grad_norm must be in \(0, inf\)"):
        check_dp_params({"noise_multiplier": 1.0, "max_grad_norm": -1})
