"""Safe persistence: round trips, card validation, and refusal to unpickle anything."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stealguard import __version__
from stealguard.models import Classifier, ModelCard, create, load_model, save_model

SHAPES = {"mlp": (1, 8, 8), "lenet": (1, 28, 28), "vgg16_bn": (3, 32, 32), "resnet18": (3, 32, 32)}


def _model_and_card(arch: str = "lenet", k: int = 4) -> tuple[Classifier, ModelCard]:
    shape = SHAPES[arch]
    channels = shape[0]
    mean, std = [0.1 * (c + 1) for c in range(channels)], [0.3 + 0.1 * c for c in range(channels)]
    torch.manual_seed(0)
    model = create(arch, input_shape=shape, num_classes=k, mean=mean, std=std)
    model.train()
    with torch.no_grad():  # move BatchNorm running statistics off their defaults
        model(torch.rand(4, *shape))
    card = ModelCard(
        arch=arch,
        dataset="synthetic",
        input_shape=shape,
        num_classes=k,
        classes=[f"c{i}" for i in range(k)],
        mean=mean,
        std=std,
        test_accuracy=0.5,
        train={"epochs": 1, "lr": 0.01, "optimizer": "sgd"},
        seed=3,
    )
    return model.eval(), card


@pytest.mark.parametrize("arch", sorted(SHAPES))
def test_round_trip_gives_identical_outputs(arch: str, tmp_path: Path) -> None:
    model, card = _model_and_card(arch)
    directory = save_model(model, card, tmp_path / "victim")
    assert directory == tmp_path / "victim"
    assert sorted(p.name for p in directory.iterdir()) == ["card.json", "model.safetensors"]
    loaded, loaded_card = load_model(directory)
    assert isinstance(loaded, Classifier) and not loaded.training
    assert loaded_card == card
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.rand(3, *SHAPES[arch])
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_weights_file_holds_buffers(tmp_path: Path) -> None:
    model, card = _model_and_card("resnet18")
    stored = load_file(str(save_model(model, card, tmp_path) / "model.safetensors"))
    assert set(stored) == set(model.state_dict())
    assert {"mean", "std", "net.bn1.running_mean", "net.bn1.num_batches_tracked"} <= set(stored)


def test_card_dict_round_trip_and_defaults() -> None:
    card = ModelCard(arch="mlp", dataset="digits", input_shape=[1, 8, 8], num_classes=10)
    assert card.classes == tuple(str(i) for i in range(10))
    assert card.mean == (0.0,) and card.std == (1.0,)
    assert card.input_shape == (1, 8, 8)
    assert card.stealguard_version == __version__ and card.created
    data = card.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert ModelCard.from_dict(data) == card


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"arch": ""}, TypeError, r"card field 'arch' must be a non-empty string"),
        ({"input_shape": [8, 8]}, ValueError, r"card field 'input_shape': input_shape must have 3 entries"),
        ({"num_classes": 1}, ValueError, r"card field 'num_classes' must be an integer in \[2, 100000\], got 1"),
        ({"classes": ["a", "b"]}, ValueError, r"card field 'classes' must have num_classes = 4 names, got 2"),
        ({"classes": [1, 2, 3, 4]}, TypeError, r"card field 'classes' must be a list of strings"),
        ({"mean": [0.1, 0.2]}, ValueError, r"card field 'mean' must have 1 entries"),
        ({"std": [0.0]}, ValueError, r"card field 'std' entries must be > 0"),
        ({"test_accuracy": 1.5}, ValueError, r"card field 'test_accuracy' must be in \[0, 1\], got 1.5"),
        ({"train": []}, TypeError, r"card field 'train' must be a dict"),
        ({"train": {"lr": float("nan")}}, TypeError, r"card field 'train' must be JSON-serialisable"),
        ({"seed": -2}, ValueError, r"card field 'seed' must be an integer in \[0, 18446744073709551615\], got -2"),
        ({"colour": "red"}, ValueError, r"model card has unknown field\(s\) colour"),
    ],
)
def test_card_validation(change: dict, error: type[Exception], match: str) -> None:
    data = _model_and_card("lenet")[1].to_dict()
    data.update(change)
    with pytest.raises(error, match=match):
        ModelCard.from_dict(data)


def test_card_missing_fields_and_non_mapping() -> None:
    with pytest.raises(ValueError, match=r"missing required field\(s\) dataset, num_classes"):
        ModelCard.from_dict({"arch": "mlp", "input_shape": [1, 8, 8]})
    with pytest.raises(TypeError, match=r"a model card must be a JSON object, got list"):
        ModelCard.from_dict([])  # type: ignore[arg-type]


class _Bomb:
    """Unpickling this writes a marker file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def test_pickle_instead_of_safetensors_is_refused(tmp_path: Path) -> None:
    model, card = _model_and_card("mlp")
    directory = save_model(model, card, tmp_path / "m")
    (directory / "model.safetensors").unlink()
    marker = tmp_path / "marker.txt"
    (directory / "model.pt").write_bytes(pickle.dumps(_Bomb(marker)))
    with pytest.raises(FileNotFoundError, match=r"model weights not found: expected .*model\.safetensors.*model\.pt.*never pickles"):
        load_model(directory)
    (directory / "model.pt").rename(directory / "model.safetensors")
    with pytest.raises(ValueError, match=r"model\.safetensors is not a valid safetensors file"):
        load_model(directory)
    assert not marker.exists()


def test_missing_card_names_expected_path(tmp_path: Path) -> None:
    model, card = _model_and_card("mlp")
    directory = save_model(model, card, tmp_path / "m")
    (directory / "card.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"model card not found: expected .*m/card\.json"):
        load_model(directory)
    with pytest.raises(FileNotFoundError, match=r"expected .*nowhere/card\.json"):
        load_model(tmp_path / "nowhere")


def test_bad_card_json_is_refused(tmp_path: Path) -> None:
    model, card = _model_and_card("mlp")
    directory = save_model(model, card, tmp_path)
    (directory / "card.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"card\.json is not valid JSON"):
        load_model(directory)
    (directory / "card.json").write_text(json.dumps({**card.to_dict(), "num_classes": 0}))
    with pytest.raises(ValueError, match=r"invalid model card .*num_classes"):
        load_model(directory)


def test_weights_arch_mismatch_names_keys(tmp_path: Path) -> None:
    model, card = _model_and_card("lenet")
    directory = save_model(model, card, tmp_path)
    data = card.to_dict()
    data["arch"] = "mlp"
    (directory / "card.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"do not match architecture 'mlp': missing keys \['net\.1\.bias'.*unexpected keys \['net\.0\.bias'"):
        load_model(directory)


def test_weights_shape_mismatch_is_named(tmp_path: Path) -> None:
    model, card = _model_and_card("mlp", k=4)
    directory = save_model(model, card, tmp_path)
    data = card.to_dict()
    data.update(num_classes=5, classes=[str(i) for i in range(5)])
    (directory / "card.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"shape mismatch .*net\.5\.weight: \(4, 256\) vs \(5, 256\)"):
        load_model(directory)


def test_save_refuses_inconsistent_card(tmp_path: Path) -> None:
    model, card = _model_and_card("lenet")
    data = card.to_dict()
    with pytest.raises(ValueError, match=r"card says input_shape \(1, 28, 28\) and num_classes 5"):
        save_model(model, ModelCard.from_dict({**data, "num_classes": 5, "classes": list("abcde")}), tmp_path)
    with pytest.raises(ValueError, match=r"card mean \[0\.5\] differs from the model's"):
        save_model(model, ModelCard.from_dict({**data, "mean": [0.5]}), tmp_path)
    with pytest.raises(ValueError, match=r"do not match architecture 'mlp'"):
        save_model(model, ModelCard.from_dict({**data, "arch": "mlp"}), tmp_path)
    with pytest.raises(TypeError, match=r"model must be a stealguard Classifier"):
        save_model(model.net, card, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"card must be a ModelCard"):
        save_model(model, data, tmp_path)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


def test_save_overwrites_and_load_honours_device(tmp_path: Path) -> None:
    model, card = _model_and_card("mlp")
    save_model(model, card, tmp_path)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    save_model(model, card, tmp_path)
    loaded, _ = load_model(tmp_path, device="cpu")
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    assert torch.equal(loaded.state_dict()["net.1.weight"], model.state_dict()["net.1.weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json", "model.safetensors"]
