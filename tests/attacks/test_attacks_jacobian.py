"""JBDA, JB-self and JB-top3: rounds, exact budgets, step signs, reservoir sampling, stealing on digits."""

from __future__ import annotations

import json

import pytest
import torch

from stealguard import attacks, data, models
from stealguard.attacks import JBDA, JBSelf, JBTop3
from stealguard.attacks.augmentation import input_gradient
from stealguard.blackbox import BlackBox

from ._fixtures import RecordingBlackBox, images, random_victim

FAST = {"replica_arch": "mlp", "epochs": 2, "round_epochs": 2, "device": "cpu", "progress": False, "query_batch_size": 16}
NAMES = ["jbda", "jb_self", "jb_top3"]


def _attack(name: str, queryset, **params):
    return attacks.create(name, queryset=queryset, **{**FAST, **params})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("budget", "seed_size"), [(1, 10), (10, 10), (57, 10), (130, 7)])
def test_spends_exactly_the_budget(name: str, budget: int, seed_size: int) -> None:
    box = RecordingBlackBox(random_victim(), budget=budget, device="cpu")
    attack = _attack(name, images(40), seed_size=seed_size)
    replica = attack.run(box, budget)
    assert box.queries_used == budget
    sent = box.sent()
    assert sent.shape[0] == budget
    # the reference's JB-top3 step does not clip to [0, 1]: each round may move a point by the radius
    slack = attack.radius * attack.report()["rounds"] if name == "jb_top3" else 0.0
    assert float(sent.min()) >= -slack - 1e-6 and float(sent.max()) <= 1 + slack + 1e-6
    assert max(b.shape[0] for b in box.batches) <= 16
    assert attack.report()["transfer_set_size"] == budget
    assert replica(images(2)).shape == (2, 10)


@pytest.mark.parametrize(("name", "per_round"), [("jbda", 1), ("jb_self", 1), ("jb_top3", 3)])
def test_the_transfer_set_grows_by_parents_times_queries_per_parent(name: str, per_round: int) -> None:
    box = RecordingBlackBox(random_victim(), device="cpu")
    attack = _attack(name, images(40), seed_size=5, max_rounds=3)
    attack.run(box, 10_000)
    sizes = [5]
    for _ in range(3):
        sizes.append(sizes[-1] * (1 + per_round))
    assert box.queries_used == sizes[-1]
    assert attack.report() == {"rounds": 3, "transfer_set_size": sizes[-1]}


def test_kappa_limits_the_parents_after_sigma_rounds() -> None:
    box = BlackBox(random_victim(), device="cpu")
    attack = _attack("jbda", images(40), seed_size=4, max_rounds=4, kappa=3, sigma=2)
    attack.run(box, 10_000)
    assert box.queries_used == 4 + 4 + 8 + 3 + 3


@pytest.mark.parametrize("tau", [1, 2, 5])
def test_step_sign_flips_every_tau_rounds_with_floor(tau: int) -> None:
    attack = _attack("jbda", images(5), tau=tau, step_size=0.1, flip="floor")
    signs = [attack.round_step(r) > 0 for r in range(12)]
    assert signs == [(r // tau) % 2 == 0 for r in range(12)]
    assert all(abs(attack.round_step(r)) == 0.1 for r in range(12))


@pytest.mark.parametrize(("cls", "direction"), [(JBDA, 1.0), (JBSelf, -1.0)])
def test_augment_steps_along_or_against_the_loss_gradient(cls, direction: float) -> None:
    attack = cls(queryset=images(5), **FAST)
    model = random_victim(4)
    x = images(20, 9) * 0.5 + 0.25
    labels = model(x).argmax(dim=1)
    for round_index in (0, 5):
        out = attack.augment(model, x, labels, round_index)
        expected = direction * attack.round_step(round_index) * input_gradient(model, x, labels).sign()
        assert torch.allclose(out - x, expected, atol=1e-6)


@pytest.mark.parametrize("step", ["reference", "stealguard"])
def test_top3_targets_three_other_classes_within_the_radius(step: str) -> None:
    attack = JBTop3(queryset=images(5), step=step, **FAST)
    model = random_victim(5)
    x = images(7, 3)
    labels = model(x).argmax(dim=1)
    out = attack.augment(model, x, labels, 0)
    assert out.shape == (21, *x.shape[1:])
    assert float((out - x.repeat_interleave(3, dim=0)).abs().max()) <= 0.1 + 1e-6
    with torch.no_grad():
        predicted = model(out).argmax(dim=1).view(7, 3)
    assert bool((predicted != labels[:, None]).any())
    if step == "stealguard":
        assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_repeat_divides_the_distinct_inputs() -> None:
    box = RecordingBlackBox(random_victim(), budget=60, device="cpu")
    _attack("jbda", images(40), seed_size=5, repeat=3).run(box, 60)
    sent = box.sent().flatten(1)
    assert box.queries_used == 60
    assert torch.unique(sent, dim=0).shape[0] <= 20


def test_same_seed_same_replica_and_queries() -> None:
    results = []
    for _ in range(2):
        box = RecordingBlackBox(random_victim(), budget=40, device="cpu")
        replica = _attack("jbda", images(30), seed_size=5, seed=3).run(box, 40)
        results.append((box.sent(), [p.detach().clone() for p in replica.parameters()]))
    assert torch.equal(results[0][0], results[1][0])
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))


@pytest.mark.parametrize("name", NAMES)
def test_parameters_registry_and_json(name: str) -> None:
    attack = _attack(name, images(5), kappa=10)
    params = attack.params()
    assert json.loads(json.dumps(params)) == params
    assert params["kappa"] == 10 and params["epochs"] == 2 and params["optimizer"] == "sgd"
    assert {"seed_size", "tau", "kappa", "sigma", "train_on", "repeat", "replica_arch"} <= set(attacks.parameters(name))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"seed_size": 0}, "seed_size"),
        ({"step_size": 0.0}, "step_size"),
        ({"tau": 0}, "tau"),
        ({"kappa": 0}, "kappa"),
        ({"round_lr": -1.0}, "round_lr"),
        ({"train_on": "labels"}, "train_on"),
        ({"repeat": 0}, "repeat"),
        ({"optimizer": "rmsprop"}, "optimizer"),
    ],
)
def test_bad_parameters_name_themselves(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _attack("jbda", images(5), **params)


def test_defaults_are_the_published_schedule() -> None:
    attack = JBDA(queryset=images(5))
    assert (attack.seed_size, attack.step_size, attack.tau, attack.kappa, attack.round_epochs) == (100, 0.1, 5, None, 20)
    assert (attack.epochs, attack.optimizer, attack.lr, attack.batch_size) == (100, "sgd", 0.01, 64)
    top3 = JBTop3(queryset=images(5))
    assert (top3.targets, top3.radius, top3.alpha, top3.steps) == (3, 0.1, 0.01, 8)


@pytest.fixture(scope="module")
def digits_victim():
    from stealguard.harness import fit_victim

    torch.set_num_threads(1)
    train = data.load_dataset("digits", split="train")
    test = data.load_dataset("digits", split="test")
    victim_part, query_part = data.split_dataset(train, 0.5, 0, stratify=True)
    model, _ = fit_victim(victim_part, test, arch="mlp", seed=0, device="cpu", progress=False)
    return model, query_part, test


@pytest.mark.parametrize("name", NAMES)
def test_steals_the_digits_victim_well_above_chance(name: str, digits_victim) -> None:
    model, query_part, test = digits_victim
    box = BlackBox(model, budget=600, device="cpu")
    attack = attacks.create(name, queryset=query_part, replica_arch="mlp", seed_size=50, epochs=30,
                            device="cpu", progress=False)
    replica = attack.run(box, 600)
    accuracy = models.accuracy_on(replica, *test.tensors(), device="cpu")
    assert box.queries_used == 600
    assert accuracy > 0.6, accuracy
