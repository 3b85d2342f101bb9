"""JBDA, JB-self and JB-top3 steps against a transcription of the MAD repository's JacobianAdversary.

Transcribed from ``defenses/adversary/jacobian.py`` (tribhuvanesh/prediction-poisoning):
``step_size * (-1) ** round(rho / tau)`` for lambda; ``fgsm_untargeted``: ``delta = eps *
sign(grad_x CE(F(x), y))`` clipped so that ``x + delta`` stays in [0, 1]; ``jbda`` queries
``x + delta`` and ``jbself`` ``x - delta``; ``pgd_linf_targ``: from ``delta = 0``, 8 times
``delta = clamp(delta + alpha * sign(grad F(x + delta)[:, t]), -eps, eps)`` (the target's
logit), query ``x + delta``; the targets are the substitute's classes sorted by logit,
the black box's label removed, first three. The reference works on normalised tensors; the
transcription runs on the same pixel tensors the library uses.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stealguard.attacks import JBDA, JBSelf, JBTop3
from tests.attacks._fixtures import images, random_victim

FAST = {"replica_arch": "mlp", "device": "cpu", "progress": False}


def fgsm_untargeted(model, inputs, targets, epsilon):
    inputs = inputs.clone().requires_grad_(True)
    loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    delta = epsilon * inputs.grad.detach().sign()
    return torch.min(torch.max(delta, -inputs.detach()), 1 - inputs.detach())


def pgd_linf_targ(model, inputs, y_targ, epsilon, alpha, num_iter=8):
    delta = torch.zeros_like(inputs, requires_grad=True)
    for _ in range(num_iter):
        yp = model(inputs + delta)
        loss = yp[:, y_targ].sum()
        loss.backward()
        delta.data = (delta + alpha * delta.grad.detach().sign()).clamp(-epsilon, epsilon)
        delta.grad.zero_()
    return delta.detach()


@pytest.mark.parametrize("tau", [1, 2, 3, 5, 6])
def test_lambda_flip_is_the_reference_round(tau):
    attack = JBDA(queryset=images(4), tau=tau, step_size=0.1, **FAST)
    assert attack.flip == "round"
    assert [attack.round_step(rho) for rho in range(30)] == [0.1 * (-1) ** round(rho / tau) for rho in range(30)]


@pytest.mark.parametrize("round_index", [0, 3, 7])
def test_jbda_step_is_fgsm_untargeted_plus_delta(round_index):
    model = random_victim(4)
    x = images(16, 9)
    labels = model(x).argmax(dim=1)
    attack = JBDA(queryset=images(4), **FAST)
    ours = attack.augment(model, x, labels, round_index)
    theirs = x + fgsm_untargeted(model, x, labels, attack.round_step(round_index))
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_jb_self_step_is_x_minus_delta_away_from_the_pixel_bounds():
    model = random_victim(4)
    x = images(16, 9) * 0.5 + 0.25  # interior: the reference clips delta for x + delta, not for x - delta
    labels = model(x).argmax(dim=1)
    attack = JBSelf(queryset=images(4), **FAST)
    ours = attack.augment(model, x, labels, 0)
    theirs = x - fgsm_untargeted(model, x, labels, attack.round_step(0))
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_jb_top3_step_is_pgd_linf_targ_on_the_target_logit():
    model = random_victim(5)
    x = images(6, 3)
    labels = model(x).argmax(dim=1)
    attack = JBTop3(queryset=images(4), **FAST)
    assert attack.step == "reference"
    ours = attack.augment(model, x, labels, 0)
    rows = []
    for i in range(x.shape[0]):
        order = torch.argsort(model(x[i : i + 1])[0], descending=True)
        order = order[order != labels[i]]
        for c in order[:3]:
            rows.append(x[i : i + 1] + pgd_linf_targ(model, x[i : i + 1], c, epsilon=0.1, alpha=0.01))
    torch.testing.assert_close(ours, torch.cat(rows), atol=1e-6, rtol=0)
