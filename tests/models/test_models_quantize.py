"""int8 victims: accuracy kept, bitwise save/load, validated card record, refused tampering, harness use."""

from __future__ import annotations

import dataclasses
import doctest
import json
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from stealguard import data
from stealguard.harness import run_attack
from stealguard.models import (
    Classifier,
    ModelCard,
    QuantizedClassifier,
    build_quantized,
    create,
    fit,
    load_model,
    quantization,
    quantize,
    quantize_victim,
    quantized_state,
    registry,
    save_model,
)
from stealguard.models.quantization import QUANTIZATION_FIELDS

DIGITS = (1, 8, 8)
LENET_SIDE = 16
MAX_ACCURACY_DROP = 0.02


def _digits(side: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    train_x, train_y = data.load_dataset("digits", split="train").tensors()
    test_x, test_y = data.load_dataset("digits", split="test").tensors()
    if side != DIGITS[1]:
        train_x, test_x = data.resize(train_x, (side, side)), data.resize(test_x, (side, side))
    return train_x, train_y, test_x, test_y


def _trained(arch: str, side: int, epochs: int) -> tuple[Classifier, ModelCard, tuple[Tensor, Tensor, Tensor, Tensor]]:
    split = _digits(side)
    shape = (1, side, side)
    mean, std = float(split[0].mean()), float(split[0].std())
    torch.manual_seed(0)
    model = create(arch, input_shape=shape, num_classes=10, mean=[mean], std=[std])
    fit(model, split[0], split[1], epochs=epochs, batch_size=64, optimizer="adam", lr=1e-3, seed=0, progress=False, device="cpu")
    card = ModelCard(arch=arch, dataset="digits", input_shape=shape, num_classes=10, mean=[mean], std=[std], seed=0)
    return model.eval(), card, split


@pytest.fixture(scope="module")
def mlp_victim() -> tuple[Classifier, ModelCard, tuple[Tensor, Tensor, Tensor, Tensor]]:
    return _trained("mlp", DIGITS[1], epochs=8)


@pytest.fixture(scope="module")
def int8(mlp_victim) -> tuple[QuantizedClassifier, ModelCard]:
    model, card, (train_x, _, test_x, test_y) = mlp_victim
    return quantize_victim(model, card, train_images=train_x, test_images=test_x, test_labels=test_y, calibration=256, seed=0)


@pytest.fixture(scope="module")
def int8_dir(int8, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(*int8, tmp_path_factory.mktemp("int8") / "victim")


def test_mlp_int8_accuracy_close_to_float(int8) -> None:
    _, card = int8
    record = card.quantization
    assert record["int8_test_accuracy"] >= record["float_test_accuracy"] - MAX_ACCURACY_DROP
    assert record["float_test_accuracy"] > 0.8
    assert card.test_accuracy == record["int8_test_accuracy"]
    assert record["calibration_size"] == 256 and record["engine"] == "x86" and record["torch_version"] == torch.__version__


def test_lenet_int8_accuracy_close_to_float() -> None:
    model, card, (train_x, _, test_x, test_y) = _trained("lenet", LENET_SIDE, epochs=4)
    _, int8_card = quantize_victim(model, card, train_images=train_x, test_images=test_x, test_labels=test_y, calibration=256)
    record = int8_card.quantization
    assert record["float_test_accuracy"] > 0.8
    assert record["int8_test_accuracy"] >= record["float_test_accuracy"] - MAX_ACCURACY_DROP


def test_round_trip_is_bitwise(int8, int8_dir: Path) -> None:
    model, card = int8
    loaded, loaded_card = load_model(int8_dir)
    assert isinstance(loaded, QuantizedClassifier) and not loaded.training
    assert loaded_card == card
    x = torch.rand(64, *DIGITS, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    stored = load_file(str(int8_dir / "model.safetensors"))
    assert all(not value.is_quantized for value in stored.values())
    assert any(key.endswith(":int_repr") and value.dtype == torch.int8 for key, value in stored.items())


def test_card_json_holds_the_record(int8_dir: Path) -> None:
    record = json.loads((int8_dir / "card.json").read_text())["quantization"]
    assert set(record) == set(QUANTIZATION_FIELDS)
    assert record["scheme"] == "ptq_static_fx"


def test_quantize_leaves_the_float_model_alone(mlp_victim) -> None:
    model, _, (train_x, *_) = mlp_victim
    before = {key: value.clone() for key, value in model.state_dict().items()}
    quantize(model, train_x[:32])
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert type(model) is Classifier


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 40), seed=st.integers(0, 2**31 - 1))
def test_outputs_are_finite_probabilities_and_rowwise(int8, n: int, seed: int) -> None:
    model, _ = int8
    x = torch.rand(n, *DIGITS, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits = model(x)
        probs = torch.softmax(logits, dim=1)
        assert logits.shape == (n, 10) and logits.dtype == torch.float32
        assert bool(torch.isfinite(probs).all()) and bool((probs >= 0).all())
        assert torch.allclose(probs.sum(dim=1), torch.ones(n), atol=1e-6)
        if n:
            assert torch.equal(logits, torch.cat([model(row) for row in x.split(1)]))


def test_stays_on_cpu_and_warns_once(int8) -> None:
    model, _ = int8
    x = torch.rand(3, *DIGITS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert model.to("meta") is model
        model.to("meta")
    assert len(caught) == 1 and "stays on the CPU" in str(caught[0].message)
    assert model.mean.device.type == "cpu"
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()


def test_quantize_does_not_depend_on_the_global_rng(mlp_victim) -> None:
    model, _, (train_x, *_) = mlp_victim
    x = torch.rand(16, *DIGITS, generator=torch.Generator().manual_seed(2))
    outs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        with torch.no_grad():
            outs.append(quantize(model, train_x[:32])(x))
    assert torch.equal(outs[0], outs[1])


def test_build_quantized_is_deterministic_and_keeps_the_rng() -> None:
    torch.manual_seed(5)
    state = torch.random.get_rng_state()
    first = build_quantized("mlp", input_shape=DIGITS, num_classes=3)
    second = build_quantized("mlp", input_shape=DIGITS, num_classes=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    x = torch.rand(5, *DIGITS)
    with torch.no_grad():
        assert torch.equal(first(x), second(x))


def _record(**changes) -> dict:
    record = {
        "engine": "x86",
        "scheme": "ptq_static_fx",
        "calibration_size": 512,
        "calibration_seed": 0,
        "float_test_accuracy": 0.9,
        "int8_test_accuracy": None,
        "torch_version": "2.13.0",
    }
    record.update(changes)
    return {key: value for key, value in record.items() if value != "DROP"}


@pytest.mark.parametrize(
    ("record", "error", "match"),
    [
        ([1, 2], TypeError, "'quantization' must be a dict"),
        (_record(engine="qnnpack"), ValueError, "quantization.engine"),
        (_record(scheme="dynamic"), ValueError, "quantization.scheme"),
        (_record(calibration_size=0), ValueError, "quantization.calibration_size"),
        (_record(calibration_size=1.5), TypeError, "quantization.calibration_size"),
        (_record(calibration_seed=-1), ValueError, "quantization.calibration_seed"),
        (_record(float_test_accuracy=1.5), ValueError, "quantization.float_test_accuracy"),
        (_record(int8_test_accuracy="high"), TypeError, "quantization.int8_test_accuracy"),
        (_record(torch_version=""), TypeError, "quantization.torch_version"),
        (_record(engine="DROP"), ValueError, r"missing \['engine'\]"),
        (_record(bits=8), ValueError, r"unknown \['bits'\]"),
    ],
)
def test_card_record_is_validated(record, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ModelCard(arch="mlp", dataset="digits", input_shape=DIGITS, num_classes=10, quantization=record)


def test_float_cards_have_no_record(mlp_victim) -> None:
    _, card, _ = mlp_victim
    assert card.quantization is None and "quantization" not in card.to_dict()


def _copy(directory: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    out.mkdir()
    for name in ("card.json", "model.safetensors"):
        (out / name).write_bytes((directory / name).read_bytes())
    return out


def _tamper(directory: Path, change) -> None:
    tensors = load_file(str(directory / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(directory / "model.safetensors"))


def _first(tensors: dict[str, Tensor], suffix: str) -> str:
    return next(key for key in sorted(tensors) if key.endswith(suffix))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.pop(_first(t, ":int_repr")), "missing keys"),
        (lambda t: t.update({"net.extra": torch.zeros(2)}), "unexpected keys"),
        (lambda t: t.update({(k := _first(t, ":int_repr")): t[k].to(torch.int32)}), "expected torch.int8"),
        (lambda t: t.update({(k := _first(t, ":int_repr")): t[k][:1].contiguous()}), "shape mismatch"),
        (lambda t: t.update({(k := _first(t, ":scales")): torch.zeros_like(t[k])}), "finite and > 0"),
        (lambda t: t.update({(k := _first(t, ":zero_points")): torch.full_like(t[k], 500)}), r"\[-128, 127\]"),
    ],
)
def test_tampered_weights_are_refused(int8_dir: Path, tmp_path: Path, change, match: str) -> None:
    directory = _copy(int8_dir, tmp_path)
    _tamper(directory, change)
    with pytest.raises(ValueError, match=match):
        load_model(directory)


def test_card_without_record_refuses_int8_weights(int8_dir: Path, tmp_path: Path) -> None:
    directory = _copy(int8_dir, tmp_path)
    card = json.loads((directory / "card.json").read_text())
    del card["quantization"]
    (directory / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="unexpected keys .*:int_repr"):
        load_model(directory)


def test_int8_card_refuses_float_weights(mlp_victim, int8, tmp_path: Path) -> None:
    model, card, _ = mlp_victim
    directory = save_model(model, card, tmp_path / "float")
    text = json.loads((directory / "card.json").read_text())
    text["quantization"] = int8[1].quantization
    (directory / "card.json").write_text(json.dumps(text))
    with pytest.raises(ValueError, match=r"do not match architecture 'mlp \(int8\)'"):
        load_model(directory)


def test_invalid_record_in_card_file_is_refused(int8_dir: Path, tmp_path: Path) -> None:
    directory = _copy(int8_dir, tmp_path)
    card = json.loads((directory / "card.json").read_text())
    card["quantization"]["calibration_size"] = -3
    (directory / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="invalid model card .*quantization.calibration_size"):
        load_model(directory)


def test_save_model_checks_model_against_record(mlp_victim, int8, tmp_path: Path) -> None:
    model, card, _ = mlp_victim
    int8_model, int8_card = int8
    with pytest.raises(ValueError, match="int8-quantized but the card has no 'quantization'"):
        save_model(int8_model, card, tmp_path / "a")
    with pytest.raises(ValueError, match="float model, not int8"):
        save_model(model, int8_card, tmp_path / "b")


def test_quantize_refuses_bad_input(mlp_victim, int8) -> None:
    model, card, (train_x, *_) = mlp_victim
    int8_model, int8_card = int8
    with pytest.raises(ValueError, match="already int8"):
        quantize(int8_model, train_x[:8])
    with pytest.raises(ValueError, match="already int8"):
        quantize_victim(model, int8_card, train_images=train_x)
    with pytest.raises(TypeError, match="Classifier"):
        quantize(nn.Linear(2, 2), train_x[:8])
    with pytest.raises(ValueError, match=r"shape \(N >= 1, 1, 8, 8\)"):
        quantize(model, torch.rand(4, 1, 9, 9))
    with pytest.raises(ValueError, match="finite"):
        quantize(model, torch.full((2, *DIGITS), float("nan")))
    with pytest.raises(ValueError, match="calibration must be an integer"):
        quantize_victim(model, card, train_images=train_x, calibration=0)
    with pytest.raises(ValueError, match="both test_images and test_labels"):
        quantize_victim(model, card, train_images=train_x, test_images=train_x[:4])


class _DataDependent(nn.Module):
    """Python control flow on tensor values: torch.fx cannot trace it."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.sum() > 0:
            x = x * 2
        return self.fc(x.flatten(1))


def test_untraceable_arch_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._REGISTRY, "untraceable", lambda shape, k: _DataDependent(k))
    model = create("untraceable", input_shape=DIGITS, num_classes=3).eval()
    card = ModelCard(arch="untraceable", dataset="digits", input_shape=DIGITS, num_classes=3)
    with pytest.raises(ValueError, match="architecture 'untraceable'.*cannot be int8-quantized"):
        quantize_victim(model, card, train_images=torch.rand(4, *DIGITS))


def test_calibration_draw_depends_on_seed(mlp_victim) -> None:
    model, card, (train_x, *_) = mlp_victim
    same = [quantize_victim(model, card, train_images=train_x, calibration=16, seed=s)[0] for s in (3, 3, 4)]
    x = torch.rand(32, *DIGITS, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outs = [m(x) for m in same]
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])


def test_int8_victim_through_run_attack(int8_dir: Path) -> None:
    train = data.load_dataset("digits", split="train").subset(range(200))
    test = data.load_dataset("digits", split="test").subset(range(100))
    result = run_attack(
        victim=int8_dir,
        defense="mad:epsilon=0.5",
        attack="knockoff",
        attack_params={"epochs": 1, "batch_size": 32},
        queryset=train,
        budget=60,
        seed=0,
        device="cpu",
        progress=False,
        test_set=test,
    )
    assert result["queries_used"] == 60 and result["defense"] == "mad"
    assert 0 < result["l1_mean"] <= 0.5 + 1e-6
    assert 0.0 <= result["attacker_accuracy"] <= 1.0 and result["clean_accuracy"] > 0.8


def test_dp_victim_quantizes_and_round_trips(tmp_path: Path) -> None:
    shape = (3, 32, 32)
    torch.manual_seed(0)
    model = create("lenet", input_shape=shape, num_classes=4, norm="group").eval()
    dp = {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-5, "epsilon": 2.0, "accountant": "rdp", "norm": "group"}
    card = ModelCard(arch="lenet", dataset="synthetic", input_shape=shape, num_classes=4, dp=dp)
    int8_model, int8_card = quantize_victim(model, card, train_images=torch.rand(8, *shape), calibration=8)
    assert int8_card.dp == card.dp and int8_card.test_accuracy is None
    loaded, _ = load_model(save_model(int8_model, int8_card, tmp_path / "dp"))
    x = torch.rand(4, *shape)
    with torch.no_grad():
        assert torch.equal(loaded(x), int8_model(x))


def test_card_copy_keeps_float_fields(mlp_victim, int8) -> None:
    _, card, _ = mlp_victim
    _, int8_card = int8
    kept = ("arch", "dataset", "input_shape", "num_classes", "classes", "mean", "std", "train", "seed", "dp")
    assert {k: getattr(int8_card, k) for k in kept} == {k: getattr(card, k) for k in kept}
    assert dataclasses.replace(int8_card, quantization=None).quantization is None


@pytest.mark.parametrize("module", [quantization, quantized_state])
def test_doctests(module) -> None:
    assert doctest.testmod(module).failed == 0
