"""``dcp:variant=authors`` against a transcription of the DCP authors' ``method_dcp``.

Transcribed from ``df/defenses.py`` (KacemKhaled/defending-extraction), ``method_dcp``: for each
swept value ``beta`` (passed as ``epsilons``), ``alpha = 1 / (1 + exp(1000 (max y - beta)))``,
``logits = log(clamp(y / (1 - y), 1e-12, 1 - 1e-12))``, ``r = beta (sigmoid(gamma logits) - 0.5)``,
``out = (y - alpha r) / sum``; ``get_queries.py`` passes ``gamma`` 0.2 (0.1 on CIFAR-100) and
``run_all.sh`` sweeps ``beta`` over 0 to 1.5. The transcription runs in the input's dtype, as the
authors' code does on its float32 softmax.
"""

from __future__ import annotations

import pytest
import torch

import stealguard.defenses as D

SWEEP = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5)
"""``epsilons_default`` of the authors' ``run_all.sh`` (DCP uses it)."""

# ---- transcription of method_dcp ------------------------------------------------------------


def reference_method_dcp(posterior: torch.Tensor, betas: tuple[float, ...], gamma: float) -> torch.Tensor:
    """Answers ``(N, len(betas), K)`` for the clean posterior ``(N, K)``, one per swept value."""
    sharpness = 1000
    top = posterior.max(dim=1)[0]
    answers = []
    for beta in betas:
        gate = torch.reciprocal(1 + torch.exp(sharpness * (top - beta))).unsqueeze(-1)
        inverse = torch.log(torch.clamp(posterior / (1 - posterior), min=1e-12, max=1 - 1e-12))
        noise = beta * (torch.sigmoid(gamma * inverse) - 0.5)
        answer = posterior - gate * noise
        answers.append((answer / answer.sum(-1).unsqueeze(-1)).unsqueeze(1))
    return torch.cat(answers, dim=1)


# ---- inputs ------------------------------------------------------------------------------------


def posteriors(classes: int, seed: int) -> torch.Tensor:
    """Rows from near-uniform to peaked, a one-hot row, a row with zeros, rows with top near 0.5 (float64)."""
    gen = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-1, 1.3, 12, dtype=torch.float64).unsqueeze(1)
    soft = torch.softmax(scales * torch.randn(12, classes, generator=gen, dtype=torch.float64), dim=1)
    onehot = torch.zeros(1, classes, dtype=torch.float64)
    onehot[0, -1] = 1.0
    zeros = torch.zeros(1, classes, dtype=torch.float64)
    zeros[0, :2] = torch.tensor([0.7, 0.3], dtype=torch.float64)
    half = torch.full((2, classes), 0.0, dtype=torch.float64)
    half[:, 0] = torch.tensor([0.5, 0.45], dtype=torch.float64)
    half[:, 1:] = (1 - half[:, :1]) / (classes - 1)
    return torch.cat([soft, onehot, zeros, half])


@pytest.mark.parametrize("gamma", [0.2, 0.1])
@pytest.mark.parametrize("classes", [2, 10, 100])
def test_same_answers_as_method_dcp_over_the_authors_sweep_float64(gamma, classes):
    y = posteriors(classes, seed=classes)
    expected = reference_method_dcp(y, SWEEP, gamma)
    for index, beta in enumerate(SWEEP):
        defense = D.create("dcp", variant="authors", beta=beta, gamma=gamma)
        torch.testing.assert_close(defense(torch.zeros(len(y), 1), y), expected[:, index], rtol=0, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.2, 0.1])
def test_same_answers_as_method_dcp_on_float32_softmax(gamma):
    logits = 4 * torch.randn(64, 10, generator=torch.Generator().manual_seed(1))
    y = torch.softmax(logits, dim=1)
    # the defense boundary passes rows whose sums are within 5e-7 of 1 (a float32 softmax) unchanged, as the
    # authors' code gets them; renormalising them would move the detector (slope nu / 4 = 250) by ~1e-5
    assert bool(((y.double().sum(dim=1) - 1).abs() <= 5e-7).all())
    expected = reference_method_dcp(y, SWEEP, gamma)
    for index, beta in enumerate(SWEEP):
        out = D.create("dcp", variant="authors", beta=beta, gamma=gamma)(torch.zeros(64, 1), y)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, expected[:, index], rtol=0, atol=1e-6)


def test_entries_above_one_half_get_no_noise_and_confident_rows_pass_unchanged():
    y = torch.tensor([[0.6, 0.3, 0.1], [0.35, 0.33, 0.32], [0.9, 0.05, 0.05]], dtype=torch.float64)
    out = D.create("dcp", variant="authors", beta=0.7, gamma=0.2)(torch.zeros(3, 1), y)
    torch.testing.assert_close(out, reference_method_dcp(y, (0.7,), 0.2)[:, 0], rtol=0, atol=1e-12)
    # row 0 (top 0.6 below the threshold 0.7): 0.6 is only divided by the new row sum, the others also grow
    ratio = out[0] / y[0]
    assert float(ratio[0]) < 1 and bool((ratio[1:] > ratio[0]).all())
    # row 2 (top 0.9 above the threshold): unchanged
    torch.testing.assert_close(out[2], y[2], rtol=0, atol=1e-12)


def test_paper_variant_differs_by_its_separate_threshold():
    """The paper's formula with tau = beta and the reference's clamp differs only where an entry exceeds 1/2."""
    y = torch.tensor([[0.3, 0.3, 0.4], [0.55, 0.3, 0.15]], dtype=torch.float64)
    authors = D.create("dcp", variant="authors", beta=0.6, gamma=0.2)(torch.zeros(2, 1), y)
    paper = D.create("dcp", tau=0.6, beta=0.6, gamma=0.2)(torch.zeros(2, 1), y)
    torch.testing.assert_close(authors[0], paper[0], rtol=0, atol=1e-6)
    assert float((authors[1] - paper[1]).abs().sum()) > 1e-3
