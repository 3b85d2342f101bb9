"""Knockoff Nets (random policy): exact budget, sampling, errors, and that it steals."""

from __future__ import annotations

import json

import pytest
import torch

from stealguard import attacks, data, models
from stealguard.attacks import Knockoff
from stealguard.blackbox import BlackBox

from ._fixtures import SHAPE, K, RecordingBlackBox, images, random_victim

_random_victim = random_victim
_images = images


def _attack(queryset, **params) -> Knockoff:
    settings = {"replica_arch": "mlp", "epochs": 1, "device": "cpu", "progress": False, "query_batch_size": 8}
    settings.update(params)
    return Knockoff(queryset=queryset, **settings)


@pytest.mark.parametrize("budget", [1, 7, 37, 50])
def test_queries_exactly_budget_distinct_images(budget: int) -> None:
    images = _images(50)
    box = RecordingBlackBox(_random_victim(), budget=budget, device="cpu")
    _attack(images).run(box, budget)
    assert box.queries_used == budget
    assert box.remaining == 0
    sent = torch.cat(box.batches)
    assert sent.shape[0] == budget
    assert max(batch.shape[0] for batch in box.batches) <= 8
    assert torch.unique(sent.flatten(1), dim=0).shape[0] == budget


def test_budget_above_queryset_cycles_the_set_evenly() -> None:
    images = _images(20)
    box = RecordingBlackBox(_random_victim(), device="cpu")
    _attack(images).run(box, 47)
    sent = torch.cat(box.batches).flatten(1)
    assert box.queries_used == 47
    matches = (sent.unsqueeze(1) == images.flatten(1).unsqueeze(0)).all(dim=2)
    counts = matches.sum(dim=0)
    assert bool((matches.sum(dim=1) == 1).all())
    assert set(counts.tolist()) <= {2, 3}


def test_never_exceeds_budget_the_box_has_left() -> None:
    box = BlackBox(_random_victim(), budget=10, device="cpu")
    box.query(_images(4))
    with pytest.raises(ValueError, match="exceeds the 6 queries"):
        _attack(_images(30)).run(box, 7)
    assert box.queries_used == 4


def test_train_on_argmax_and_factory() -> None:
    calls = []

    def factory() -> torch.nn.Module:
        calls.append(1)
        return models.create("mlp", input_shape=SHAPE, num_classes=K)

    box = BlackBox(_random_victim(), device="cpu")
    replica = _attack(_images(30), replica_arch=None, replica_factory=factory, train_on="argmax").run(box, 30)
    assert calls == [1]
    assert not replica.training
    assert replica(_images(3)).shape == (3, K)


def test_same_seed_same_replica() -> None:
    images = _images(40)
    outputs = []
    for _ in range(2):
        box = BlackBox(_random_victim(), device="cpu")
        replica = _attack(images, seed=3, epochs=2).run(box, 25)
        outputs.append(replica(images))
    assert torch.equal(outputs[0], outputs[1])


def test_shape_mismatch_is_a_clear_error() -> None:
    box = BlackBox(_random_victim(), device="cpu")
    with pytest.raises(ValueError, match=r"expects \(1, 8, 8\).*load_queryset"):
        _attack(torch.rand(10, 1, 16, 16)).run(box, 5)
    assert box.queries_used == 0


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"train_on": "labels"}, ValueError, "train_on"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
        ({"query_batch_size": 0}, ValueError, "query_batch_size"),
        ({"replica_arch": 3}, TypeError, "replica_arch"),
        ({"progress": "yes"}, TypeError, "progress"),
    ],
)
def test_parameter_errors(params: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        _attack(_images(5), **params)


def test_queryset_errors() -> None:
    with pytest.raises(TypeError, match="queryset"):
        Knockoff(queryset=[1, 2, 3])
    with pytest.raises(ValueError, match="at least one image"):
        Knockoff(queryset=torch.zeros(0, *SHAPE))
    with pytest.raises(ValueError, match="replica_arch or replica_factory"):
        _attack(_images(5), replica_arch=None).run(BlackBox(_random_victim(), device="cpu"), 3)


def test_registry() -> None:
    assert "knockoff" in attacks.names()
    assert isinstance(attacks.create("knockoff", queryset=_images(3)), Knockoff)
    with pytest.raises(ValueError, match="unknown attack 'jbdx'; available: art_copycat, art_knockoff, dfme, jb_self, jb_top3, jbda, knockoff, maze"):
        attacks.create("jbdx")
    with pytest.raises(TypeError, match="unknown parameter.*budget"):
        attacks.create("knockoff", queryset=_images(3), budget=5)
    with pytest.raises(ValueError, match="already registered"):
        attacks.register("knockoff", Knockoff)
    with pytest.raises(TypeError, match="subclass of Attack"):
        attacks.register("other", dict)


def test_params_are_json() -> None:
    params = _attack(_images(5)).params()
    assert json.loads(json.dumps(params)) == params
    assert params["queryset"] == "tensor" and params["queryset_size"] == 5


def test_steals_an_undefended_digits_victim() -> None:
    train = data.load_dataset("digits", split="train")
    test = data.load_dataset("digits", split="test")
    victim_part, query_part = data.split_dataset(train, 0.5, 0)
    x, y = victim_part.tensors()
    torch.manual_seed(0)
    victim = models.create("mlp", input_shape=SHAPE, num_classes=K)
    models.fit(victim, x, y, epochs=20, optimizer="adam", lr=1e-3, batch_size=64, device="cpu", progress=False)
    test_x, test_y = test.tensors()
    chance = 1.0 / K
    for train_on in ("probs", "argmax"):
        box = BlackBox(victim, device="cpu")
        replica = _attack(query_part, epochs=20, batch_size=32, train_on=train_on).run(box, 300)
        assert box.queries_used == 300
        accuracy = models.accuracy_on(replica, test_x, test_y, device="cpu")
        assert accuracy > chance + 0.5
