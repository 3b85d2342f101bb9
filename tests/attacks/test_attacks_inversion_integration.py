"""Acceptance on real data: ``invert(answers, "mad:epsilon=0.5")`` recovers MAD's clean posteriors on MNIST."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stealguard import data as sgdata
from stealguard.attacks import invert
from stealguard.attacks.inversion import inverter_from_spec
from stealguard.harness.experiment import build_defense, load_victim

VICTIM = Path(__file__).resolve().parents[2] / "benchmarks" / "victims" / "mnist-lenet"
DEFENDER_SEED = 1009


@pytest.mark.integration
def test_mad_inversion_recovers_mnist_test_posteriors(real_data: Path) -> None:
    if not (real_data / "mnist").is_dir():
        pytest.skip(f"MNIST not found under {real_data}")
    torch.set_num_threads(1)
    model, card = load_victim(VICTIM)
    images, _ = sgdata.load_dataset("mnist", root=real_data, split="test").tensors()
    with torch.no_grad():
        clean = torch.cat([torch.softmax(model(chunk).double(), dim=1) for chunk in images.split(2000)])
    mad, _ = build_defense("mad:epsilon=0.5", card=card, seed=DEFENDER_SEED)
    answers = torch.cat([mad(x, y) for x, y in zip(images.split(2000), clean.split(2000))])
    known = (invert(answers, "mad:epsilon=0.5") - clean).abs().sum(dim=1)
    assert float((known < 1e-3).double().mean()) >= 0.95
    estimating = inverter_from_spec("mad")
    estimated = (estimating(answers) - clean).abs().sum(dim=1)
    assert estimating.estimated_epsilon == pytest.approx(0.5, abs=1e-3)
    assert float((estimated < 1e-3).double().mean()) >= 0.95
    naive = (answers.double() - clean).abs().sum(dim=1)
    assert float((naive < 1e-3).double().mean()) == 0.0
