"""The ``invert`` evasion option: every replica and data-free attack inverts each answer before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from stealguard import defenses
from stealguard.attacks import DFME, Knockoff, Oracle, invert
from stealguard.attacks.inversion import inverter_from_spec
from stealguard.blackbox import BlackBox
from stealguard.cli import main
from stealguard.models import ModelCard, save_model

from ._fixtures import SHAPE, K, images, random_victim


def mad_box(seed: int = 0) -> BlackBox:
    surrogate = random_victim(seed + 50)
    return BlackBox(random_victim(seed), defenses.create("mad", epsilon=0.5, surrogate=surrogate), device="cpu")


def test_oracle_inverts_every_answer() -> None:
    x = images(40)
    raw = Oracle(mad_box(), 40, batch_size=16, progress=False).ask(x)
    inverted = Oracle(mad_box(), 40, batch_size=16, progress=False, invert=inverter_from_spec("mad:epsilon=0.5")).ask(x)
    torch.testing.assert_close(inverted, invert(raw, "mad:epsilon=0.5"))
    with torch.no_grad():
        clean = torch.softmax(random_victim(0)(x), dim=1)
    assert (inverted - clean).abs().sum(dim=1).mean() < 0.1 * (raw - clean).abs().sum(dim=1).mean()


def test_oracle_refuses_a_non_inverter() -> None:
    with pytest.raises(TypeError, match="invert must be an Inverter"):
        Oracle(mad_box(), 4, invert="mad")  # type: ignore[arg-type]


def test_knockoff_trains_on_inverted_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    attack = Knockoff(queryset=images(60, seed=3), replica_arch="mlp", epochs=1, device="cpu", progress=False,
                      invert="mad:epsilon=0.5")
    seen: dict[str, torch.Tensor] = {}
    original = attack.train

    def spy(replica: nn.Module, inputs: torch.Tensor, answers: torch.Tensor, **kwargs: object) -> nn.Module:
        seen["inputs"], seen["answers"] = inputs, answers
        return original(replica, inputs, answers, **kwargs)

    monkeypatch.setattr(attack, "train", spy)
    box = mad_box()
    attack.run(box, 60)
    assert box.queries_used == 60 and attack.params()["invert"] == "mad:epsilon=0.5"
    with torch.no_grad():
        clean = torch.softmax(random_victim(0)(seen["inputs"]), dim=1)
    assert (seen["answers"] - clean).abs().sum(dim=1).max() < 1e-3


@pytest.mark.parametrize("spec, error, match", [
    ("nope", ValueError, "invert='nope': unknown inverter"),
    ("mad:surrogate=1", TypeError, "invert='mad:surrogate=1': inverter 'mad' got unknown parameter"),
    ("mad:epsilon=-1", ValueError, "epsilon must be in"),
])
def test_bad_invert_specs_are_refused_before_any_query(spec: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Knockoff(queryset=images(4), replica_arch="mlp", invert=spec)
    with pytest.raises(error, match=match):
        DFME(replica_arch="mlp", invert=spec)


def test_data_free_attack_inverts_its_answers() -> None:
    attack = DFME(replica_arch="mlp", batch_size=8, directions=1, generator_steps=1, student_steps=1, device="cpu",
                  progress=False, invert="mad")
    box = mad_box(1)
    student = attack.run(box, 64)
    assert box.queries_used == 64 and attack.params()["invert"] == "mad"
    assert student(torch.zeros(2, *SHAPE)).shape == (2, K)


def test_cli_attack_param_invert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "victim"
    save_model(random_victim(4), ModelCard(arch="mlp", dataset="digits", input_shape=SHAPE, num_classes=K), victim)
    base = ["attack", "--victim", str(victim), "--attack", "knockoff", "--queryset", "digits", "--budget", "30",
            "--epochs", "1", "--device", "cpu", "--quiet", "--defense", "mad:epsilon=0.5"]
    assert main([*base, "--out", str(tmp_path / "r.json"), "--attack-param", "invert=mad:epsilon=0.5"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["attack_params"]["invert"] == "mad:epsilon=0.5"
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "bad.json"), "--attack-param", "invert=madd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown inverter 'madd'" in err[0]
