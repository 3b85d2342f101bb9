"""The Gram matrices behind MAD against brute-force autograd (K calls per sample, G stacked)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from stealguard.defenses.jacobian import (
    GramGeometry,
    LastLayerGeometry,
    forward_with_features,
    full_gram,
    full_gram_func,
    surrogate_gram,
)
from stealguard.defenses.mad_reference import reference_jacobian


def brute_gram(surrogate: nn.Module, x: torch.Tensor, jacobian: str = "full") -> torch.Tensor:
    grams = []
    for i in range(x.shape[0]):
        jac = reference_jacobian(surrogate, x[i : i + 1], jacobian=jacobian)
        grams.append(jac @ jac.T)
    return torch.stack(grams)


def mlp(k: int = 7) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, k)).eval()


def conv_bn() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1, stride=1), nn.ReLU(), nn.Conv2d(5, 3, 1, bias=False), nn.Flatten(),
        nn.Linear(3 * 3 * 3, 6),
    ).eval()
    net[1].running_mean.normal_()
    net[1].running_var.uniform_(0.5, 2.0)
    return net


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("make,shape", [(mlp, (5, 6)), (conv_bn, (4, 2, 8, 8))])
def test_full_gram_matches_brute_force(make, shape):
    net = make()
    x = torch.randn(*shape)
    expected = brute_gram(net, x)
    assert relative_error(full_gram(net, x, chunk_size=2), expected) < 1e-5
    assert relative_error(full_gram_func(net, x, chunk_size=3), expected) < 1e-5


def test_unsupported_layer_falls_back_to_torch_func():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 4)).eval()
    x = torch.randn(3, 5)
    assert relative_error(full_gram(net, x), brute_gram(net, x)) < 1e-5


def test_last_layer_closed_form_matches_brute_force():
    net = mlp()
    x = torch.randn(6, 6)
    expected = brute_gram(net, x, jacobian="last_layer")
    assert relative_error(surrogate_gram(net, x, jacobian="last_layer"), expected) < 1e-5


@settings(max_examples=40, deadline=None)
@given(k=st.integers(2, 30), n=st.integers(1, 6), seed=st.integers(0, 2**16), peaked=st.floats(0.1, 20.0))
def test_structured_geometry_equals_gram_geometry(k, n, seed, peaked):
    """The O(K) last-layer formulas equal the generic Gram formulas, for vertices and for growing sets."""
    gen = torch.Generator().manual_seed(seed)
    p = torch.softmax(torch.randn(n, k, generator=gen, dtype=torch.float64), dim=1)
    y = torch.softmax(peaked * torch.randn(n, k, generator=gen, dtype=torch.float64), dim=1)
    structured = LastLayerGeometry(p, torch.rand(n, generator=gen, dtype=torch.float64) + 0.5)
    generic = GramGeometry(structured.gram())
    torch.testing.assert_close(structured.vertex_cosines(y), generic.vertex_cosines(y), atol=1e-9, rtol=1e-7)
    assert torch.equal(structured.best_vertex(y), generic.best_vertex(y))
    a, b = structured.subset_state(y), generic.subset_state(y)
    for _ in range(min(k - 1, 4)):
        outside = ~a.members
        torch.testing.assert_close(a.candidate_cosines()[outside], b.candidate_cosines()[outside], atol=1e-9, rtol=1e-7)
        step = (torch.rand(n, k, generator=gen, dtype=torch.float64) - a.members.double()).argmax(dim=1)
        a.add(step)
        b.add(step)


def test_subset_cosines_match_explicit_sets():
    net = mlp(5)
    x = torch.randn(3, 6)
    y = torch.softmax(torch.randn(3, 5, dtype=torch.float64), dim=1)
    gram = brute_gram(net, x)
    search = GramGeometry(gram).subset_state(y)
    first = torch.tensor([0, 2, 4])
    search.add(first)
    cosines = search.candidate_cosines()
    for i in range(3):
        for j in range(5):
            s = torch.zeros(5, dtype=torch.float64)
            s[first[i]] = 1
            s[j] = 1
            expected = (s @ gram[i] @ y[i]) / torch.sqrt((s @ gram[i] @ s) * (y[i] @ gram[i] @ y[i]))
            if j != first[i]:
                assert abs(float(cosines[i, j] - expected)) < 1e-9


def test_last_layer_requires_linear_output():
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    with pytest.raises(ValueError, match="last nn.Linear must produce"):
        forward_with_features(net, torch.randn(2, 4))
    with pytest.raises(ValueError, match="nn.Linear output layer"):
        forward_with_features(nn.Sequential(nn.Tanh()), torch.randn(2, 4))
