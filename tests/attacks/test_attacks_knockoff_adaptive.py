"""Knockoff Nets with the adaptive policy: budget, arms from labels or clusters, reports, stealing on digits."""

from __future__ import annotations

import json

import pytest
import torch

from stealguard import data, models
from stealguard.attacks import Knockoff
from stealguard.attacks.knockoff import cluster_images
from stealguard.blackbox import BlackBox

from ._fixtures import RecordingBlackBox, images, random_victim

FAST = {"replica_arch": "mlp", "epochs": 1, "device": "cpu", "progress": False, "policy": "adaptive", "policy_batch": 4}


@pytest.mark.parametrize(("budget", "repeat"), [(1, 1), (13, 1), (30, 2), (31, 3)])
def test_spends_the_budget_in_policy_batches(budget: int, repeat: int) -> None:
    box = RecordingBlackBox(random_victim(), budget=budget, device="cpu")
    attack = Knockoff(queryset=images(20), repeat=repeat, **FAST)
    attack.run(box, budget)
    assert box.queries_used == (budget // repeat) * repeat
    assert max(b.shape[0] for b in box.batches) <= 4 * repeat
    report = attack.report()
    assert sum(report["arm_pulls"]) == budget // repeat
    assert json.loads(json.dumps(report)) == report


def test_arms_are_labels_when_the_queryset_has_them() -> None:
    digits = data.load_dataset("digits", split="test")
    attack = Knockoff(queryset=digits, **FAST)
    assert torch.equal(attack.arm_of_each_image(), digits.tensors()[1])
    clustered = Knockoff(queryset=digits, arms="clusters", num_clusters=4, **FAST).arm_of_each_image()
    assert clustered.shape == (len(digits),) and set(clustered.tolist()) == {0, 1, 2, 3}


def test_clusters_for_an_unlabelled_tensor_and_seeded() -> None:
    x = torch.cat([torch.zeros(10, 1, 8, 8), torch.ones(10, 1, 8, 8)]) + 0.01 * images(20)
    ids = cluster_images(x, 2, seed=0)
    assert len(set(ids[:10].tolist())) == 1 and len(set(ids[10:].tolist())) == 1 and ids[0] != ids[10]
    assert torch.equal(ids, cluster_images(x, 2, seed=0))
    assert cluster_images(x[:3], 10, seed=0).shape == (3,)
    with pytest.raises(ValueError, match="arms='labels' needs a query set with labels"):
        Knockoff(queryset=x, arms="labels", **FAST)


def test_same_seed_same_queries() -> None:
    sent = []
    for _ in range(2):
        box = RecordingBlackBox(random_victim(), device="cpu")
        Knockoff(queryset=images(30), seed=5, **FAST).run(box, 24)
        sent.append(box.sent())
    assert torch.equal(sent[0], sent[1])


@pytest.mark.parametrize(("params", "match"), [({"policy": "greedy"}, "policy"), ({"num_clusters": 1}, "num_clusters"),
                                              ({"reward": "x"}, "reward"), ({"policy_batch": 0}, "policy_batch")])
def test_bad_parameters(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Knockoff(queryset=images(5), **{**FAST, **params})


def test_random_policy_reports_nothing_and_params_say_the_policy() -> None:
    attack = Knockoff(queryset=images(5), replica_arch="mlp", epochs=1, device="cpu", progress=False)
    attack.run(BlackBox(random_victim(), device="cpu"), 5)
    assert attack.report() == {} and attack.params()["policy"] == "random"
    assert Knockoff(queryset=images(5), **FAST).params()["reward"] == "all"


def test_adaptive_knockoff_steals_digits_well_above_chance() -> None:
    from stealguard.harness import fit_victim

    train = data.load_dataset("digits", split="train")
    test = data.load_dataset("digits", split="test")
    victim_part, query_part = data.split_dataset(train, 0.5, 0, stratify=True)
    victim, _ = fit_victim(victim_part, test, arch="mlp", seed=0, device="cpu", progress=False)
    box = BlackBox(victim, budget=400, device="cpu")
    replica = Knockoff(queryset=query_part, replica_arch="mlp", policy="adaptive", device="cpu", progress=False).run(box, 400)
    assert box.queries_used == 400
    assert models.accuracy_on(replica, *test.tensors(), device="cpu") > 0.6
