"""``stealguard quantize`` end to end on digits; the int8 victim then works with ``attack`` and ``serve``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import torch
from torch import Tensor, nn

from stealguard.blackbox import BlackBox
from stealguard.cli import main
from stealguard.harness import build_defense, load_victim
from stealguard.models import ModelCard, QuantizedClassifier, create, registry, save_model
from tests.serve._server import Server

DEFENSE = "mad:epsilon=0.5"


@pytest.fixture(scope="module")
def victims(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli-quantize")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    assert main(["train", "--dataset", "digits", "--arch", "mlp", "--epochs", "3", "--device", "cpu", "--quiet",
                 "--out", str(root / "float")]) == 0
    code = main(["quantize", "--victim", str(root / "float"), "--out", str(root / "int8"), "--calibration", "300", "--seed", "1"])
    torch.set_num_threads(threads)
    assert code == 0
    return root / "float", root / "int8"


def test_quantize_writes_an_int8_victim(victims) -> None:
    _, int8_dir = victims
    card = json.loads((int8_dir / "card.json").read_text())
    record = card["quantization"]
    assert record["calibration_size"] == 300 and record["calibration_seed"] == 1
    assert record["int8_test_accuracy"] >= record["float_test_accuracy"] - 0.02
    assert card["test_accuracy"] == record["int8_test_accuracy"]
    model, _ = load_victim(int8_dir)
    assert isinstance(model, QuantizedClassifier)


def test_quantize_prints_both_accuracies(victims, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    float_dir, _ = victims
    assert main(["quantize", "--victim", str(float_dir), "--out", str(tmp_path / "q"), "--calibration", "64"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "to int8" in out[0] and "float 0." in out[0] and "int8 0." in out[0] and "CPU" in out[0]


def test_attack_accepts_the_int8_victim(victims, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, int8_dir = victims
    code = main(["attack", "--victim", str(int8_dir), "--attack", "knockoff", "--budget", "40", "--epochs", "1",
                 "--defense", DEFENSE, "--device", "cpu", "--quiet", "--out", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["queries_used"] == 40 and result["defense"] == "mad"
    assert result["victim"]["test_accuracy"] == json.loads((int8_dir / "card.json").read_text())["test_accuracy"]


def test_serve_answers_like_the_library(victims, tmp_path: Path) -> None:
    _, int8_dir = victims
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    model, card = load_victim(int8_dir)
    defense, _ = build_defense(DEFENSE, card=card, seed=0)
    expected = BlackBox(model, defense, device="cpu").query(x)
    server = Server(int8_dir, tmp_path / "data", tmp_path / "server.log", "--defense", DEFENSE, "--seed", "0")
    try:
        info = httpx.get(f"{server.url}/v1/model", timeout=30.0).json()
        response = httpx.post(f"{server.url}/v1/predict", json={"inputs": x.tolist()}, timeout=30.0)
    finally:
        server.stop()
    assert info["arch"] == "mlp" and response.status_code == 200
    answered = torch.tensor(response.json()["probabilities"])
    assert torch.allclose(answered, expected, atol=1e-6)


class _DataDependent(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.mean() > 0:
            x = -x
        return self.fc(x.flatten(1))


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stealguard: error: ") and "Traceback" not in err
    return lines[0]


def test_errors_are_one_line(victims, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    float_dir, int8_dir = victims
    out = str(tmp_path / "out")
    assert "does not exist" in _error(capsys, ["quantize", "--victim", str(tmp_path / "nope"), "--out", out])
    assert "already int8-quantized" in _error(capsys, ["quantize", "--victim", str(int8_dir), "--out", out])
    assert "must differ from --victim" in _error(capsys, ["quantize", "--victim", str(float_dir), "--out", str(float_dir)])
    assert "calibration must be an integer in [1" in _error(
        capsys, ["quantize", "--victim", str(float_dir), "--out", out, "--calibration", "0"]
    )
    assert "--out" in _error(capsys, ["quantize", "--victim", str(float_dir)])


def test_unsupported_arch_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._REGISTRY, "data_dependent", lambda shape, k: _DataDependent(k))
    model = create("data_dependent", input_shape=(1, 8, 8), num_classes=10).eval()
    save_model(model, ModelCard(arch="data_dependent", dataset="digits", input_shape=(1, 8, 8), num_classes=10), tmp_path / "v")
    line = _error(capsys, ["quantize", "--victim", str(tmp_path / "v"), "--out", str(tmp_path / "q")])
    assert "architecture 'data_dependent'" in line and "cannot be int8-quantized" in line
