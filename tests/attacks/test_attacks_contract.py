"""The contract every registered attack keeps: exact budget, a replica of the right shape, same seed -> same replica."""

from __future__ import annotations

import pytest
import torch

from stealguard import attacks
from stealguard.blackbox import BlackBox

from ._fixtures import CHEAP_SETTINGS, SHAPE, K, images, random_victim

CHEAP = CHEAP_SETTINGS
BUDGET = 57
"""Not a multiple of any batch size above, so rounding errors in the query count show."""


def _attack(name: str, seed: int) -> attacks.Attack:
    params = dict(CHEAP[name], seed=seed, device="cpu", progress=False, replica_arch="mlp")
    if "queryset" in attacks.parameters(name):
        params["queryset"] = images(40, seed=3)
    return attacks.create(name, **params)


def _steal(name: str, seed: int) -> tuple[torch.nn.Module, BlackBox]:
    box = BlackBox(random_victim(), budget=BUDGET, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            replica = _attack(name, seed).run(box, BUDGET)
    finally:
        torch.set_num_threads(threads)
    return replica, box


def test_the_table_covers_every_registered_attack() -> None:
    assert set(CHEAP) == set(attacks.names())


@pytest.mark.parametrize("name", sorted(CHEAP))
def test_every_attack_spends_its_budget_exactly_and_is_reproducible(name: str) -> None:
    replica, box = _steal(name, seed=0)
    assert box.queries_used == BUDGET
    probe = images(6, seed=9)
    with torch.no_grad():
        first = replica.eval()(probe)
    assert first.shape == (6, K) and bool(torch.isfinite(first).all())
    again, _ = _steal(name, seed=0)
    with torch.no_grad():
        assert torch.equal(again.eval()(probe), first)
    assert tuple(getattr(replica, "input_shape", SHAPE)) == SHAPE
