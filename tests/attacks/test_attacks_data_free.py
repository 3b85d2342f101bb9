"""DFME and MAZE: exact budgets, generator range, losses safe on zeros, replay buffer, stealing digits."""

from __future__ import annotations

import json

import pytest
import torch

from stealguard import attacks, data, defenses, models
from stealguard.attacks import MAZE
from stealguard.attacks.data_free import schedule_factor
from stealguard.attacks.generator import ImageGenerator
from stealguard.attacks.maze import kl_divergence
from stealguard.blackbox import BlackBox

from ._fixtures import RecordingBlackBox, random_victim

FAST = {"replica_arch": "mlp", "device": "cpu", "progress": False, "batch_size": 8, "latent_dim": 8, "generator_width": 4}
NAMES = ["dfme", "maze"]


def _attack(name: str, **params):
    return attacks.create(name, **{**FAST, **params})


@pytest.mark.parametrize("variant", ["reference", "stealguard"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("budget", [1, 8, 17, 100, 333])
def test_spends_exactly_the_budget_with_valid_pixels(name: str, budget: int, variant: str) -> None:
    box = RecordingBlackBox(random_victim(), budget=budget, device="cpu")
    attack = _attack(name, directions=2, query_batch_size=16, variant=variant)
    replica = attack.run(box, budget)
    assert box.queries_used == budget
    sent = box.sent()
    assert sent.shape[0] == budget
    assert float(sent.min()) >= 0.0 and float(sent.max()) <= 1.0
    assert max(b.shape[0] for b in box.batches) <= 16
    assert not replica.training


@pytest.mark.parametrize("variant", ["reference", "stealguard"])
@pytest.mark.parametrize("name", NAMES)
def test_iterations_follow_the_query_cost(name: str, variant: str) -> None:
    attack = _attack(name, directions=3, student_steps=2, generator_steps=1, variant=variant)
    reused = 1 if name == "maze" and variant == "reference" else 0  # MAZE's code reuses the generator batch
    cost = 8 * 4 + (2 - reused) * 8
    assert attack.queries_per_iteration() == cost
    box = BlackBox(random_victim(), device="cpu")
    attack.run(box, cost * 5)
    assert attack.report() == {"iterations": 5, "queries_per_iteration": cost}


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (2, 7, 9)])
def test_generator_makes_images_of_the_victims_shape(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    gen = ImageGenerator(shape, latent_dim=16, width=8)
    with torch.no_grad():
        x = gen(gen.sample(5, torch.Generator().manual_seed(0)))
    assert x.shape == (5, *shape)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    with pytest.raises(ValueError, match="input height"):
        ImageGenerator((1, 3, 8))


@pytest.mark.parametrize("generator_steps", [0, 1])
def test_only_generator_steps_move_the_generator(generator_steps: int) -> None:
    attack = _attack("maze", directions=3, generator_steps=generator_steps, generator_lr=1e-2, seed=2)
    attack.run(BlackBox(random_victim(1), device="cpu"), 200)
    assert attack.generator is not None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2 + 1)
        initial = ImageGenerator((1, 8, 8), latent_dim=8, width=4, final_norm=attack.settings["final_norm"])
    same = [torch.equal(a, b) for a, b in zip(initial.parameters(), attack.generator.parameters(), strict=True)]
    assert all(same) == (generator_steps == 0)


@pytest.mark.parametrize("defense", ["label_only", "topk:k=1", "none"])
@pytest.mark.parametrize("name", NAMES)
def test_losses_stay_finite_when_a_defense_returns_zeros(name: str, defense: str) -> None:
    spec_name, _, rest = defense.partition(":")
    params = {k: int(v) for k, v in (item.split("=") for item in rest.split(","))} if rest else {}
    box = BlackBox(random_victim(), defenses.create(spec_name, **params), device="cpu")
    replica = _attack(name, student_lr=0.05).run(box, 200)
    assert all(bool(torch.isfinite(p).all()) for p in replica.parameters())


def test_kl_is_zero_on_agreement_and_finite_on_zeros() -> None:
    logits = torch.randn(4, 5)
    assert torch.allclose(kl_divergence(torch.softmax(logits, 1), logits), torch.zeros(4), atol=1e-6)
    one_hot = torch.nn.functional.one_hot(torch.arange(4), 5).float()
    values = kl_divergence(one_hot, torch.full((4, 5), -1e4).scatter(1, torch.arange(4)[:, None], 1e4))
    assert bool(torch.isfinite(values).all()) and bool((values >= -1e-6).all())


def test_replay_buffer_is_bounded_and_keeps_pairs() -> None:
    attack = MAZE(replay_size=10, variant="stealguard", **FAST)
    x = torch.arange(25, dtype=torch.float32).view(25, 1, 1, 1).expand(25, 1, 2, 2).clone()
    y = torch.nn.functional.one_hot(torch.arange(25) % 5, 5).float()
    for part in range(5):
        attack.remember(x[part * 5 : (part + 1) * 5], y[part * 5 : (part + 1) * 5])
    assert attack.replay_filled == 10
    kept = attack._buffer_x[:, 0, 0, 0].long()
    assert len(set(kept.tolist())) == 10
    assert torch.equal(attack._buffer_y.argmax(dim=1), kept % 5)


def test_schedules() -> None:
    assert [schedule_factor("step", p) for p in (0.0, 0.1, 0.3, 0.5, 0.9)] == pytest.approx([1, 0.3, 0.09, 0.027, 0.027])
    assert schedule_factor("cosine", 0.0) == 1.0 and schedule_factor("cosine", 1.0) == pytest.approx(0.0)
    assert schedule_factor("none", 0.7) == 1.0


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_student(name: str) -> None:
    weights = []
    for _ in range(2):
        replica = _attack(name, seed=4).run(BlackBox(random_victim(), device="cpu"), 150)
        weights.append([p.detach().clone() for p in replica.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights))


@pytest.mark.parametrize("name", NAMES)
def test_params_defaults_and_errors(name: str) -> None:
    attack = attacks.create(name)
    params = attack.params()
    assert json.loads(json.dumps(params)) == params
    expected = {"dfme": (256, 1, 1e-3, "step"), "maze": (128, 10, 1e-3, "cosine")}[name]
    assert (attack.batch_size, attack.directions, attack.smoothing, attack.schedule) == expected
    assert (attack.student_lr, attack.generator_lr, attack.student_steps, attack.generator_steps) == (0.1, 1e-4, 5, 1)
    for bad, match in [({"directions": 0}, "directions"), ({"smoothing": 0.0}, "smoothing"), ({"schedule": "x"}, "schedule")]:
        with pytest.raises(ValueError, match=match):
            attacks.create(name, **bad)
    with pytest.raises(ValueError, match="replica_arch or replica_factory"):
        attacks.create(name, progress=False, device="cpu").run(BlackBox(random_victim(), device="cpu"), 10)


@pytest.fixture(scope="module")
def digits_victim():
    from stealguard.harness import fit_victim

    train = data.load_dataset("digits", split="train")
    test = data.load_dataset("digits", split="test")
    model, _ = fit_victim(train, test, arch="mlp", seed=0, device="cpu", progress=False)
    return model, test


@pytest.mark.parametrize("name", NAMES)
def test_beats_a_random_labels_replica_on_digits(name: str, digits_victim) -> None:
    model, test = digits_victim
    test_x, test_y = test.tensors()
    torch.manual_seed(0)
    baseline = models.create("mlp", input_shape=(1, 8, 8), num_classes=10)
    models.fit(baseline, torch.rand(400, 1, 8, 8), torch.randint(0, 10, (400,)), epochs=5, lr=0.05, device="cpu", progress=False)
    chance = models.accuracy_on(baseline, test_x, test_y, device="cpu")
    box = BlackBox(model, budget=30_000, device="cpu")
    replica = attacks.create(name, replica_arch="mlp", batch_size=64, device="cpu", progress=False).run(box, 30_000)
    accuracy = models.accuracy_on(replica, test_x, test_y, device="cpu")
    assert box.queries_used == 30_000
    assert accuracy > chance + 0.2, (accuracy, chance)
