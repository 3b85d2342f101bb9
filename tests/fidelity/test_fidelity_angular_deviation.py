"""The paper's angular deviation on the attacker's model against its definition by explicit autograd.

Orekondy et al. (ICLR 2020, Sec. 4, Fig. 3) measure the angle between the attacker's
parameter gradient on the defended answer and on the clean posterior. The transcription
takes, per sample, ``g(t) = grad_w [-sum_k t_k log softmax(F(x; w))_k]`` by autograd over
every parameter and returns ``arccos(<g(y), g(y~)> / (|g(y)| |g(y~)|))``; the library
computes the same angle from the Gram matrix ``G G^T`` (:func:`gradient_angles`) and
records it during the replica's training (:class:`~stealguard.attacks.angle_probe.AngleProbe`).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import stealguard.defenses as D
from stealguard.attacks import Knockoff
from stealguard.attacks.angle_probe import steps_per_epoch
from stealguard.blackbox import BlackBox
from stealguard.defenses.jacobian import gradient_angles
from stealguard.models.training import _batches
from tests.attacks._fixtures import K, images, random_victim


def _net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.Tanh(), nn.Linear(12, K)).eval()


def explicit_angles(model, x, y, y_tilde):
    out = []
    for i in range(x.shape[0]):
        grads = []
        for target in (y[i], y_tilde[i]):
            loss = -(target * F.log_softmax(model(x[i : i + 1]), dim=1)[0]).sum()
            grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))]).double())
        cos = torch.dot(grads[0], grads[1]) / (grads[0].norm() * grads[1].norm())
        out.append(torch.arccos(cos.clamp(-1, 1)))
    return torch.stack(out)


def _posteriors(n, seed):
    return torch.softmax(2 * torch.randn(n, K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=1)


def test_gradient_angles_are_the_explicit_parameter_gradient_angles():
    net = _net()
    x = images(7, 2)
    y, y_tilde = _posteriors(7, 3), _posteriors(7, 4)
    torch.testing.assert_close(gradient_angles(net, x, y, y_tilde), explicit_angles(net, x, y, y_tilde), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n,batch", [(10, 4), (9, 4), (8, 4), (5, 8), (1, 4)])
def test_steps_per_epoch_matches_fit_batching(n, batch):
    assert steps_per_epoch(n, batch) == len(_batches(torch.arange(n), batch))


def test_knockoff_records_one_angle_per_epoch_zero_without_defense():
    results = {}
    for defense in ("none", "mad"):
        victim = random_victim(0)
        params = {"epsilon": 1.0, "surrogate": random_victim(9)} if defense == "mad" else {}
        box = BlackBox(victim, D.create(defense, **params), budget=40, device="cpu")
        attack = Knockoff(queryset=images(40), replica_arch="mlp", epochs=3, batch_size=16, angle_probe=12,
                          device="cpu", progress=False)
        attack.run(box, 40)
        history = attack.report()["training_angular_deviation"]
        assert [row["epoch"] for row in history] == [0, 1, 2, 3]
        results[defense] = [row["mean_deg"] for row in history]
    assert all(value == pytest.approx(0.0, abs=1e-3) for value in results["none"])
    assert all(value > 1.0 for value in results["mad"])


def test_recorded_initial_angle_is_the_explicit_one_on_the_probe():
    victim, surrogate = random_victim(0), random_victim(9)
    defense = D.create("mad", epsilon=1.0, surrogate=surrogate)
    box = BlackBox(victim, defense, budget=30, device="cpu")
    attack = Knockoff(queryset=images(30), replica_arch="mlp", epochs=1, angle_probe=6, device="cpu", progress=False, seed=2)
    replica = attack.run(box, 30)
    assert attack.params()["angle_probe"] == 6
    first = attack.report()["training_angular_deviation"][0]["mean_deg"]
    # rebuild the initial replica and the probe: the first six training inputs in query order
    initial = attack.make_replica(box, attack.images, seed=attack.seed).eval()
    order = attack._sample(30, torch.Generator().manual_seed(attack.seed))[:6]
    x = attack.images[order]
    with torch.no_grad():
        clean = torch.softmax(victim(x), dim=1)
    defended = defense(x, clean)
    expected = math.degrees(float(explicit_angles(initial, x, clean.double(), defended.double()).mean()))
    assert first == pytest.approx(expected, abs=1e-3)
    assert replica is not initial
