"""``random_noise:space=logit`` against a transcription of the MAD reference's random-noise baseline.

Transcribed from ``defenses/victim/bb_randnoise.py`` (tribhuvanesh/prediction-poisoning),
``RandomNoise.compute_noise`` with its default ``strat='uniform'``: ``z = log(y / (1 - y))``
(``ReverseSigmoid.inv_sigmoid``, no clamp); ``deltaz = rand_like(z) * 2 eps / K^(1/p)``; each row
projected by ``MAD.project_ydist_constraint`` (``"l1"``: ``euclidean_proj_l1ball`` of
``defenses/utils/projection.py``, the sort-based simplex projection of Duchi et al. applied to
``|v|`` when ``||v||_1 > eps``, signs restored; ``"l2"``: ``eps * v / max(||v||_2, eps)``);
``ytilde = sigmoid(z + deltaz)`` divided by its row sum; the answer is ``y + (ytilde - y)``.
The transcription runs in float64 on the library's float32 draws, so draws, not rounding, are compared.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import stealguard.defenses as D
from stealguard.defenses.random_noise import hashed_uniform, input_keys, project_to_ball

# ---- transcription of bb_randnoise.py and projection.py -------------------------------------


def simplex_projection_sorted(v: np.ndarray, radius: float) -> np.ndarray:
    if v.sum() == radius and (v >= 0).all():
        return v
    descending = np.sort(v)[::-1]
    partial = np.cumsum(descending)
    last = np.nonzero(descending * np.arange(1, len(v) + 1) > partial - radius)[0][-1]
    theta = (partial[last] - radius) / (last + 1.0)
    return np.clip(v - theta, 0, None)


def l1_ball_projection(v: np.ndarray, radius: float) -> np.ndarray:
    magnitude = np.abs(v)
    if magnitude.sum() <= radius:
        return v
    return simplex_projection_sorted(magnitude, radius) * np.sign(v)


def reference_answer(y: torch.Tensor, uniform: torch.Tensor, epsilon: float, norm: str) -> torch.Tensor:
    """The reference's ``y_prime`` for clean posteriors ``y`` and its ``rand_like`` draws ``uniform`` (N, K)."""
    logits = torch.log(y / (1 - y))
    rows, classes = logits.shape
    power = int(norm[-1])
    deltaz = uniform.clone() * ((2 * epsilon) / np.power(classes, 1.0 / power))
    for i in range(rows):
        if norm == "l1":
            deltaz[i] = torch.tensor(l1_ball_projection(deltaz[i].numpy(), epsilon))
        else:
            deltaz[i] = epsilon * deltaz[i] / deltaz[i].norm(p=2).clamp(min=epsilon)
    ytilde = torch.sigmoid(logits + deltaz)
    ytilde = ytilde / ytilde.sum(dim=1)[:, None]
    return y + (ytilde - y)


# ---- inputs ------------------------------------------------------------------------------------


def posteriors(rows: int, classes: int, seed: int) -> torch.Tensor:
    """Softmax rows at several temperatures plus a one-hot row and a row with an exact zero (float64)."""
    gen = torch.Generator().manual_seed(seed)
    scales = torch.linspace(0.3, 6.0, rows - 2, dtype=torch.float64).unsqueeze(1)
    soft = torch.softmax(scales * torch.randn(rows - 2, classes, generator=gen, dtype=torch.float64), dim=1)
    onehot = torch.zeros(1, classes, dtype=torch.float64)
    onehot[0, 1] = 1.0
    zero = torch.softmax(torch.randn(1, classes, generator=gen, dtype=torch.float64), dim=1)
    zero[0, 0] = 0.0
    return torch.cat([soft, onehot, zero / zero.sum()])


def draws(rows: int, classes: int, seed: int, calls: int = 1) -> list[torch.Tensor]:
    """What ``rand_like`` on the reference's float32 posterior returns after ``torch.manual_seed(seed)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [torch.rand(rows, classes).double() for _ in range(calls)]


@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("epsilon", [0.05, 0.5, 2.0, 10.0])
@pytest.mark.parametrize("classes", [2, 3, 10])
def test_same_answers_as_the_reference_for_the_same_generator(norm, epsilon, classes):
    y = posteriors(8, classes, seed=classes)
    seed = 11
    defense = D.create("random_noise", space="logit", epsilon=epsilon, norm=norm, seed=seed)
    x = torch.zeros(8, 3)
    for uniform in draws(8, classes, seed, calls=2):
        torch.testing.assert_close(defense(x, y), reference_answer(y, uniform, epsilon, norm), rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_consistent_mode_is_the_reference_function_of_keyed_draws(norm):
    y = posteriors(6, 5, seed=2)
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(3))
    defense = D.create("random_noise", space="logit", epsilon=1.0, norm=norm, consistent=True, seed=9)
    uniform = hashed_uniform(input_keys(x, 9), 5)
    torch.testing.assert_close(defense(x, y), reference_answer(y, uniform, 1.0, norm), rtol=0, atol=1e-12)


def test_float32_posteriors_match_the_reference_to_float32_round_off():
    y = posteriors(6, 10, seed=4).float()
    y = y / y.sum(dim=1, keepdim=True)
    defense = D.create("random_noise", space="logit", epsilon=0.5, seed=5)
    (uniform,) = draws(6, 10, seed=5)
    expected = reference_answer(y.double(), uniform, 0.5, "l1").float()
    torch.testing.assert_close(defense(torch.zeros(6, 1), y), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_batched_ball_projection_matches_the_reference_row_by_row(norm):
    gen = torch.Generator().manual_seed(0)
    values = torch.cat([torch.randn(20, 7, generator=gen, dtype=torch.float64) * 2, torch.rand(5, 7, generator=gen,
                        dtype=torch.float64) * 0.05])
    ours = project_to_ball(values, epsilon=0.7, norm=norm)
    for row, projected in zip(values, ours):
        if norm == "l1":
            expected = torch.tensor(l1_ball_projection(row.numpy(), 0.7))
        else:
            expected = 0.7 * row / row.norm(p=2).clamp(min=0.7)
        torch.testing.assert_close(projected, expected, rtol=0, atol=1e-12)


def test_epsilon_is_a_logit_radius_the_distortion_in_probabilities_is_smaller():
    """The reference's eps is not an L1 distance between posteriors: the declared bound eps / 2 holds, usually loosely."""
    y = posteriors(200, 10, seed=6)
    defense = D.create("random_noise", space="logit", epsilon=1.0, seed=1)
    change = (defense(torch.zeros(200, 1), y) - y).abs().sum(dim=1)
    assert defense.budget() == ("l1", 0.5)
    assert float(change.max()) <= 0.5 and float(change.mean()) < 0.25
