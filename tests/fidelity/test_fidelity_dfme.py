"""DFME's ``variant="reference"`` against a transcription of the authors' code.

Transcribed from cake-lab/datafree-model-extraction: ``dfme/network/gan.py::GeneratorA``
(``final_bn=True``: linear -> BN -> up x2 -> conv -> BN -> LeakyReLU -> up x2 -> conv -> BN
-> LeakyReLU -> conv -> ``BatchNorm2d(nc, affine=False)``, tanh unless ``pre_x``) and
``dfme/approximate_gradients.py::estimate_gradient_objective`` as ``run_cifar_dfme.sh``
runs it (``loss=l1``, ``no_logits=1``, ``logit_correction=mean``, ``forward_differences=1``):
unit directions on the pre-tanh output, a zero direction appended last, ``tanh`` applied
to the points, ``L = -mean_k |S(x)_k - (log_softmax(V(x)) - mean)_k|``, estimate
``dim * mean_i (L_i - L_0) / eps * u_i / (K * N)``.

The student's raw logits meet the victim's centred log-probabilities, as in the reference
(``variant="stealguard"``, the earlier version, centres the student's too). One deliberate
difference is pinned here rather than hidden (``docs/fidelity.md``): the library divides the
estimate by N, not K * N, a constant factor the generator's Adam optimiser is invariant to
(up to its epsilon).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stealguard.attacks import DFME
from stealguard.attacks.generator import ImageGenerator
from stealguard.attacks.zeroth_order import estimate_gradient, random_unit_directions
from tests.attacks._fixtures import SHAPE, K, random_victim


class GeneratorA(nn.Module):
    """Transcription of DFME's ``GeneratorA`` with ``final_bn=True``."""

    def __init__(self, nz, ngf, nc, img_size):
        super().__init__()
        self.init_size = img_size // 4
        self.l1 = nn.Sequential(nn.Linear(nz, ngf * 2 * self.init_size**2))
        self.conv_blocks0 = nn.Sequential(nn.BatchNorm2d(ngf * 2))
        self.conv_blocks1 = nn.Sequential(nn.Conv2d(ngf * 2, ngf * 2, 3, stride=1, padding=1), nn.BatchNorm2d(ngf * 2),
                                          nn.LeakyReLU(0.2, inplace=True))
        self.conv_blocks2 = nn.Sequential(nn.Conv2d(ngf * 2, ngf, 3, stride=1, padding=1), nn.BatchNorm2d(ngf),
                                          nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(ngf, nc, 3, stride=1, padding=1),
                                          nn.BatchNorm2d(nc, affine=False))

    def forward(self, z, pre_x=False):
        out = self.l1(z.view(z.shape[0], -1))
        out = out.view(out.shape[0], -1, self.init_size, self.init_size)
        img = self.conv_blocks0(out)
        img = nn.functional.interpolate(img, scale_factor=2)
        img = self.conv_blocks1(img)
        img = nn.functional.interpolate(img, scale_factor=2)
        img = self.conv_blocks2(img)
        return img if pre_x else torch.tanh(img)


def test_generator_is_generator_a_with_final_batchnorm_without_affine():
    torch.manual_seed(0)
    ours = ImageGenerator((3, 16, 16), latent_dim=10, width=5, final_norm="batchnorm")
    theirs = GeneratorA(10, 5, 3, 16)
    with torch.no_grad():
        for mine, ref in zip(ours.parameters(), theirs.parameters(), strict=True):
            ref.copy_(mine.reshape(ref.shape) + 0.01 * torch.randn_like(ref))
            mine.copy_(ref.reshape(mine.shape))
    z = torch.randn(6, 10, generator=torch.Generator().manual_seed(2))
    pre = ours.pre_activation(z)
    torch.testing.assert_close(pre, theirs(z, pre_x=True), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.to_pixels(pre), (torch.tanh(pre) + 1) / 2)
    assert not ours.block2[-1].affine


def estimate_gradient_objective(victim_logits_fn, clone_model, x, u, epsilon, num_classes):
    """The reference estimator given its directions ``u`` (N, m, C, S, S)."""
    N, m = u.shape[0], u.shape[1]
    C, S = x.shape[1], x.shape[2]
    dim = S**2 * C
    with torch.no_grad():
        u = torch.cat((u, torch.zeros(N, 1, C, S, S)), dim=1)
        evaluation_points = (x.view(-1, 1, C, S, S) + epsilon * u).view(-1, C, S, S)
        evaluation_points = torch.tanh(evaluation_points)
        pred_victim = victim_logits_fn(evaluation_points)
        pred_clone = clone_model(evaluation_points)
        pred_victim = F.log_softmax(pred_victim, dim=1).detach()
        pred_victim -= pred_victim.mean(dim=1).view(-1, 1).detach()
        loss_values = -F.l1_loss(pred_clone, pred_victim, reduction="none").mean(dim=1).view(-1, m + 1)
        differences = (loss_values[:, :-1] - loss_values[:, -1].view(-1, 1)).view(-1, m, 1, 1, 1)
        gradient_estimates = 1 / epsilon * differences * u[:, :-1]
        gradient_estimates *= dim
        return gradient_estimates.mean(dim=1).view(-1, C, S, S) / (num_classes * N)


def test_gradient_estimate_is_the_reference_on_pre_tanh_points():
    n, m, eps = 5, 4, 0.05
    victim = random_victim(3)
    torch.manual_seed(4)
    student = nn.Sequential(nn.Flatten(), nn.Linear(64, K)).eval()
    with torch.no_grad():
        student[1].bias.add_(0.5)  # raw logits with a row mean far from 0: the reference does not centre them
    attack = DFME(replica_arch="mlp", variant="reference", device="cpu", progress=False)
    x_pre = 1.5 * torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(5))

    def loss(points):
        pixels = ImageGenerator.to_pixels(points)
        with torch.no_grad():
            return -attack.disagreement(student(pixels), torch.softmax(victim(pixels), dim=1))

    ours = estimate_gradient(loss, x_pre, directions=m, epsilon=eps, generator=torch.Generator().manual_seed(6), clip=False) / n
    u = random_unit_directions(m * n, SHAPE, torch.Generator().manual_seed(6)).view(m, n, *SHAPE).transpose(0, 1)
    theirs = estimate_gradient_objective(lambda t: victim((t + 1) / 2), lambda t: student((t + 1) / 2), x_pre, u, eps, K)
    torch.testing.assert_close(ours, K * theirs, atol=1e-5, rtol=1e-3)


def test_only_the_earlier_variant_centres_the_students_logits():
    logits = torch.randn(4, K, generator=torch.Generator().manual_seed(7))
    answers = torch.softmax(torch.randn(4, K, generator=torch.Generator().manual_seed(8)), dim=1)
    shifted = logits + 3.0
    reference = DFME(replica_arch="mlp", variant="reference", device="cpu", progress=False)
    earlier = DFME(replica_arch="mlp", variant="stealguard", device="cpu", progress=False)
    torch.testing.assert_close(earlier.disagreement(shifted, answers), earlier.disagreement(logits, answers))
    assert bool((reference.disagreement(shifted, answers) > reference.disagreement(logits, answers) + 1).all())
