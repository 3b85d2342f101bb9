"""MAD, MAD-argmax and the ``G = I`` ablation against a transcription of the authors' code.

Transcribed from ``defenses/victim/bb_mad.py`` (tribhuvanesh/prediction-poisoning) as the
README runs it (``objmax:True``, ``ydist:l1``, ``optim='linesearch'``): ``G`` stacks, per
class k, the gradient of ``-log_softmax(z)_k`` with respect to ``params[-2]`` (the weight of
the last linear layer); ``calc_objective`` is ``||u/|u| - v/|v|||^2`` with ``u = G^T y~``,
``v = G^T y``; ``oracle_extreme`` keeps the first vertex of largest objective;
``oracle_argmax_preserving`` (K <= 10) visits ``itertools.product([0, 1], repeat=K)`` and
keeps the first set of largest objective, targets ``(1_S + 1e-5 e_c) / sum``;
``closed_form_alpha_estimate`` is ``clamp(eps / (||y - y*||_p + 1e-7), 0, 1)``;
``disable_jacobian`` sets ``G = eye(K)``. The transcription computes in float64 where the
reference's argmax-preserving search uses float32 numpy, so near-ties do not depend on rounding.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import stealguard.defenses as D
from stealguard.defenses.mad import subset_masks

K = 6


def surrogate(k: int = K, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, k)).eval()


def posteriors(n: int, k: int, seed: int, scale: float = 3.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(scale * torch.randn(n, k, generator=gen, dtype=torch.float64), dim=1)


# ---- transcription of bb_mad.py --------------------------------------------------------------

def compute_jacobian_nll(x, model):
    z = model(x)
    nlls = -F.log_softmax(z, dim=1).mean(dim=0)
    weight = list(model.parameters())[-2]
    rows = [torch.autograd.grad(nlls[k], weight, retain_graph=True)[0].flatten().clone() for k in range(len(nlls))]
    return torch.stack(rows).double()


def calc_objective(ytilde, y, G):
    u = G.t() @ ytilde
    u = u / u.norm()
    v = G.t() @ y
    v = v / v.norm()
    return (u - v).norm() ** 2


def oracle_extreme(G, y):
    argmax_k, argmax_val = -1, -1.0
    for k in range(y.shape[0]):
        yk = torch.zeros_like(y)
        yk[k] = 1.0
        kval = calc_objective(yk, y, G)
        if kval > argmax_val:
            argmax_val, argmax_k = kval, k
    ystar = torch.zeros_like(y)
    ystar[argmax_k] = 1.0
    return ystar


def oracle_argmax_preserving(G, y):
    K = y.shape[0]
    max_k = int(y.argmax())
    G_np, y_np = G.numpy(), y.numpy()
    ystar, max_val = None, -1.0
    vertices = np.asarray(list(itertools.product([0, 1], repeat=K)), dtype=np.float64)
    vertices = vertices[vertices[:, max_k] > 0]
    for y_extreme in vertices:
        y_extreme[max_k] += 1e-5
        y_extreme = y_extreme / y_extreme.sum()
        u = G_np.T @ y_extreme
        u /= np.linalg.norm(u)
        v = G_np.T @ y_np
        v /= np.linalg.norm(v)
        kval = np.linalg.norm(u - v) ** 2
        if kval > max_val:
            max_val, ystar = kval, y_extreme
    return torch.tensor(ystar)


def linesearch(y, ystar, epsilon):
    alpha = (epsilon / ((y - ystar).norm(p=1) + 1e-7)).clamp(min=0.0, max=1.0)
    return (1 - alpha) * y + alpha * ystar


def reference_defense(model, x, probs, *, epsilon, oracle, disable_jacobian=False):
    out = []
    for i in range(x.shape[0]):
        y = probs[i].double()
        G = torch.eye(y.shape[0], dtype=torch.float64) if disable_jacobian else compute_jacobian_nll(x[i : i + 1], model)
        ystar = oracle_extreme(G, y) if oracle == "extreme" else oracle_argmax_preserving(G, y)
        out.append(linesearch(y, ystar, epsilon))
    return torch.stack(out)


# ---- tests -------------------------------------------------------------------------------------

@pytest.mark.parametrize("epsilon", [0.2, 0.5, 1.5])
def test_mad_matches_bb_mad(epsilon):
    net = surrogate()
    x = torch.randn(12, 8, generator=torch.Generator().manual_seed(1))
    y = posteriors(12, K, seed=2)
    ours = D.create("mad", epsilon=epsilon, surrogate=net)(x, y)
    theirs = reference_defense(net, x, y, epsilon=epsilon, oracle="extreme")
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("k", [3, 6, 10])
@pytest.mark.parametrize("epsilon", [0.3, 1.0])
def test_mad_argmax_exhaustive_matches_bb_mad(k, epsilon):
    net = surrogate(k, seed=k)
    x = torch.randn(10, 8, generator=torch.Generator().manual_seed(k))
    y = posteriors(10, k, seed=k + 1, scale=1.5)
    ours = D.create("mad_argmax", epsilon=epsilon, surrogate=net, search="auto")(x, y)
    theirs = reference_defense(net, x, y, epsilon=epsilon, oracle="argmax")
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    assert torch.equal(ours.argmax(dim=1), y.argmax(dim=1))


def test_auto_search_is_exhaustive_up_to_ten_classes_then_greedy():
    small = D.create("mad_argmax", epsilon=0.5, surrogate=surrogate(10), search="auto")
    assert small.search_for(10) == "exhaustive" and small.search_for(11) == "greedy"
    with pytest.raises(ValueError, match="search='exhaustive' supports K <= 16"):
        D.create("mad_argmax", epsilon=0.5, surrogate=surrogate(17), search="exhaustive").search_for(17)


def test_subset_masks_follow_itertools_product_order():
    expected = torch.tensor(list(itertools.product([0, 1], repeat=4)), dtype=torch.float64)
    assert torch.equal(subset_masks(4), expected)


@pytest.mark.parametrize("name,oracle", [("mad", "extreme"), ("mad_argmax", "argmax")])
def test_identity_jacobian_matches_disable_jacobian(name, oracle):
    x = torch.randn(9, 8, generator=torch.Generator().manual_seed(5))
    y = posteriors(9, K, seed=6, scale=2.0)
    extra = {"search": "auto"} if name == "mad_argmax" else {}
    ours = D.create(name, epsilon=0.6, jacobian="identity", **extra)(x, y)
    theirs = reference_defense(None, x, y, epsilon=0.6, oracle=oracle, disable_jacobian=True)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_identity_jacobian_mad_targets_the_least_likely_class():
    y = posteriors(20, K, seed=8)
    ours = D.create("mad", epsilon=2.0, jacobian="identity")(torch.zeros(20, 8), y)
    assert torch.equal(ours.argmax(dim=1), y.argmin(dim=1))


def test_exhaustive_search_in_row_blocks_equals_row_by_row():
    net = surrogate(8, seed=2)
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(3))
    y = posteriors(300, 8, seed=4, scale=1.5)
    defense = D.create("mad_argmax", epsilon=0.4, surrogate=net, search="exhaustive")
    batch = defense(x, y)
    rows = torch.cat([defense(x[i : i + 1], y[i : i + 1]) for i in range(0, 300, 37)])
    torch.testing.assert_close(batch[::37], rows, atol=1e-9, rtol=0)


def test_exhaustive_ties_do_not_depend_on_the_batch():
    """With K = 2 every cosine is exactly -1 or 1: float32 noise between batched and single rows must not pick the set."""
    net = surrogate(2, seed=1)
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(9))
    y = torch.tensor([[9.8743e-01, 1.2567e-02], [4.2082e-08, 1.0], [9.995e-01, 4.9692e-04], [1.0, 1.3031e-16]])
    y = y / y.sum(dim=1, keepdim=True)
    defense = D.create("mad_argmax", epsilon=0.5, surrogate=net, search="exhaustive")
    single = torch.cat([defense(x[i : i + 1], y[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(defense(x, y), single, atol=1e-6, rtol=0)
