"""The CIFAR-sized architectures quantize, stay close to float and round-trip bitwise (random weights, CPU)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from stealguard.models import ModelCard, create, load_model, names, quantize_victim, registry, save_model

SHAPE = (3, 32, 32)
K = 5
GROUP_DP = {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-5, "epsilon": 2.0, "accountant": "rdp", "norm": "group"}
RELATIVE_ERROR = 0.1


def _ensure_registered(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Architectures another module adds (``resnet9``) are checked once their file exists."""
    if arch in names():
        return
    try:
        module = importlib.import_module(f"stealguard.models.{arch}")
    except ImportError:
        pytest.skip(f"architecture {arch!r} does not exist yet")
    monkeypatch.setitem(registry._REGISTRY, arch, getattr(module, f"build_{arch}"))


@pytest.mark.parametrize(
    ("arch", "norm"), [("resnet18", "batch"), ("vgg16_bn", "batch"), ("resnet9", "batch"), ("resnet9", "group")]
)
def test_cifar_arch_quantizes_and_round_trips(arch: str, norm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _ensure_registered(arch, monkeypatch)
    torch.manual_seed(0)
    model = create(arch, input_shape=SHAPE, num_classes=K, mean=[0.5] * 3, std=[0.25] * 3, norm=norm)
    model.train()
    with torch.no_grad():
        model(torch.rand(8, *SHAPE))
    model.eval()
    card = ModelCard(
        arch=arch, dataset="synthetic", input_shape=SHAPE, num_classes=K, mean=[0.5] * 3, std=[0.25] * 3,
        dp=GROUP_DP if norm == "group" else None,
    )
    int8_model, int8_card = quantize_victim(model, card, train_images=torch.rand(8, *SHAPE), calibration=8)
    loaded, loaded_card = load_model(save_model(int8_model, int8_card, tmp_path / arch))
    assert loaded_card == int8_card
    x = torch.rand(4, *SHAPE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        float_logits, int8_logits = model(x), int8_model(x)
        assert torch.equal(loaded(x), int8_logits)
    assert bool(torch.isfinite(int8_logits).all())
    assert float((int8_logits - float_logits).abs().mean()) <= RELATIVE_ERROR * float(float_logits.abs().mean()) + 1e-3
