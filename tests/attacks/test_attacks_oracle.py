"""Oracle: exact budget accounting, batching, and the repeat-and-average evasion."""

from __future__ import annotations

import pytest
import torch

from stealguard import defenses
from stealguard.attacks import Oracle
from stealguard.blackbox import BlackBox

from ._fixtures import RecordingBlackBox, images, random_victim


@pytest.mark.parametrize(("budget", "repeat"), [(10, 1), (10, 3), (9, 3), (7, 7)])
def test_capacity_counts_every_repeat(budget: int, repeat: int) -> None:
    box = RecordingBlackBox(random_victim(), budget=budget, device="cpu")
    with Oracle(box, budget, repeat=repeat, batch_size=2, progress=False) as oracle:
        assert oracle.capacity == budget // repeat
        answers = oracle.ask(images(oracle.capacity))
        assert oracle.remaining == 0
        assert oracle.queries_issued == box.queries_used == (budget // repeat) * repeat <= budget
    assert answers.shape == (budget // repeat, 10)
    assert torch.allclose(answers.sum(dim=1), torch.ones(answers.shape[0]), atol=1e-5)
    assert max(batch.shape[0] for batch in box.batches) <= 2 * repeat


def test_asking_past_the_budget_sends_nothing() -> None:
    box = RecordingBlackBox(random_victim(), device="cpu")
    oracle = Oracle(box, 5, progress=False)
    oracle.ask(images(3))
    with pytest.raises(ValueError, match="asked about 3 inputs but only 2"):
        oracle.ask(images(3))
    assert box.queries_used == 3 and oracle.remaining == 2
    assert oracle.ask(images(0)).shape == (0, 10)


def test_repeat_larger_than_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="repeat=4 .* budget of 3"):
        Oracle(BlackBox(random_victim(), device="cpu"), 3, repeat=4)
    with pytest.raises(ValueError, match="repeat"):
        Oracle(BlackBox(random_victim(), device="cpu"), 3, repeat=0)


def test_repeated_answers_are_the_mean_of_the_sends() -> None:
    x = images(6)
    noisy = BlackBox(random_victim(), defenses.create("random_noise", epsilon=0.5, seed=3), device="cpu")
    averaged = Oracle(noisy, 18, repeat=3, batch_size=4, progress=False).ask(x)
    replay = BlackBox(random_victim(), defenses.create("random_noise", epsilon=0.5, seed=3), device="cpu")
    sends = [replay.query(torch.cat([chunk] * 3)).view(3, chunk.shape[0], -1) for chunk in x.split(4)]
    assert torch.allclose(averaged, torch.cat([s.mean(dim=0) for s in sends]), atol=1e-6)


def _distance_to_clean(consistent: bool, repeat: int) -> float:
    victim = random_victim(2)
    x = images(200, seed=5)
    with torch.no_grad():
        clean = torch.softmax(victim(x), dim=1)
    defense = defenses.create("random_noise", epsilon=0.5, consistent=consistent, seed=7)
    box = BlackBox(victim, defense, device="cpu")
    answers = Oracle(box, 200 * repeat, repeat=repeat, progress=False).ask(x)
    return float((answers - clean).abs().sum(dim=1).mean())


def test_repeat_averages_away_fresh_noise_but_not_consistent_noise() -> None:
    fresh_once, fresh_avg = _distance_to_clean(False, 1), _distance_to_clean(False, 16)
    consistent_once, consistent_avg = _distance_to_clean(True, 1), _distance_to_clean(True, 16)
    assert fresh_avg < 0.5 * fresh_once
    assert consistent_avg == pytest.approx(consistent_once, rel=1e-5)
