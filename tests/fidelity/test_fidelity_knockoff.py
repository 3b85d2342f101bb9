"""Knockoff's ``training="reference"`` against a transcription of knockoffnets' replica training.

Transcribed from ``knockoff/adversary/train.py`` and ``knockoff/utils/model.py::train_model``
(tribhuvanesh/knockoffnets at b830985, the commit the MAD repository pins), run as the MAD
README's step 3 does (``--epochs 50``): ``optim.SGD(params, lr, momentum=momentum)`` (the
``sgdm`` choice: no weight decay), ``StepLR(step_size=60, gamma=0.1)`` stepped with
``scheduler.step(epoch)`` after epochs 1..E, soft cross-entropy, batch 64. The mini-batch
order is the library's (the reference's DataLoader order is not part of the method).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from stealguard import models
from stealguard.attacks.knockoff import TRAINING, Knockoff
from stealguard.models.training import _batches
from tests.attacks._fixtures import SHAPE, K, images


def _knockoffnets_train(model, inputs, targets, *, epochs, batch_size, lr, momentum, lr_step, lr_gamma, seed):
    """The reference loop (transcription), with the library's shuffling for a like-for-like batch order."""
    optimizer = torch.optim.SGD(model.parameters(), lr, momentum=momentum)
    generator = torch.Generator().manual_seed(seed)
    lrs = []
    model.train()
    for epoch in range(1, epochs + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        for index in _batches(torch.randperm(inputs.shape[0], generator=generator), batch_size):
            optimizer.zero_grad()
            loss = torch.mean(torch.sum(-targets[index] * F.log_softmax(model(inputs[index]), dim=1), 1))
            loss.backward()
            optimizer.step()
        # StepLR(step_size, gamma).step(epoch): lr = base * gamma ** (epoch // step_size) from the next epoch on
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_gamma ** (epoch // lr_step)
    return lrs


def test_reference_preset_is_the_mad_repository_run_of_knockoffnets():
    preset = TRAINING["reference"]
    assert preset == {"epochs": 50, "batch_size": 64, "lr": 0.01, "optimizer": "sgd", "momentum": 0.5,
                      "weight_decay": 0.0, "schedule": "none"}


def test_reference_training_matches_the_transcription():
    torch.manual_seed(0)
    start = models.create("mlp", input_shape=SHAPE, num_classes=K)
    x = images(96, seed=4)
    answers = torch.softmax(torch.randn(96, K, generator=torch.Generator().manual_seed(5)) * 2, dim=1)
    attack = Knockoff(queryset=x, replica_arch="mlp", training="reference", device="cpu", progress=False, seed=7)
    ours = attack.train(copy.deepcopy(start), x, answers)

    theirs = copy.deepcopy(start)
    preset = TRAINING["reference"]
    lrs = _knockoffnets_train(theirs, x, answers, epochs=preset["epochs"], batch_size=preset["batch_size"], lr=preset["lr"],
                              momentum=preset["momentum"], lr_step=60, lr_gamma=0.1, seed=7)
    assert set(lrs) == {0.01}  # StepLR(60) never fires in 50 epochs: the constant schedule is exact
    for mine, ref in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-6)


def test_stealguard_preset_is_the_earlier_schedule_and_explicit_values_override():
    attack = Knockoff(queryset=images(8), replica_arch="mlp", training="stealguard", device="cpu", progress=False)
    assert (attack.optimizer, attack.lr, attack.epochs, attack.schedule) == ("adam", 1e-3, 30, "cosine")
    attack = Knockoff(queryset=images(8), replica_arch="mlp", training="reference", epochs=3, device="cpu", progress=False)
    assert (attack.optimizer, attack.momentum, attack.weight_decay, attack.epochs) == ("sgd", 0.5, 0.0, 3)
    assert attack.params()["training"] == "reference"


def test_unknown_training_preset_is_rejected():
    with pytest.raises(ValueError, match="training"):
        Knockoff(queryset=images(8), replica_arch="mlp", training="adam", device="cpu", progress=False)
