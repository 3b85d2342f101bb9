"""resnet9 / resnet9_w64: shapes, widths, the GroupNorm variant, DP-SGD, safetensors round trip, MAD's last layer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from stealguard.defenses.jacobian import forward_with_features
from stealguard.models import ModelCard, create, load_model, save_model
from stealguard.models.resnet9 import ResNet9, build_resnet9


def _build(arch: str = "resnet9", shape: tuple[int, int, int] = (3, 32, 32), k: int = 10, norm: str = "batch") -> nn.Module:
    torch.manual_seed(0)
    return create(arch, input_shape=shape, num_classes=k, norm=norm)


def _count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (3, 8, 8), (3, 64, 48)])
def test_logits_shape_for_any_side_of_at_least_8(shape: tuple[int, int, int]) -> None:
    model = _build(shape=shape, k=7).eval()
    with torch.no_grad():
        assert model(torch.rand(3, *shape)).shape == (3, 7)
    assert isinstance(list(model.modules())[-1], nn.Linear)


def test_widths_and_parameter_counts() -> None:
    half = _build("resnet9")
    full = _build("resnet9_w64")
    assert half.net.fc.in_features == 256 and full.net.fc.in_features == 512
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert 3.5 < count(full) / count(half) < 4.5
    assert build_resnet9((3, 32, 32), 10, width=8).fc.in_features == 64


def test_last_linear_produces_the_logits_for_mad() -> None:
    model = _build().eval()
    x = torch.rand(4, 3, 32, 32)
    logits, features = forward_with_features(model, x)
    assert logits.shape == (4, 10) and features.shape == (4, 256)


def test_training_mode_batchnorm_and_channels_last() -> None:
    model = _build().train()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8 and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    out = model(torch.rand(6, 3, 32, 32))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_group_norm_variant_has_no_batchnorm_and_same_shapes() -> None:
    batch = _build(norm="batch")
    group = _build(norm="group")
    assert _count(batch, nn.BatchNorm2d) == 8 and _count(group, nn.BatchNorm2d) == 0
    assert _count(group, nn.GroupNorm) == 8
    norms = [m for m in group.modules() if isinstance(m, nn.GroupNorm)]
    assert all(m.num_groups == 32 for m in norms)
    group.eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        rows = torch.cat([group(x[i : i + 1]) for i in range(4)])
        torch.testing.assert_close(group(x), rows, atol=1e-5, rtol=1e-5)


def test_dp_sgd_trains_the_group_norm_variant() -> None:
    from stealguard.models.dp import fit_dp

    model = _build(k=3)
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8) % 3
    result = fit_dp(
        model, x, y, noise_multiplier=1.0, max_grad_norm=1.0, epochs=1, batch_size=4, lr=0.05,
        schedule="onecycle", device="cpu", progress=False,
    )
    assert result.norm == "group" and _count(result.model, nn.BatchNorm2d) == 0
    with torch.no_grad():
        assert torch.isfinite(result.model(x)).all()


def test_safetensors_round_trip(tmp_path: Path) -> None:
    model = _build(k=4).eval()
    card = ModelCard(arch="resnet9", dataset="cifar10:half=0,seed=0", input_shape=(3, 32, 32), num_classes=4)
    save_model(model, card, tmp_path)
    loaded, loaded_card = load_model(tmp_path)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert loaded_card.dataset == "cifar10:half=0,seed=0"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: create("resnet9", input_shape=(3, 7, 32), num_classes=10), ValueError, r"resnet9 .* needs H and W >= 8"),
        (lambda: create("resnet9_w64", input_shape=(1, 4, 4), num_classes=10), ValueError, r"resnet9_w64 .* needs H and W >= 8"),
        (lambda: build_resnet9((3, 32, 32), 10, width=0), ValueError, r"width must be an integer in \[1, inf\], got 0"),
        (lambda: build_resnet9((3, 32, 32), 10, width=2.0), TypeError, r"width must be an integer"),
    ],
)
def test_errors(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_module_is_the_documented_network() -> None:
    net = ResNet9(3, 10, 16)
    assert [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)] == [16, 32, 32, 32, 64, 128, 128, 128]
