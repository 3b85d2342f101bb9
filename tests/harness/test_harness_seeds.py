"""The defender's randomness is not the attacker's: MAD's surrogate never starts from the replica's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import stealguard.attacks.replica as replica_module
from stealguard import attacks, data
from stealguard.attacks import data_free
from stealguard.harness import experiment, fit_victim, run_attack
from tests.attacks._fixtures import CHEAP_SETTINGS

CHEAP = CHEAP_SETTINGS


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, data.ImageDataset, data.ImageDataset]:
    train = data.load_dataset("digits", split="train")
    victim_part, query_part = data.split_dataset(train, 0.5, 0, stratify=True)
    test = data.load_dataset("digits", split="test").subset(range(40))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("victim")
    fit_victim(victim_part, test, arch="mlp", epochs=1, seed=0, device="cpu", out=out, progress=False)
    torch.set_num_threads(threads)
    return out, query_part, test


def _snapshot(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_every_attack_has_a_cheap_setting() -> None:
    assert set(CHEAP) == set(attacks.names())


def _initial_weights(attack: str, setting, monkeypatch, **seeds: int) -> tuple[list, list]:
    """(replicas' initial weights, surrogate's weights) of one MAD run of ``attack``."""
    victim, queries, test = setting
    built: list[list[torch.Tensor]] = []
    surrogates: list[list[torch.Tensor]] = []

    def recording_build_replica(*args, **kwargs):
        model = original_build_replica(*args, **kwargs)
        built.append(_snapshot(model))
        return model

    def recording_build_defense(*args, **kwargs):
        defense, label = original_build_defense(*args, **kwargs)
        surrogates.append(_snapshot(defense.surrogate))
        return defense, label

    original_build_replica = replica_module.build_replica
    original_build_defense = experiment.build_defense
    monkeypatch.setattr(replica_module, "build_replica", recording_build_replica)
    monkeypatch.setattr(data_free, "build_replica", recording_build_replica)
    monkeypatch.setattr(experiment, "build_defense", recording_build_defense)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_attack(
            victim=victim, defense="mad:epsilon=0.5", attack=attack, attack_params=CHEAP[attack], queryset=queries,
            budget=60, device="cpu", progress=False, test_set=test, **seeds,
        )
    finally:
        torch.set_num_threads(threads)
    assert result["seed"] == seeds["seed"]
    assert len(surrogates) == 1 and built, "the run built no surrogate or no replica"
    return built, surrogates[0]


def _equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return [t.shape for t in a] == [t.shape for t in b] and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("attack", sorted(CHEAP))
def test_surrogate_differs_from_the_replicas_initial_weights(attack: str, setting, monkeypatch) -> None:
    built, surrogate = _initial_weights(attack, setting, monkeypatch, seed=0)
    assert not any(_equal(initial, surrogate) for initial in built)


def test_a_defense_seed_equal_to_the_seed_reproduces_the_shared_start(setting, monkeypatch) -> None:
    """The check above can fail: pinning both seeds equal gives the replica the surrogate's weights."""
    built, surrogate = _initial_weights("knockoff", setting, monkeypatch, seed=0, defense_seed=0)
    assert any(_equal(initial, surrogate) for initial in built)
