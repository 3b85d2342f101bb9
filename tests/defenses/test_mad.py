"""MAD and MAD-argmax against the per-sample reference, plus their specific guarantees."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import stealguard.defenses as D
from stealguard.defenses.jacobian import GramGeometry
from stealguard.defenses.mad import greedy_argmax_preserving_set
from stealguard.defenses.mad_reference import reference_jacobian, reference_mad, reference_objective
from stealguard.metrics import mad_objective


def surrogate(k: int, d: int = 6, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, k)).eval()


def lenet_like(k: int = 10) -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(6 * 4 * 4, 20), nn.ReLU(), nn.Linear(20, k),
    ).eval()


def posteriors(n: int, k: int, seed: int, scale: float = 3.0, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(scale * torch.randn(n, k, generator=gen, dtype=torch.float64), dim=1).to(dtype)


@pytest.mark.parametrize("jacobian", ["last_layer", "full"])
@pytest.mark.parametrize("norm,epsilon", [("l1", 0.3), ("l1", 1.2), ("l2", 0.2), ("l2", 1.4)])
def test_mad_equals_per_sample_reference(jacobian, norm, epsilon):
    net = lenet_like()
    x = torch.rand(6, 1, 16, 16)
    y = posteriors(6, 10, seed=4, dtype=torch.float64)
    fast = D.create("mad", epsilon=epsilon, norm=norm, surrogate=net, jacobian=jacobian)(x, y)
    slow = reference_mad(net, x, y, epsilon=epsilon, norm=norm, jacobian=jacobian)
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(2, 12), seed=st.integers(0, 10_000), scale=st.floats(0.1, 10.0))
def test_extreme_vertex_maximises_brute_force_objective(k, seed, scale):
    """With epsilon = 2 (l1) the answer is the vertex itself, and no vertex scores higher under an explicit G."""
    net = surrogate(k, seed=seed % 7)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(seed))
    y = posteriors(3, k, seed, scale, dtype=torch.float64)
    out = D.create("mad", epsilon=2.0, surrogate=net, jacobian="full")(x, y)
    for i in range(3):
        jac = reference_jacobian(net, x[i : i + 1])
        best = max(float(reference_objective(jac, y[i], torch.eye(k, dtype=torch.float64)[j])) for j in range(k))
        assert float(reference_objective(jac, y[i], out[i])) >= best - 1e-6


def naive_greedy(gram: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Reference-style greedy set growth for one sample, scoring each candidate set explicitly."""
    k = y.shape[0]

    def cos(members):
        s = torch.zeros(k, dtype=torch.float64)
        s[list(members)] = 1
        return float((s @ gram @ y) / torch.sqrt((s @ gram @ s) * (y @ gram @ y)))

    chosen = [int(y.argmax())]
    best_set, best = list(chosen), cos(chosen)
    while len(chosen) < k:
        j = min((c for c in range(k) if c not in chosen), key=lambda c: cos(chosen + [c]))
        chosen.append(j)
        if cos(chosen) < best:
            best_set, best = list(chosen), cos(chosen)
    mask = torch.zeros(k, dtype=torch.bool)
    mask[best_set] = True
    return mask


@pytest.mark.parametrize("k", [3, 7, 12])
def test_greedy_set_search_equals_naive_greedy(k):
    net = surrogate(k)
    x = torch.randn(4, 6)
    y = posteriors(4, k, seed=k, dtype=torch.float64)
    grams = torch.stack([reference_jacobian(net, x[i : i + 1]) @ reference_jacobian(net, x[i : i + 1]).T for i in range(4)])
    fast = greedy_argmax_preserving_set(GramGeometry(grams), y, y.argmax(dim=1))
    for i in range(4):
        assert torch.equal(fast[i], naive_greedy(grams[i], y[i]))


@pytest.mark.parametrize("k", [2, 10, 11, 30, 45, 100, 1000])
@pytest.mark.parametrize("jacobian", ["last_layer", "full"])
def test_mad_argmax_keeps_top1_for_any_k(k, jacobian):
    """The reference implementation fails for 11 <= K <= 45; this one works up to K = 1000."""
    if jacobian == "full" and k > 100:
        pytest.skip("full Jacobian at K = 1000 is covered by the benchmark, too slow for a unit test")
    net = surrogate(k)
    x = torch.randn(8, 6)
    y = posteriors(8, k, seed=k, scale=2.0)
    out = D.create("mad_argmax", epsilon=1.5, surrogate=net, jacobian=jacobian)(x, y)
    assert torch.equal(out.argmax(dim=1), y.argmax(dim=1))
    assert float((out.double().sum(dim=1) - 1).abs().max()) <= 1e-6
    assert float((out.double() - y.double()).abs().sum(dim=1).max()) <= 1.5 + 1e-6


def test_mad_argmax_deviates_more_than_keeping_the_label_alone():
    """The chosen set's target scores at least the target {top} alone (the greedy start)."""
    k = 10
    net = surrogate(k)
    x = torch.randn(16, 6)
    y = posteriors(16, k, seed=5, dtype=torch.float64)
    defense = D.create("mad_argmax", epsilon=2.0, surrogate=net)
    gram = defense.geometry(x).gram()
    out = defense(x, y)
    alone = torch.nn.functional.one_hot(y.argmax(dim=1), k).double()
    assert bool((mad_objective(gram, y, out) >= mad_objective(gram, y, alone) - 1e-9).all())


def test_oracles():
    k = 6
    net = surrogate(k)
    x = torch.randn(5, 6)
    y = posteriors(5, k, seed=1, dtype=torch.float64)
    argmin = D.create("mad", epsilon=2.0, surrogate=net, oracle="argmin")(x, y)
    assert torch.equal(argmin.argmax(dim=1), y.argmin(dim=1))
    first = D.create("mad", epsilon=2.0, surrogate=net, oracle="random", seed=7)(x, y)
    again = D.create("mad", epsilon=2.0, surrogate=net, oracle="random", seed=7)(x, y)
    assert torch.equal(first, again)
    assert bool(((first == 0) | (first == 1)).all())


def test_budget_is_exhausted_when_the_vertex_is_far():
    """alpha is the largest step within budget: the distortion equals epsilon unless the vertex is closer."""
    net = surrogate(10)
    y = posteriors(32, 10, seed=2, dtype=torch.float64)
    out = D.create("mad", epsilon=0.4, surrogate=net)(torch.randn(32, 6), y)
    torch.testing.assert_close((out - y).abs().sum(dim=1), torch.full((32,), 0.4, dtype=torch.float64))
    l2 = D.create("mad", epsilon=0.25, norm="l2", surrogate=net)(torch.randn(32, 6), y)
    torch.testing.assert_close((l2 - y).norm(dim=1), torch.full((32,), 0.25, dtype=torch.float64))


def test_surrogate_follows_input_device_and_dtype_is_kept():
    net = surrogate(4)
    y = posteriors(3, 4, seed=0)
    out = D.create("mad", surrogate=net)(torch.randn(3, 6, dtype=torch.float64), y)
    assert out.dtype == torch.float32 and out.device == y.device


@pytest.mark.parametrize(
    "params,error,match",
    [
        ({}, ValueError, "needs surrogate"),
        ({"surrogate": "lenet"}, TypeError, "surrogate must be an nn.Module"),
        ({"epsilon": 0.0}, ValueError, r"epsilon must be in \(0, 2\]"),
        ({"epsilon": 2.5}, ValueError, r"epsilon must be in \(0, 2\]"),
        ({"epsilon": 1.5, "norm": "l2"}, ValueError, "epsilon must be in"),
        ({"norm": "kl"}, ValueError, "norm must be one of"),
        ({"jacobian": "middle"}, ValueError, "jacobian must be one of"),
        ({"oracle": "best"}, ValueError, "oracle must be one of"),
        ({"epsilon": math.nan}, ValueError, "epsilon must be finite"),
    ],
)
def test_bad_parameters_name_the_parameter(params, error, match):
    if params and "surrogate" not in params:
        params = {"surrogate": surrogate(3), **params}
    with pytest.raises(error, match=match):
        D.create("mad", **params)


def test_mad_argmax_rejects_vertex_oracles():
    with pytest.raises(ValueError, match="oracle must be one of 'extreme', 'random'"):
        D.create("mad_argmax", surrogate=surrogate(3), oracle="argmin")


def test_last_layer_mode_checks_the_surrogate_shape():
    with pytest.raises(ValueError, match="nn.Linear"):
        D.create("mad", surrogate=nn.Sequential(nn.Flatten()))
