"""stealguard.evaluate against naive per-sample computations."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from stealguard import evaluate, models
from stealguard.defenses import Defense, NoDefense

SHAPE = (1, 4, 4)
K = 5


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Tiny models: one torch thread is fastest and avoids fighting over a shared machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class SwapTopTwo(Defense):
    """Test defense: swap the two largest probabilities of every row (changes every top-1)."""

    name = "swap_top_two"

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        top = probs.topk(2, dim=1).indices
        out = probs.clone()
        out.scatter_(1, top[:, :1], probs.gather(1, top[:, 1:]))
        out.scatter_(1, top[:, 1:], probs.gather(1, top[:, :1]))
        return out


class Blend(Defense):
    """Test defense: ``(1 - w) y + w u`` with u uniform."""

    name = "blend"

    def __init__(self, *, weight: float) -> None:
        self.weight = weight

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        return (1 - self.weight) * probs + self.weight / probs.shape[1]


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.create("mlp", input_shape=SHAPE, num_classes=K).eval()


def _data(n: int = 37, seed: int = 1) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g), torch.randint(K, (n,), generator=g)


def test_defended_predictions_match_row_by_row() -> None:
    model, (x, _) = _model(), _data()
    clean, defended = evaluate.defended_predictions(model, SwapTopTwo(), x, batch_size=8, device="cpu")
    for i in range(x.shape[0]):
        with torch.no_grad():
            row = torch.softmax(model(x[i : i + 1]), dim=1)
        torch.testing.assert_close(clean[i : i + 1], row)
        torch.testing.assert_close(defended[i : i + 1], SwapTopTwo()(x[i : i + 1], row))
    none_clean, none_defended = evaluate.defended_predictions(model, None, x, device="cpu")
    torch.testing.assert_close(none_clean, none_defended)


@pytest.mark.parametrize("defense", [NoDefense(), SwapTopTwo(), Blend(weight=0.3)])
def test_evaluate_defense_matches_naive(defense: Defense) -> None:
    model, (x, y) = _model(), _data()
    result = evaluate.evaluate_defense(model, defense, x, y, batch_size=10, device="cpu")
    hits_clean = hits_defended = 0
    l1 = []
    for i in range(x.shape[0]):
        with torch.no_grad():
            clean = torch.softmax(model(x[i : i + 1]), dim=1)[0]
        defended = defense(x[i : i + 1], clean.unsqueeze(0))[0]
        hits_clean += int(clean.argmax()) == int(y[i])
        hits_defended += int(defended.argmax()) == int(y[i])
        l1.append(sum(abs(float(a) - float(b)) for a, b in zip(defended, clean)))
    n = x.shape[0]
    assert result["clean_accuracy"] == pytest.approx(hits_clean / n)
    assert result["defender_accuracy"] == pytest.approx(hits_defended / n)
    assert result["l1_mean"] == pytest.approx(sum(l1) / n, abs=1e-5)
    assert result["l1_max"] == pytest.approx(max(l1), abs=1e-5)
    assert result["angular_deviation_mean"] is None
    assert result["latency_defended_s"] > 0 and result["latency_undefended_s"] > 0
    assert result["latency_ratio"] == pytest.approx(result["latency_defended_s"] / result["latency_undefended_s"])


def test_swap_defense_costs_accuracy() -> None:
    model, (x, _) = _model(), _data()
    labels = torch.softmax(model(x), dim=1).argmax(dim=1)
    result = evaluate.evaluate_defense(model, SwapTopTwo(), x, labels, device="cpu")
    assert result["clean_accuracy"] == 1.0
    assert result["defender_accuracy"] == 0.0


def _stub_jacobian(x: Tensor) -> Tensor:
    """A made-up per-sample Jacobian ``G (N, K, D)`` that depends on the input."""
    flat = x.flatten(1).double()
    basis = torch.linspace(-1, 1, K * flat.shape[1], dtype=torch.float64).reshape(K, flat.shape[1])
    return basis.unsqueeze(0) * flat.unsqueeze(1) + torch.eye(K, flat.shape[1], dtype=torch.float64)


def test_angular_deviation_against_explicit_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def stub_gram(surrogate: nn.Module, x: Tensor, *, jacobian: str = "last_layer") -> Tensor:
        calls.append(jacobian)
        g = _stub_jacobian(x)
        return g @ g.transpose(1, 2)

    monkeypatch.setattr(evaluate, "surrogate_gram", stub_gram)
    model, (x, y) = _model(), _data(12)
    defense = Blend(weight=0.6)
    result = evaluate.evaluate_defense(model, defense, x, y, surrogate=_model(7), jacobian="full", batch_size=5, device="cpu")
    assert calls == ["full"] * 3
    clean, defended = evaluate.defended_predictions(model, defense, x, device="cpu")
    angles = []
    for i in range(x.shape[0]):
        g = _stub_jacobian(x[i : i + 1])[0]
        a = g.T @ clean[i].double()
        b = g.T @ defended[i].double()
        cosine = float(a @ b / (a.norm() * b.norm()))
        angles.append(math.degrees(math.acos(max(-1.0, min(1.0, cosine)))))
    assert result["angular_deviation_mean"] == pytest.approx(sum(angles) / len(angles), abs=1e-3)


def test_angular_deviation_with_the_mad_gram() -> None:
    model, (x, y) = _model(), _data(20)
    none = evaluate.evaluate_defense(model, None, x, y, surrogate=_model(3), device="cpu")
    swapped = evaluate.evaluate_defense(model, SwapTopTwo(), x, y, surrogate=_model(3), device="cpu")
    assert none["angular_deviation_mean"] == pytest.approx(0.0, abs=1e-3)
    assert 0.0 < swapped["angular_deviation_mean"] <= 180.0


def test_evaluate_replica_matches_naive() -> None:
    victim, replica, (x, y) = _model(0), _model(1), _data(50)
    result = evaluate.evaluate_replica(replica, victim, x, y, batch_size=7, device="cpu")
    with torch.no_grad():
        r, v = replica(x).argmax(1), victim(x).argmax(1)
    assert result["attacker_accuracy"] == pytest.approx(sum(int(a == b) for a, b in zip(r, y)) / 50)
    assert result["fidelity"] == pytest.approx(sum(int(a == b) for a, b in zip(r, v)) / 50)
    assert evaluate.evaluate_replica(victim, victim, x, y, device="cpu")["fidelity"] == 1.0


def test_errors() -> None:
    model, (x, y) = _model(), _data(4)
    with pytest.raises(ValueError, match="at least one image"):
        evaluate.evaluate_defense(model, None, x[:0], y[:0], device="cpu")
    with pytest.raises(ValueError, match="labels must have shape"):
        evaluate.evaluate_defense(model, None, x, y[:3], device="cpu")
    with pytest.raises(ValueError, match="jacobian"):
        evaluate.evaluate_defense(model, None, x, y, jacobian="middle", device="cpu")
    with pytest.raises(ValueError, match="batch_size"):
        evaluate.defended_predictions(model, None, x, batch_size=0, device="cpu")
    with pytest.raises(TypeError, match="floating-point"):
        evaluate.defended_predictions(model, None, y, device="cpu")


def test_evaluation_shows_progress_when_asked(capsys) -> None:
    from stealguard import models
    from stealguard.evaluate import defended_predictions

    torch.manual_seed(0)
    victim = models.create("mlp", input_shape=(1, 8, 8), num_classes=10)
    images = torch.rand(20, 1, 8, 8)
    quiet = defended_predictions(victim, None, images, batch_size=8, device="cpu")
    assert "evaluate defense" not in capsys.readouterr().err
    shown = defended_predictions(victim, None, images, batch_size=8, device="cpu", progress=True)
    assert "evaluate defense" in capsys.readouterr().err
    assert torch.equal(quiet[1], shown[1])
