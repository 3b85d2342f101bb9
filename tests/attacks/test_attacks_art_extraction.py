"""``art_knockoff`` / ``art_copycat``: ART's extraction attacks run as stealguard attacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stealguard import attacks, data
from stealguard.attacks import ArtCopycat, ArtKnockoff
from stealguard.blackbox import BlackBox
from stealguard.cli import main
from stealguard.harness import fit_victim, run_attack

from ._fixtures import SHAPE, RecordingBlackBox, images, random_victim


def _attack(name: str = "art_knockoff", queryset=None, **params):
    settings = {"replica_arch": "mlp", "epochs": 1, "batch_size": 16, "device": "cpu", "progress": False, **params}
    return attacks.create(name, queryset=images(40) if queryset is None else queryset, **settings)


def _weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_registered_with_the_common_constructor() -> None:
    assert {"art_knockoff", "art_copycat"} <= set(attacks.names())
    assert isinstance(_attack(), ArtKnockoff) and isinstance(_attack("art_copycat"), ArtCopycat)
    for name in ("art_knockoff", "art_copycat"):
        accepted = set(attacks.parameters(name))
        assert {"queryset", "replica_arch", "replica_factory", "epochs", "batch_size", "seed", "device", "progress"} <= accepted
    params = _attack().params()
    assert json.loads(json.dumps(params)) == params
    assert params["policy"] == "random" and params["schedule"] == "none"
    assert _attack("art_copycat").params()["train_on"] == "argmax"


@pytest.mark.parametrize("name", ["art_knockoff", "art_copycat"])
@pytest.mark.parametrize(("budget", "repeat"), [(30, 1), (30, 2), (95, 1)])
def test_spends_exactly_its_budget(name, budget, repeat) -> None:
    """Also past the query set's size (40 images), which ART alone would silently cut to 40."""
    box = RecordingBlackBox(random_victim(), budget=200, device="cpu")
    attack = _attack(name, repeat=repeat)
    replica = attack.run(box, budget)
    assert box.queries_used == budget - budget % repeat
    assert attack.report()["nb_stolen"] == budget // repeat
    assert attack.report()["queries_issued"] == box.queries_used
    assert replica(torch.zeros(2, *SHAPE)).shape == (2, 10) and not replica.training
    sent = box.sent()
    counts = torch.unique(sent.flatten(1), dim=0, return_counts=True)[1] // repeat
    asked = budget // repeat
    assert counts.shape[0] == min(asked, 40)
    assert set(counts.tolist()) <= {max(asked // 40, 1), -(-asked // 40)}


def test_same_seed_same_replica_and_numpy_state_restored() -> None:
    victim = random_victim()
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = _attack(seed=4).run(BlackBox(victim, device="cpu"), 30)
    assert np.array_equal(np.random.get_state()[1], before)
    second = _attack(seed=4).run(BlackBox(victim, device="cpu"), 30)
    other = _attack(seed=5).run(BlackBox(victim, device="cpu"), 30)
    assert all(torch.equal(a, b) for a, b in zip(_weights(first), _weights(second)))
    assert not all(torch.equal(a, b) for a, b in zip(_weights(first), _weights(other)))


def test_adaptive_policy_with_labels_that_are_not_0_to_n() -> None:
    queries = data.load_dataset("digits", split="test").subset(range(60))
    x, y = queries.tensors()
    relabelled = data.ImageDataset(x, y * 3 + 5, classes=tuple(str(i) for i in range(40)), name="digits-relabelled")
    box = BlackBox(random_victim(), device="cpu")
    attack = _attack(queryset=relabelled, policy="adaptive", train_on="argmax", reward="cert")
    attack.run(box, 25)
    assert box.queries_used == 25
    assert attack.params()["reward"] == "cert"


def test_adaptive_policy_on_a_tensor_query_set_uses_clusters() -> None:
    box = BlackBox(random_victim(), device="cpu")
    _attack(policy="adaptive", train_on="argmax", num_clusters=3).run(box, 12)
    assert box.queries_used == 12


def test_settings_art_cannot_honour_are_refused() -> None:
    with pytest.raises(ValueError, match="train_on='argmax'"):
        _attack(policy="adaptive")
    with pytest.raises(ValueError, match="schedule must be 'none'"):
        _attack(schedule="cosine")
    with pytest.raises(ValueError, match="arms='labels'"):
        _attack(policy="adaptive", train_on="argmax", arms="labels")
    with pytest.raises(ValueError, match="policy"):
        _attack(policy="greedy")
    with pytest.raises(ValueError, match="num_clusters"):
        _attack(num_clusters=1)
    with pytest.raises(TypeError, match="unknown parameter.*sampling_strategy"):
        _attack(sampling_strategy="random")
    with pytest.raises(ValueError, match="budget 50 exceeds"):
        _attack().run(BlackBox(random_victim(), budget=10, device="cpu"), 50)


@pytest.fixture(scope="module")
def victim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    train = data.load_dataset("digits", split="train")
    test = data.load_dataset("digits", split="test").subset(range(60))
    out = tmp_path_factory.mktemp("art") / "victim"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fit_victim(train, test, arch="mlp", epochs=2, seed=0, device="cpu", out=out, progress=False)
    torch.set_num_threads(threads)
    return out


def test_runs_through_the_harness_against_mad(victim_dir: Path) -> None:
    queries = data.load_dataset("digits", split="test").subset(range(100))
    result = run_attack(
        victim=victim_dir, defense="mad:epsilon=0.5", attack="art_copycat", attack_params={"epochs": 1},
        queryset=queries, budget=40, device="cpu", progress=False, test_set=queries,
    )
    assert result["queries_used"] == 40 and result["attack"] == "art_copycat"
    assert result["attack_report"]["nb_stolen"] == 40 and result["query_l1_mean"] > 0


def test_runs_through_the_cli(victim_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    argv = ["attack", "--victim", str(victim_dir), "--attack", "art_knockoff", "--budget", "50", "--epochs", "1",
            "--device", "cpu", "--quiet", "--queryset", "digits", "--defense", "dcp", "--out", str(out), "--overwrite"]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["attack"] == "art_knockoff" and result["queries_used"] == 50 and result["defense"] == "dcp"
    assert result["attack_report"]["art_version"] == "1.20.1"
    capsys.readouterr()
    assert main([*argv, "--policy", "adaptive"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stealguard: error: ") and "train_on='argmax'" in err and len(err.splitlines()) == 1
