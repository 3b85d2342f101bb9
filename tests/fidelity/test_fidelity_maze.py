"""MAZE's ``variant="reference"`` against a transcription of the authors' code.

Transcribed from sanjaykariyappa/MAZE: ``src/models/conv3_gen.py`` (linear -> BN ->
up x2 -> conv -> BN -> LeakyReLU -> up x2 -> conv -> BN -> LeakyReLU -> conv ->
``BatchNorm2d(C, affine=True)`` -> tanh, returning ``(x, x_pre)``), and one iteration of
``src/attacks/maze.py`` with ``attack_utils.py::zoge_backward``: the generator step perturbs
``x_pre`` along unit directions, ``grad_est = sum_i (d / m) (L_i - L_0) / mu * u_i / B`` with
``L = -KL(T || S)`` per sample and the student in train mode, ``x_pre.backward(grad_est)``,
SGD step (momentum 0.9, weight decay 5e-4); clone step 0 reuses the generator's ``x`` and
the victim's answers on it, later clone steps draw fresh batches; the last clone batch
joins the replay memory; ``iter_exp`` replay steps over a shuffled pass, cycled. The
reference feeds ``tanh`` outputs in [-1, 1] to models that normalise MNIST to [-1, 1]; the
library's victims take pixels, so the transcription's victim is ``T(t) = V((t + 1) / 2)``.
Random draws are taken in the library's order (the reference's own RNG stream cannot be
reproduced without its data loaders), so the test pins the algorithm, not the stream.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from stealguard.attacks import MAZE
from stealguard.attacks.generator import ImageGenerator
from stealguard.attacks.zeroth_order import random_unit_directions
from stealguard.blackbox import BlackBox
from tests.attacks._fixtures import SHAPE, K, random_victim


class Conv3Gen(nn.Module):
    """Transcription of MAZE's ``conv3_gen`` (width parameterised: 2w and w channels instead of 128 and 64)."""

    def __init__(self, z_dim, start_dim, out_channels, width):
        super().__init__()
        self.linear = nn.Linear(z_dim, 2 * width * start_dim**2)
        self.shape = (-1, 2 * width, start_dim, start_dim)
        self.bn0 = nn.BatchNorm2d(2 * width)
        self.up1 = nn.Upsample(scale_factor=2)
        self.conv1 = nn.Conv2d(2 * width, 2 * width, 3, stride=1, padding=1)
        self.bn1 = nn.BatchNorm2d(2 * width)
        self.relu1 = nn.LeakyReLU(0.2, inplace=True)
        self.up2 = nn.Upsample(scale_factor=2)
        self.conv2 = nn.Conv2d(2 * width, width, 3, stride=1, padding=1)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.LeakyReLU(0.2, inplace=True)
        self.conv3 = nn.Conv2d(width, out_channels, 3, stride=1, padding=1)
        self.bn3 = nn.BatchNorm2d(out_channels, affine=True)

    def forward(self, x):
        x = self.bn0(self.linear(x).view(self.shape))
        x = self.relu1(self.bn1(self.conv1(self.up1(x))))
        x = self.relu2(self.bn2(self.conv2(self.up2(x))))
        x_pre = self.bn3(self.conv3(x))
        return torch.tanh(x_pre), x_pre


def kl_div_logits(teacher_probs, student_logits, reduction="batchmean"):
    return F.kl_div(F.log_softmax(student_logits, dim=1), teacher_probs, reduction=reduction)


def test_generator_is_conv3_gen_with_its_final_batchnorm():
    torch.manual_seed(0)
    ours = ImageGenerator((3, 16, 16), latent_dim=12, width=6, final_norm="batchnorm_affine")
    theirs = Conv3Gen(12, 4, 3, 6)
    with torch.no_grad():
        for mine, ref in zip(ours.parameters(), theirs.parameters(), strict=True):
            ref.copy_(mine.reshape(ref.shape) + 0.01 * torch.randn_like(ref))
            mine.copy_(ref.reshape(mine.shape))
    z = torch.randn(5, 12, generator=torch.Generator().manual_seed(1))
    x, x_pre = theirs(z)
    pre = ours.pre_activation(z)
    torch.testing.assert_close(pre, x_pre, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.to_pixels(pre), (x + 1) / 2, atol=1e-5, rtol=1e-5)
    # buffers move identically in train mode
    for mine, ref in zip(ours.buffers(), theirs.buffers(), strict=True):
        torch.testing.assert_close(mine, ref, atol=1e-5, rtol=1e-5)


def _student() -> nn.Module:
    torch.manual_seed(11)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, K))


def test_one_iteration_matches_the_reference_loop():
    B, m, mu, latent, width, seed = 8, 3, 0.1, 6, 4, 5  # a large mu keeps float32 rounding out of (L_i - L_0) / mu
    lr_s, lr_g, replay_steps = 0.05, 0.02, 3
    victim = random_victim(2)
    student0 = _student()
    attack = MAZE(replica_factory=lambda: copy.deepcopy(student0), variant="reference", batch_size=B, directions=m,
                  smoothing=mu, latent_dim=latent, generator_width=width, student_steps=2, generator_steps=1,
                  student_lr=lr_s, generator_lr=lr_g, replay_steps=replay_steps, seed=seed, device="cpu", progress=False)
    cost = B * ((2 - 1) + (1 + m) * 1)
    assert attack.queries_per_iteration() == cost
    box = BlackBox(victim, budget=cost, device="cpu")
    ours = attack.run(box, cost)
    assert box.queries_used == cost and attack.report()["iterations"] == 1

    # ---- the reference iteration, random draws in the library's order
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        G = ImageGenerator(SHAPE, latent_dim=latent, width=width, final_norm="batchnorm_affine")
    S = copy.deepcopy(student0)
    rng = torch.Generator().manual_seed(seed)

    def T(t):  # the victim on tanh outputs (the student below likewise takes (t + 1) / 2)
        with torch.no_grad():
            return torch.softmax(victim((t + 1) / 2), dim=1)

    optS = torch.optim.SGD(S.parameters(), lr=lr_s, momentum=0.9, weight_decay=5e-4)
    optG = torch.optim.SGD(G.parameters(), lr=lr_g, momentum=0.9, weight_decay=5e-4)
    S.train(), G.train()
    # (1) generator: zoge_backward
    z = torch.randn(B, latent, generator=rng)
    x_pre = G.pre_activation(z)
    x = torch.tanh(x_pre)
    optG.zero_grad()
    u_all = random_unit_directions(m * B, SHAPE, rng).view(m, B, *SHAPE)
    d = x.shape[1:].numel()
    grad_est = torch.zeros_like(x_pre)
    with torch.no_grad():
        lossG = -kl_div_logits(T(x), S((x + 1) / 2), reduction="none").sum(dim=1)
        for i in range(m):
            x_mod = torch.tanh(x_pre + mu * u_all[i])
            lossG_mod = -kl_div_logits(T(x_mod), S((x_mod + 1) / 2), reduction="none").sum(dim=1)
            grad_est += ((d / m) * (lossG_mod - lossG) / mu).view(-1, 1, 1, 1) * u_all[i]
    grad_est /= B
    x_pre.backward(grad_est)
    optG.step()
    # (2) clone steps: the first reuses x
    for c in range(2):
        with torch.no_grad():
            if c != 0:
                x = torch.tanh(G.pre_activation(torch.randn(B, latent, generator=rng)))
            x = x.detach()
            Tout = T(x)
        lossS = kl_div_logits(Tout, S((x + 1) / 2))
        optS.zero_grad()
        lossS.backward()
        optS.step()
    # (4) experience replay over the memory [last clone batch]
    ds_x, ds_y = (x + 1) / 2, Tout
    batches = list(torch.randperm(B, generator=rng).split(B))
    for c in range(replay_steps):
        index = batches[c % len(batches)]
        lossS = kl_div_logits(ds_y[index], S(ds_x[index]))
        optS.zero_grad()
        lossS.backward()
        optS.step()

    for mine, ref in zip(attack.generator.parameters(), G.parameters(), strict=True):
        torch.testing.assert_close(mine, ref, atol=1e-6, rtol=1e-4)
    for mine, ref in zip(ours.buffers(), S.buffers(), strict=True):
        torch.testing.assert_close(mine.float(), ref.float(), atol=1e-5, rtol=1e-4)
    for mine, ref in zip(ours.parameters(), S.parameters(), strict=True):
        torch.testing.assert_close(mine, ref, atol=1e-5, rtol=1e-4)


def test_reference_replay_cycles_one_shuffled_pass_and_keeps_last_batches_only():
    attack = MAZE(replica_arch="mlp", variant="reference", batch_size=4, replay_steps=5, device="cpu", progress=False)
    assert attack.replay_size is None
    for step in range(3):  # three student batches in one iteration: only the last is remembered
        attack.remember(torch.full((4, *SHAPE), float(step)), torch.full((4, K), 1.0 / K))
    attack.replay(_student(), torch.optim.SGD(_student().parameters(), lr=0.0), torch.Generator().manual_seed(0))
    assert attack.replay_filled == 4
    assert torch.equal(attack._buffer_x[:4], torch.full((4, *SHAPE), 2.0))
    batches = attack.replay_batches(torch.Generator().manual_seed(1))
    assert len(batches) == 5 and all(torch.equal(b, batches[0]) for b in batches)
