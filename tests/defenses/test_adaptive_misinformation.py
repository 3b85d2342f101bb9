"""adaptive_misinformation: the confidence-gated blend, its argmax threshold, the misinformation loss and model, the harness path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import stealguard.defenses as D
from stealguard import data, models
from stealguard.defenses.adaptive_misinformation import blend_argmax_threshold
from stealguard.defenses.misinformation import (
    misinformation_dir,
    misinformation_for_victim,
    misinformation_loss,
    train_misinformation_model,
)
from stealguard.harness import fit_victim, run_attack

from .conftest import make_queries, make_surrogate


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class FixedLogits(torch.nn.Module):
    """Ignores ``x`` (beyond its batch size) and answers the same logits for every row."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(logits), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1)


def _defense(logits: list[float], **params) -> D.Defense:
    return D.create("adaptive_misinformation", misinformation=FixedLogits(logits), **params)


def test_confident_rows_are_untouched_and_uncertain_rows_get_the_misinformation() -> None:
    misinformed = torch.softmax(torch.tensor([0.0, 3.0, 1.0, -1.0], dtype=torch.float64), dim=0)
    defense = _defense([0.0, 3.0, 1.0, -1.0], tau=0.5, nu=1000.0)
    probs = torch.tensor(
        [[0.99, 0.005, 0.003, 0.002], [0.7, 0.1, 0.1, 0.1], [0.3, 0.25, 0.25, 0.2], [0.45, 0.35, 0.1, 0.1]],
        dtype=torch.float64,
    )
    out = defense(make_queries(4), probs)
    torch.testing.assert_close(out[:2], probs[:2], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[2:], misinformed.expand(2, -1), rtol=0, atol=1e-6)


def test_alpha_is_one_half_at_tau_and_moves_rows_towards_the_misinformation() -> None:
    misinformed = torch.softmax(torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64), dim=0)
    probs = torch.tensor([[0.2, 0.6, 0.2], [0.1, 0.5, 0.4]], dtype=torch.float64)
    at_tau = _defense([2.0, 0.0, 0.0], tau=0.6, nu=1000.0)(make_queries(2), probs)
    torch.testing.assert_close(at_tau[0], 0.5 * probs[0] + 0.5 * misinformed, rtol=0, atol=1e-12)
    soft = _defense([2.0, 0.0, 0.0], tau=0.6, nu=5.0)(make_queries(2), probs)
    before = (probs - misinformed).abs().sum(dim=1)
    after = (soft - misinformed).abs().sum(dim=1)
    assert (after < before).all() and (after > 0).all()


def test_argmax_threshold_is_tight() -> None:
    tau, nu = 0.9, 1000.0
    threshold = blend_argmax_threshold(tau=tau, nu=nu)
    assert threshold is not None and tau < threshold < tau + 0.01
    assert _defense([0.0, 0.0, 0.0], tau=tau, nu=nu).argmax_threshold() == threshold
    worst = [-50.0, 50.0, -50.0]
    defense = _defense(worst, tau=tau, nu=nu)
    for top, kept in ((threshold + 1e-6, True), (threshold - 1e-4, False)):
        probs = torch.tensor([[top, 1 - top, 0.0]], dtype=torch.float64)
        out = defense(make_queries(1), probs)
        assert (int(out.argmax(dim=1)) == 0) is kept, (top, out)


@pytest.mark.parametrize(("tau", "nu"), [(1.0, 1000.0), (1.0, 5.0)])
def test_no_argmax_promise_when_tau_is_one(tau: float, nu: float) -> None:
    assert blend_argmax_threshold(tau=tau, nu=nu) is None
    assert _defense([0.0, 1.0], tau=tau, nu=nu).argmax_threshold() is None


def test_low_tau_threshold_is_just_above_one_half() -> None:
    threshold = blend_argmax_threshold(tau=0.1, nu=1000.0)
    assert threshold is not None and 0.5 < threshold < 0.5 + 1e-5


def test_params_are_json_and_rebuild_the_defense() -> None:
    defense = _defense([0.0, 1.0], tau=0.7, nu=50.0)
    assert json.loads(json.dumps(defense.params())) == {"tau": 0.7, "nu": 50.0}
    assert set(defense.params()) | {"misinformation"} == set(D.parameters("adaptive_misinformation"))
    rebuilt = D.create("adaptive_misinformation", misinformation=FixedLogits([0.0, 1.0]), **defense.params())
    assert rebuilt.params() == defense.params() and defense.budget() is None
    assert "AdaptiveMisinformation" in repr(defense)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"tau": 0.0}, ValueError, "tau"),
        ({"tau": 1.5}, ValueError, "tau"),
        ({"tau": "0.5"}, TypeError, "tau"),
        ({"nu": 0.0}, ValueError, "nu"),
        ({"nu": float("inf")}, ValueError, "nu"),
        ({"nu": True}, TypeError, "nu"),
        ({"misinformation": None}, ValueError, "misinformation"),
        ({"misinformation": "model"}, TypeError, "misinformation"),
    ],
)
def test_bad_params_raise_naming_the_param(params: dict, error: type, match: str) -> None:
    settings = {"misinformation": FixedLogits([0.0, 1.0]), **params}
    with pytest.raises(error, match=match):
        D.create("adaptive_misinformation", **settings)


def test_misinformation_model_of_the_wrong_width_is_an_error() -> None:
    defense = _defense([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"shape \(2, 4\)"):
        defense(make_queries(2), torch.full((2, 4), 0.25))


def test_misinformation_model_runs_without_grad_in_eval_mode() -> None:
    model = make_surrogate(5, 8, seed=2).train()
    defense = D.create("adaptive_misinformation", misinformation=model)
    out = defense(make_queries(3), torch.full((3, 5), 0.2))
    assert not model.training and not out.requires_grad


def test_loss_is_minus_log_one_minus_p_true() -> None:
    logits = torch.tensor([[0.5, -1.0, 2.0], [3.0, 0.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([2, 0])
    p_true = torch.softmax(logits, dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(misinformation_loss(logits, labels), (-torch.log1p(-p_true)).mean())


def test_loss_is_finite_when_p_true_tends_to_one() -> None:
    logits = torch.tensor([[1000.0, 0.0, -5.0], [80.0, -80.0, 0.0]], requires_grad=True)
    loss = misinformation_loss(logits, torch.tensor([0, 0]))
    loss.backward()
    assert math.isfinite(float(loss.detach())) and float(loss.detach()) > 50
    assert torch.isfinite(logits.grad).all() and (logits.grad[:, 0] > 0).all()


def test_loss_shape_errors() -> None:
    with pytest.raises(ValueError, match="K >= 2"):
        misinformation_loss(torch.zeros(3, 1), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="labels"):
        misinformation_loss(torch.zeros(3, 4), torch.zeros(2, dtype=torch.int64))


def _mean_p_true(model: torch.nn.Module, dataset: data.ImageDataset) -> float:
    images, labels = dataset.tensors()
    probs = models.predict_proba(model, images, device="cpu")
    return float(probs.gather(1, labels.unsqueeze(1)).mean())


def test_training_lowers_the_true_class_probability_on_held_out_digits() -> None:
    train, test = data.load_dataset("digits", split="train"), data.load_dataset("digits", split="test")
    settings = {"arch": "mlp", "input_shape": train.input_shape, "num_classes": train.num_classes}
    trained = train_misinformation_model(train, **settings, epochs=2, seed=0, device="cpu", progress=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = models.create("mlp", input_shape=train.input_shape, num_classes=train.num_classes)
    assert _mean_p_true(trained, test) < 0.5 * _mean_p_true(untrained, test)
    again = train_misinformation_model(train, **settings, epochs=2, seed=0, device="cpu", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), again.state_dict().values()))


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"arch": "nope"}, ValueError, "arch"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
        ({"num_classes": 5}, ValueError, "labels"),
        ({"input_shape": (1, 4, 4)}, ValueError, "shape"),
    ],
)
def test_training_parameter_errors(params: dict, error: type, match: str) -> None:
    train = data.load_dataset("digits", split="test").subset(range(20))
    settings = {"arch": "mlp", "input_shape": train.input_shape, "num_classes": 10, "epochs": 1, "progress": False, **params}
    with pytest.raises(error, match=match):
        train_misinformation_model(train, **settings, device="cpu")


def test_run_attack_trains_the_misinformation_model_once_then_loads_it(tmp_path: Path) -> None:
    train = data.load_dataset("digits", split="train")
    test = data.load_dataset("digits", split="test").subset(range(100))
    victim = tmp_path / "victim"
    fit_victim(train, test, arch="mlp", epochs=2, seed=0, device="cpu", out=victim, progress=False)
    settings = {
        "victim": victim,
        "defense": "adaptive_misinformation:tau=0.9",
        "attack": "knockoff",
        "attack_params": {"epochs": 1, "batch_size": 32},
        "queryset": train.subset(range(60)),
        "budget": 30,
        "device": "cpu",
        "progress": False,
        "test_set": test,
    }
    first = run_attack(**settings)
    weights = misinformation_dir(victim) / "model.safetensors"
    assert weights.is_file() and (misinformation_dir(victim) / "card.json").is_file()
    stamp = weights.stat().st_mtime_ns
    second = run_attack(**settings)
    assert weights.stat().st_mtime_ns == stamp
    assert first["defense"] == "adaptive_misinformation" and first["defense_params"] == {"tau": 0.9, "nu": 1000.0}
    assert json.loads(json.dumps(first)) == first
    assert first["defender_accuracy"] == second["defender_accuracy"] and first["l1_mean"] == second["l1_mean"]
    assert first["l1_mean"] > 0
    saved, card = models.load_model(misinformation_dir(victim))
    assert card.arch == "mlp" and card.train["loss"] == "-log(1 - p_true)"
    assert _mean_p_true(saved, test) < 1 / card.num_classes


def _digits_card(num_classes: int = 10) -> models.ModelCard:
    return models.ModelCard(arch="mlp", dataset="digits", input_shape=(1, 8, 8), num_classes=num_classes, train={"epochs": 1}, seed=3)


def test_without_a_victim_dir_the_model_is_trained_and_not_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    model = misinformation_for_victim(_digits_card(), device="cpu", progress=False)
    assert model.num_classes == 10 and not model.training
    assert list(tmp_path.iterdir()) == []


def test_a_saved_model_that_does_not_fit_the_victim_is_an_error(tmp_path: Path) -> None:
    other = _digits_card(num_classes=3)
    models.save_model(models.create("mlp", input_shape=(1, 8, 8), num_classes=3), other, misinformation_dir(tmp_path))
    with pytest.raises(ValueError, match="delete the directory"):
        misinformation_for_victim(_digits_card(), victim_dir=tmp_path, device="cpu", progress=False)


def test_build_defense_checks_the_spec_before_training(tmp_path) -> None:
    from stealguard.harness import build_defense, fit_victim

    train = data.load_dataset("digits", split="train")
    test = data.load_dataset("digits", split="test")
    _, card = fit_victim(train.subset(range(200)), test.subset(range(50)), arch="mlp", epochs=1, seed=0, device="cpu",
                         out=tmp_path / "v", progress=False)
    with pytest.raises(ValueError, match="tau"):
        build_defense("adaptive_misinformation:tau=7", card=card, seed=0, victim_dir=tmp_path / "v")
    assert not (tmp_path / "v" / "misinformation").exists()
