"""A victim trained on one half of an ImageFolder tree, attacked with the other half (library and CLI)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stealguard import data, models
from stealguard.cli import main
from stealguard.harness import fit_victim, run_attack, train_victim, training_defaults
from stealguard.harness.experiment import queryset_spec
from stealguard.harness.train import default_augment

CLASSES = ("ant", "bee", "cat")
TRAIN_PER_CLASS, TEST_PER_CLASS = 12, 4


def write_tree(top: Path, *, side: int = 32, channels: int = 3) -> Path:
    """Noisy images whose mean colour depends on the class, as PNG (train) and JPEG (test)."""
    rng = np.random.default_rng(0)
    for split, count, ext in (("train", TRAIN_PER_CLASS, "png"), ("test", TEST_PER_CLASS, "jpg")):
        for c, name in enumerate(CLASSES):
            folder = top / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                base = np.zeros(3) + 40
                base[c] = 200
                pixels = np.clip(base + rng.normal(0, 30, (side, side, 3)), 0, 255).astype(np.uint8)
                image = Image.fromarray(pixels if channels == 3 else pixels[:, :, 0])
                image.save(folder / f"{i:04d}.{ext}")
    return top


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tree(tmp_path_factory.mktemp("halves") / "tree")


@pytest.fixture(scope="module")
def victim(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("victim")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train_victim(dataset="imagefolder:half=0", data_root=tree, arch="mlp", epochs=2, seed=0, device="cpu", out=out, progress=False)
    torch.set_num_threads(threads)
    return out


def test_card_records_the_half_the_seed_and_the_root(victim: Path) -> None:
    _, card = models.load_model(victim)
    assert card.dataset == "imagefolder:half=0,seed=0"
    assert card.train["data"] == {"name": "imagefolder", "half": 0, "split_seed": 0, "stratified": True, "needs_root": True}
    assert card.train["train_size"] == len(CLASSES) * TRAIN_PER_CLASS // 2
    assert card.train["augment"] is True and card.train["augment_padding"] == 4 and card.train["augment_flip"] is True


def test_attack_finds_the_test_split_and_the_other_half(victim: Path, tree: Path) -> None:
    result = run_attack(
        victim=victim, queryset="imagefolder:half=1", data_root=tree, budget=12, attack_params={"epochs": 1},
        device="cpu", progress=False,
    )
    assert result["queryset"] == "tree:half=1,seed=0" and result["queries_used"] == 12
    assert result["test_set"] == "tree" and result["test_size"] == len(CLASSES) * TEST_PER_CLASS
    assert result["victim"]["dataset"] == "imagefolder:half=0,seed=0"


def test_missing_tree_names_the_expected_path(victim: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    with pytest.raises(data.DataNotFoundError, match=re.escape(str(moved / "train" / "<class name>"))):
        run_attack(victim=victim, queryset="imagefolder:half=1", data_root=moved, budget=5, device="cpu", progress=False)
    with pytest.raises(data.DataNotFoundError, match=re.escape(str(moved / "test" / "<class name>"))):
        run_attack(
            victim=victim, attack="dfme", queryset="imagefolder:half=1", data_root=moved, budget=5, device="cpu", progress=False
        )
    with pytest.raises(ValueError, match=r"imagefolder needs root=.*--data-root"):
        run_attack(victim=victim, queryset="imagefolder:half=1", budget=5, device="cpu", progress=False)


@pytest.mark.parametrize(
    ("queryset", "victim_dataset", "expected"),
    [
        ("imagefolder:half=1", "imagefolder:half=0,seed=7", "imagefolder:half=1,seed=7"),
        ("imagefolder:half=1,seed=2", "imagefolder:half=0,seed=7", "imagefolder:half=1,seed=2"),
        ("cifar10:half=1", "imagefolder:half=0,seed=7", "cifar10:half=1"),
        ("cifar10:half=1", "cifar10", "cifar10:half=1"),
        ("cifar10", "cifar10:half=0,seed=7", "cifar10"),
        ("imagefolder:half=1", "tree", "imagefolder:half=1"),
    ],
)
def test_queryset_takes_the_victims_split_seed(queryset: str, victim_dataset: str, expected: str) -> None:
    assert queryset_spec(queryset, victim_dataset) == expected


def test_cli_train_then_attack_with_the_other_half(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "victim"
    code = main(["train", "--dataset", "imagefolder:half=0,seed=3", "--data-root", str(tree), "--arch", "mlp", "--epochs", "1",
                 "--augment", "off", "--device", "cpu", "--quiet", "--out", str(out)])
    assert code == 0 and "on imagefolder:half=0,seed=3" in capsys.readouterr().out
    card = json.loads((out / "card.json").read_text())
    assert card["dataset"] == "imagefolder:half=0,seed=3" and card["train"]["augment"] is False
    code = main(["attack", "--victim", str(out), "--data-root", str(tree), "--queryset", "imagefolder:half=1", "--attack", "knockoff",
                 "--budget", "10", "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(tmp_path / "r.json")])
    assert code == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["queryset"] == "tree:half=1,seed=3" and result["test_size"] == len(CLASSES) * TEST_PER_CLASS
    code = main(["attack", "--victim", str(out), "--data-root", str(tmp_path / "gone"), "--queryset", "imagefolder:half=1",
                 "--attack", "knockoff", "--budget", "10", "--device", "cpu", "--quiet", "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(tmp_path / "gone" / "train") in err


def test_cli_rejects_a_bad_augment_choice_and_a_bad_spec(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["train", "--data-root", str(tree), "--arch", "mlp", "--epochs", "1", "--quiet", "--out", str(tmp_path / "v")]
    assert main([*base, "--dataset", "imagefolder:half=0", "--augment", "maybe"]) == 2
    assert "--augment" in capsys.readouterr().err
    assert main([*base, "--dataset", "imagefolder:half=2"]) == 2
    assert "half must be 0 or 1, got 2" in capsys.readouterr().err


def test_augmentation_switch(tree: Path) -> None:
    train, test = data.load_dataset("imagefolder:half=0", root=tree), data.load_dataset("imagefolder", root=tree, split="test")
    common = {"arch": "mlp", "epochs": 1, "seed": 0, "device": "cpu", "progress": False}
    auto, auto_card = fit_victim(train, test, **common)
    on, _ = fit_victim(train, test, augment=True, **common)
    off, off_card = fit_victim(train, test, augment=False, **common)
    assert auto_card.train["augment"] is True and off_card.train["augment"] is False and "augment_padding" not in off_card.train
    assert all(torch.equal(a, b) for a, b in zip(auto.parameters(), on.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(auto.parameters(), off.parameters()))
    gray = data.load_dataset("digits:half=0").subset(range(60))
    gray_test = data.load_dataset("digits", split="test").subset(range(20))
    gray_auto, gray_card = fit_victim(gray, gray_test, **common)
    gray_off, _ = fit_victim(gray, gray_test, augment=False, **common)
    assert gray_card.train["augment"] is False
    assert all(torch.equal(a, b) for a, b in zip(gray_auto.parameters(), gray_off.parameters()))
    assert default_augment((3, 32, 32)) and not default_augment((1, 28, 28)) and not default_augment((3, 8, 8))
    with pytest.raises(TypeError, match=r"augment must be True or False"):
        fit_victim(train, test, augment="on", **common)  # type: ignore[arg-type]


def test_resnet9_recipe_reaches_fit_and_the_card(tree: Path) -> None:
    defaults = training_defaults("resnet9")
    assert defaults["schedule"] == "onecycle" and defaults["nesterov"] is True and defaults["optimizer"] == "sgd"
    train, test = data.load_dataset("imagefolder:half=0", root=tree), data.load_dataset("imagefolder", root=tree, split="test")
    _, card = fit_victim(train, test, arch="resnet9", epochs=1, seed=0, device="cpu", progress=False, dataset="imagefolder:half=0")
    assert {k: card.train[k] for k in defaults if k != "epochs"} == {k: v for k, v in defaults.items() if k != "epochs"}
    assert card.train["epochs"] == 1 and card.dataset == "imagefolder:half=0,seed=0"
    _, adam = fit_victim(train, test, arch="resnet9", epochs=1, optimizer="adam", lr=1e-3, seed=0, device="cpu", progress=False)
    assert "nesterov" not in adam.train and adam.train["optimizer"] == "adam"


def test_resnet9_with_dp_keeps_the_settings_dp_sgd_takes(tree: Path) -> None:
    train, test = data.load_dataset("imagefolder:half=0", root=tree), data.load_dataset("imagefolder", root=tree, split="test")
    common = {"arch": "resnet9", "epochs": 1, "batch_size": 6, "seed": 0, "device": "cpu", "progress": False}
    _, card = fit_victim(train, test, dp={"noise_multiplier": 1.0, "max_grad_norm": 1.0}, **common)
    assert card.dp["norm"] == "group" and "nesterov" not in card.train and card.train["schedule"] == "onecycle"
    with pytest.raises(ValueError, match=r"label_smoothing is not available with dp"):
        fit_victim(train, test, dp={"noise_multiplier": 1.0, "max_grad_norm": 1.0}, label_smoothing=0.1, **common)


def test_default_queryset_is_the_other_half_with_the_same_seed():
    from stealguard.harness.experiment import default_queryset

    assert default_queryset("cifar10:half=0,seed=3") == "cifar10:half=1,seed=3"
    assert default_queryset("imagefolder:half=1") == "imagefolder:half=0,seed=0"
    assert default_queryset("mnist") == "mnist"
    assert default_queryset("not a spec::") == "not a spec::"
