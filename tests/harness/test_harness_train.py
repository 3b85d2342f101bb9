"""train_victim / fit_victim: training, saving, defaults, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stealguard import data, models
from stealguard.harness import fit_victim, train_victim, training_defaults


def test_train_victim_saves_a_loadable_model(tmp_path: Path) -> None:
    model, card = train_victim(dataset="digits", arch="mlp", epochs=2, seed=1, device="cpu", out=tmp_path, progress=False)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "card.json").is_file()
    loaded, loaded_card = models.load_model(tmp_path)
    assert loaded_card.arch == "mlp" and loaded_card.dataset == "digits" and loaded_card.seed == 1
    assert loaded_card.train["epochs"] == 2 and loaded_card.train["optimizer"] == "adam"
    assert card.test_accuracy > 0.5
    x, _ = data.load_dataset("digits", split="test").tensors()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_same_seed_same_victim() -> None:
    train = data.load_dataset("digits", split="train").subset(range(200))
    test = data.load_dataset("digits", split="test").subset(range(50))
    first, _ = fit_victim(train, test, arch="mlp", epochs=1, seed=2, device="cpu", progress=False)
    second, _ = fit_victim(train, test, arch="mlp", epochs=1, seed=2, device="cpu", progress=False)
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)


def test_defaults() -> None:
    assert training_defaults("mlp")["optimizer"] == "adam"
    assert training_defaults("lenet")["optimizer"] == "sgd"
    assert set(training_defaults("unknown_arch")) == {"epochs", "lr", "optimizer", "batch_size"}


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown architecture 'alexnet'"):
        train_victim(dataset="digits", arch="alexnet", out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        train_victim(dataset="digits", arch="mlp", optimizer="rmsprop", epochs=1, progress=False)
    with pytest.raises(FileNotFoundError):
        train_victim(dataset="mnist", data_root=tmp_path / "empty", arch="lenet", progress=False)
    with pytest.raises(ValueError, match="no_such_set"):
        train_victim(dataset="no_such_set", arch="mlp", progress=False)


@pytest.mark.integration
def test_mlp_defaults_reach_95_percent_on_digits() -> None:
    _, card = train_victim(dataset="digits", arch="mlp", seed=0, device="cpu", progress=False)
    assert card.test_accuracy >= 0.95


@pytest.mark.integration
def test_lenet_on_mnist_if_present(real_data: Path) -> None:
    if not (real_data / "mnist").exists():
        pytest.skip(f"MNIST not found under {real_data} (set STEALGUARD_DATA_ROOT)")
    train = data.load_dataset("mnist", root=real_data, split="train").subset(range(4000))
    test = data.load_dataset("mnist", root=real_data, split="test").subset(range(2000))
    _, card = fit_victim(train, test, arch="lenet", seed=0, device="cpu", progress=False)
    assert card.test_accuracy > 0.9
