"""``stealguard train --dp ...``: DP-SGD victim end to end, epsilon in the printed line and the card, bad values exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from stealguard.cli import main
from stealguard.models import load_model, predict_logits

TRAIN = ["train", "--dataset", "digits", "--arch", "mlp", "--epochs", "1", "--batch-size", "256", "--device", "cpu", "--quiet"]


def test_train_with_dp_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "victim"
    code = main([*TRAIN, "--out", str(out), "--dp", "noise_multiplier=1.1,max_grad_norm=1.0,delta=1e-6"])
    line = capsys.readouterr().out.strip()
    assert code == 0
    card = json.loads((out / "card.json").read_text())
    dp = card["dp"]
    assert dp["noise_multiplier"] == 1.1 and dp["max_grad_norm"] == 1.0 and dp["delta"] == 1e-6
    assert dp["accountant"] == "rdp" and dp["norm"] == "batch" and 0 < dp["epsilon"] < float("inf")
    assert line.startswith("trained mlp on digits with DP-SGD (noise_multiplier 1.1, max_grad_norm 1)")
    assert f"epsilon {dp['epsilon']:.4g} at delta 1e-06" in line and str(out) in line
    model, loaded = load_model(out)
    assert loaded.dp["epsilon"] == dp["epsilon"] and loaded.test_accuracy == card["test_accuracy"]
    assert predict_logits(model, torch.rand(4, 1, 8, 8), device="cpu").shape == (4, 10)


def test_more_noise_gives_a_smaller_epsilon_on_the_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    epsilons = []
    for sigma in ("0.8", "1.6"):
        out = tmp_path / sigma
        assert main([*TRAIN, "--out", str(out), "--dp", f"noise_multiplier={sigma},max_grad_norm=1"]) == 0
        epsilons.append(json.loads((out / "card.json").read_text())["dp"]["epsilon"])
    capsys.readouterr()
    assert epsilons[1] < epsilons[0]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("noise_multiplier=-1,max_grad_norm=1", r"noise_multiplier must be in \[0, inf\), got -1"),
        ("noise_multiplier=1,max_grad_norm=0", r"max_grad_norm must be in \(0, inf\), got 0"),
        ("noise_multiplier=1,max_grad_norm=1,delta=2", r"delta must be in \(0, 1\), got 2"),
        ("noise_multiplier=1,max_grad_norm=1,accountant=gdp", r"accountant"),
        ("max_grad_norm=1", r"DP-SGD needs noise_multiplier and max_grad_norm; missing noise_multiplier"),
        ("noise_multiplier=1,max_grad_norm=1,sigma=2", r"unknown DP-SGD parameter\(s\) 'sigma'"),
        ("noise_multiplier", r"--dp 'noise_multiplier': .*must look like key=value"),
        ("", r"--dp '' must look like noise_multiplier=S,max_grad_norm=C"),
        ("noise_multiplier=abc,max_grad_norm=1", r"noise_multiplier must be a real number, got 'abc'"),
    ],
)
def test_bad_dp_values_exit_2_with_one_line(spec: str, match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*TRAIN, "--out", str(tmp_path / "never"), "--dp", spec])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stealguard: error: ") and "Traceback" not in err, err
    assert re.search(match, lines[0]), lines[0]
    assert not (tmp_path / "never").exists()
