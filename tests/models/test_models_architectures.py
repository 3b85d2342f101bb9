"""Registry and architectures: shapes, last module, per-sample independence, shape errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from stealguard import models
from stealguard.models import Classifier, create, names, register

# (arch, input_shape) pairs every architecture must take.
SHAPES = [
    ("mlp", (1, 8, 8)),
    ("mlp", (3, 32, 32)),
    ("lenet", (1, 28, 28)),
    ("lenet", (1, 32, 32)),
    ("lenet", (3, 32, 32)),
    ("vgg16_bn", (3, 32, 32)),
    ("vgg16_bn", (1, 32, 32)),
    ("resnet18", (3, 32, 32)),
    ("resnet18", (1, 32, 32)),
    ("resnet9", (3, 32, 32)),
    ("resnet9", (1, 28, 28)),
    ("resnet9_w64", (3, 32, 32)),
]


def _build(arch: str, shape: tuple[int, int, int], k: int = 7, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    return create(arch, input_shape=shape, num_classes=k)


def test_names_cover_the_required_architectures() -> None:
    assert {"mlp", "lenet", "vgg16_bn", "resnet18"} <= set(names())
    assert names() == sorted(names())


def test_every_registered_arch_is_exercised() -> None:
    assert set(names()) == {arch for arch, _ in SHAPES}


def test_every_export_imports() -> None:
    for name in models.__all__:
        assert hasattr(models, name), name


@pytest.mark.parametrize(("arch", "shape"), SHAPES)
def test_output_shape_and_last_linear(arch: str, shape: tuple[int, int, int]) -> None:
    model = _build(arch, shape, k=7).eval()
    assert isinstance(model, Classifier)
    assert model.input_shape == shape and model.num_classes == 7
    last = list(model.modules())[-1]
    assert isinstance(last, nn.Linear) and last.out_features == 7
    with torch.no_grad():
        out = model(torch.rand(3, *shape))
    assert out.shape == (3, 7) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    with torch.no_grad():
        assert model(torch.rand(0, *shape)).shape == (0, 7)


@pytest.mark.parametrize(("arch", "shape"), SHAPES)
def test_batch_equals_row_by_row_in_eval_mode(arch: str, shape: tuple[int, int, int]) -> None:
    model = _build(arch, shape).eval()
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        batch = model(x)
        rows = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(batch, rows, atol=1e-5, rtol=1e-5)


@settings(max_examples=15, deadline=None)
@given(
    arch_shape=st.sampled_from([("mlp", (1, 8, 8)), ("lenet", (1, 28, 28)), ("lenet", (2, 17, 23))]),
    n=st.integers(1, 9),
    k=st.integers(2, 30),
    seed=st.integers(0, 2**16),
)
def test_small_nets_batch_equals_row_by_row(arch_shape: tuple[str, tuple[int, int, int]], n: int, k: int, seed: int) -> None:
    arch, shape = arch_shape
    model = _build(arch, shape, k=k, seed=seed).eval()
    x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        batch = model(x)
        rows = torch.cat([model(x[i : i + 1]) for i in range(n)])
    assert batch.shape == (n, k)
    torch.testing.assert_close(batch, rows, atol=1e-5, rtol=1e-5)


def test_normalisation_lives_in_the_model() -> None:
    plain = _build("mlp", (3, 8, 8), seed=3)
    torch.manual_seed(3)
    normed = create("mlp", input_shape=(3, 8, 8), num_classes=7, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.5])
    x = torch.rand(5, 3, 8, 8)
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(normed(x), plain((x - mean) / std))


def test_lenet_flatten_size_follows_the_input() -> None:
    assert list(_build("lenet", (1, 28, 28)).modules())[-3].in_features == 800
    assert list(_build("lenet", (3, 32, 32)).modules())[-3].in_features == 1250


def test_unknown_arch_lists_names() -> None:
    with pytest.raises(ValueError, match=r"unknown architecture 'alexnet'.*lenet.*mlp.*resnet18.*vgg16_bn"):
        create("alexnet", input_shape=(3, 32, 32), num_classes=10)


@pytest.mark.parametrize(
    ("arch", "shape", "why"),
    [
        ("lenet", (1, 8, 8), r"lenet needs H and W >= 16"),
        ("lenet", (1, 28, 12), r"lenet needs H and W >= 16"),
        ("vgg16_bn", (1, 28, 28), r"vgg16_bn .* needs 32x32 inputs"),
        ("resnet18", (3, 64, 64), r"resnet18 .* needs 32x32 inputs"),
    ],
)
def test_arch_refuses_shapes_it_cannot_take(arch: str, shape: tuple[int, int, int], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        create(arch, input_shape=shape, num_classes=10)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"input_shape": (28, 28), "num_classes": 10}, ValueError, r"input_shape must have 3 entries"),
        ({"input_shape": (1, 0, 8), "num_classes": 10}, ValueError, r"input_shape H must be an integer in \[1, inf\], got 0"),
        ({"input_shape": "1x8x8", "num_classes": 10}, TypeError, r"input_shape must be a \(C, H, W\) tuple"),
        ({"input_shape": (1, 8.0, 8), "num_classes": 10}, TypeError, r"input_shape H must be an integer"),
        ({"input_shape": (1, 8, 8), "num_classes": 1}, ValueError, r"num_classes must be an integer in \[2, inf\], got 1"),
        ({"input_shape": (1, 8, 8), "num_classes": 10, "mean": [0.1, 0.2]}, ValueError, r"mean and std must have 1 entries"),
        ({"input_shape": (1, 8, 8), "num_classes": 10, "std": [0.0]}, ValueError, r"std entries must be > 0"),
    ],
)
def test_bad_create_params(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        create("mlp", **kwargs)


def test_register_refuses_duplicates_and_non_callables() -> None:
    with pytest.raises(ValueError, match=r"architecture 'mlp' is already registered"):
        register("mlp", lambda shape, k: nn.Linear(1, k))
    with pytest.raises(TypeError, match=r"builder must be callable"):
        register("new-arch", "not a function")  # type: ignore[arg-type]
