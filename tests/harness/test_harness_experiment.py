"""run_attack, build_defense, sweep, tables and plots on a tiny digits victim."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from stealguard import data, defenses
from stealguard.harness import (
    build_defense,
    fit_victim,
    format_table,
    load_victim,
    make_surrogate,
    plot_tradeoff,
    run_attack,
    sweep,
    write_json,
)
from stealguard.harness.run_table import RunTable
from stealguard.runspec import RunResult
from stealguard.seeds import derive_seed

ATTACK = {"epochs": 3, "batch_size": 32}
METRICS = (
    "defender_accuracy",
    "clean_accuracy",
    "attacker_accuracy",
    "fidelity",
    "l1_mean",
    "l1_max",
    "query_l1_mean",
    "angular_deviation_mean",
    "queries_used",
)
PARAMETERS = (
    "label",
    "defense",
    "defense_params",
    "attack",
    "attack_params",
    "budget",
    "seed",
    "defense_seed",
    "queryset",
    "test_set",
    "test_size",
    "victim",
    "device",
    "stealguard_version",
    "latency_ratio",
    "latency_defended_s",
    "latency_undefended_s",
    "elapsed_s",
)


@pytest.fixture(scope="module")
def split() -> tuple[data.ImageDataset, data.ImageDataset, data.ImageDataset]:
    train = data.load_dataset("digits", split="train")
    victim_part, query_part = data.split_dataset(train, 0.5, 0, stratify=True)
    test = data.load_dataset("digits", split="test")
    return victim_part, query_part, test.subset(range(120))


@pytest.fixture(scope="module")
def victim(split, tmp_path_factory: pytest.TempPathFactory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("victim")
    fit_victim(split[0], split[2], arch="mlp", epochs=5, seed=0, device="cpu", out=out, progress=False)
    torch.set_num_threads(threads)
    return out


def _run(victim: Path, split, **kwargs) -> dict:
    settings = {
        "victim": victim,
        "attack": "knockoff",
        "attack_params": ATTACK,
        "queryset": split[1],
        "budget": 150,
        "seed": 0,
        "device": "cpu",
        "progress": False,
        "test_set": split[2],
    }
    settings.update(kwargs)
    return run_attack(**settings)


def test_run_attack_has_every_key_and_is_json(victim: Path, split) -> None:
    result = _run(victim, split, defense="mad:epsilon=0.8")
    assert set(METRICS + PARAMETERS) <= set(result)
    assert json.loads(json.dumps(result)) == result
    assert result["queries_used"] == result["budget"] == 150
    assert result["defense"] == "mad" and result["label"] == "mad:epsilon=0.8"
    assert "surrogate" not in result["defense_params"] and result["defense_params"]["epsilon"] == 0.8
    assert result["attack_params"]["epochs"] == 3 and result["attack_params"]["replica_arch"] == "mlp"
    assert result["victim"]["arch"] == "mlp" and result["victim"]["dataset"] == "digits"
    assert 0 < result["l1_mean"] <= result["l1_max"] <= 0.8 + 1e-6
    assert 0 < result["angular_deviation_mean"] <= 180
    assert result["test_size"] == 120


def test_run_attack_is_reproducible(victim: Path, split) -> None:
    first = _run(victim, split, defense="random_noise:epsilon=0.5", seed=4)
    second = _run(victim, split, defense="random_noise:epsilon=0.5", seed=4)
    other = _run(victim, split, defense="random_noise:epsilon=0.5", seed=5)
    assert {k: first[k] for k in METRICS} == {k: second[k] for k in METRICS}
    assert {k: first[k] for k in METRICS} != {k: other[k] for k in METRICS}
    assert first["seed"] == 4 and first["defense_seed"] == derive_seed(4, "defense") != 4
    assert first["defense_params"]["seed"] == first["defense_seed"]
    pinned = _run(victim, split, defense="random_noise:epsilon=0.5", seed=4, defense_seed=first["defense_seed"])
    assert {k: pinned[k] for k in METRICS} == {k: first[k] for k in METRICS}


def test_none_has_no_distortion(victim: Path, split) -> None:
    result = _run(victim, split, defense="none")
    assert result["l1_mean"] < 1e-6 and result["query_l1_mean"] < 1e-6
    assert result["defender_accuracy"] == result["clean_accuracy"]
    assert result["angular_deviation_mean"] == pytest.approx(0.0, abs=1e-3)


def test_run_attack_loads_named_data(victim: Path) -> None:
    result = run_attack(
        victim=victim, defense="label_only", attack_params=ATTACK, queryset="digits", budget=40, device="cpu", progress=False
    )
    assert result["queryset"] == "digits" and result["test_set"] == "digits"
    assert result["defender_accuracy"] == result["clean_accuracy"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"defense": "nonsense"}, ValueError, "unknown defense 'nonsense'"),
        ({"defense": "mad:epsilon=7"}, ValueError, "epsilon must be in"),
        ({"defense": "mad:epsilon"}, ValueError, "key=value"),
        ({"defense": "topk:kk=2"}, TypeError, "unknown parameter"),
        ({"attack": "jbdx"}, ValueError, "unknown attack"),
        ({"budget": 0}, ValueError, "budget"),
        ({"attack_params": {"epochs": 0}}, ValueError, "epochs"),
        ({"queryset": "no_such_data"}, ValueError, "no_such_data"),
    ],
)
def test_run_attack_errors(victim: Path, split, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        _run(victim, split, **kwargs)


def test_missing_victim_dir(tmp_path: Path, split) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _run(tmp_path / "nowhere", split)


def test_build_defense_surrogate(victim: Path) -> None:
    _, card = load_victim(victim)
    defense, label = build_defense("mad_argmax:epsilon=0.5", card=card, seed=3)
    assert label == "mad_argmax:epsilon=0.5" and defense.name == "mad_argmax"
    reference = make_surrogate(card, 3)
    for a, b in zip(defense.surrogate.parameters(), reference.parameters()):
        assert torch.equal(a, b)
    assert not defense.surrogate.training
    given = defenses.create("topk", k=2)
    assert build_defense(given, card=card, seed=0) == (given, "topk")
    assert build_defense(None, card=card, seed=0)[0].name == "none"


def test_sweep_writes_run_result_rows_json_png(victim: Path, tmp_path: Path) -> None:
    specs = ["mad:epsilon=0.3", "mad:epsilon=1.0", "topk:k=1"]
    results = sweep(
        victim=victim, defenses=specs, attack_params=ATTACK, queryset="digits", budget=60, device="cpu", progress=False, out_dir=tmp_path,
    )
    assert [result.defense_label for result in results] == ["none", *specs]
    with (tmp_path / "results.csv").open() as handle:
        header = next(csv.reader(handle))
    assert tuple(header) == RunResult.columns()
    stored = RunTable(tmp_path / "results.csv").results()
    assert [result.key for result in stored] == [result.key for result in results]
    assert {result.defense_seed for result in stored} == {derive_seed(0, "defense")} and {result.seed for result in stored} == {0}
    assert stored[1].l1_mean < stored[2].l1_mean and stored[0].queries_used == 60
    assert stored[1].run_spec().victim == str(victim) and stored[1].run_spec().queryset == "digits"
    assert json.loads((tmp_path / "results.json").read_text())[3]["defense"] == "topk"
    assert (tmp_path / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError, match="results.csv exists"):
        sweep(victim=victim, defenses=["none"], queryset="digits", budget=5, out_dir=tmp_path, progress=False)


def test_sweep_checks_every_spec_first(victim: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown defense 'bogus'"):
        sweep(victim=victim, defenses=["none", "bogus"], queryset="digits", budget=5, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="non-empty list"):
        sweep(victim=victim, defenses=[], queryset="digits", budget=5, out_dir=tmp_path)
    with pytest.raises(ValueError, match="epsilon"):
        sweep(victim=victim, defenses=["none", "mad:epsilon=-1"], queryset="digits", budget=5, out_dir=tmp_path, progress=False)
    with pytest.raises(TypeError, match="spec strings"):
        sweep(victim=victim, defenses=[defenses.create("topk", k=1)], queryset="digits", budget=5, out_dir=tmp_path)
    assert not (tmp_path / "results.csv").exists()


def test_tables_and_plot(tmp_path: Path) -> None:
    rows = [
        {"label": "none", "defense": "none", "defender_accuracy": 0.9, "attacker_accuracy": 0.8, "l1_mean": 0.0, "latency_ratio": 1.0},
        {"label": "mad:epsilon=0.5", "defense": "mad", "defender_accuracy": 0.85, "attacker_accuracy": 0.5, "l1_mean": 0.5},
        {"label": "mad:epsilon=0.2", "defense": "mad", "defender_accuracy": 0.9, "attacker_accuracy": 0.7, "l1_mean": 0.2},
    ]
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["defense", "defender"]
    assert len(lines) == 5 and "0.850" in lines[3] and lines[3].rstrip().endswith("-")
    assert plot_tradeoff(rows, tmp_path / "p.png").stat().st_size > 1000
    write_json({"ratio": math.inf}, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == {"ratio": "inf"}


@pytest.mark.parametrize("attack", ["dfme", "maze"])
def test_data_free_attacks_need_no_queryset(victim: Path, split, attack: str) -> None:
    params = {"batch_size": 16, "latent_dim": 8, "generator_width": 4}
    result = _run(victim, split, attack=attack, attack_params=params, queryset="no-such-dataset", budget=200, defense="dcp")
    assert result["queryset"] is None and result["queries_used"] == 200
    assert result["attack_report"]["iterations"] >= 1
    assert 0 <= result["attacker_accuracy"] <= 1 and 0 <= result["fidelity"] <= 1


def test_jacobian_attack_through_the_harness_reports_rounds(victim: Path, split) -> None:
    params = {"epochs": 2, "round_epochs": 2, "seed_size": 10}
    result = _run(victim, split, attack="jb_top3", attack_params=params, budget=130)
    assert result["queries_used"] == 130 and result["queryset"] == split[1].name
    assert result["attack_report"] == {"rounds": 2, "transfer_set_size": 130}


def test_a_dp_victims_record_reaches_the_result(victim: Path, split, tmp_path: Path) -> None:
    assert _run(victim, split, budget=50)["victim"]["dp"] is None
    out = tmp_path / "dp-victim"
    fit_victim(split[0].subset(range(200)), split[2], arch="mlp", epochs=1, seed=0, device="cpu", out=out, progress=False,
               dp={"noise_multiplier": 1.0, "max_grad_norm": 1.0})
    result = _run(out, split, budget=50)
    assert result["victim"]["dp"]["noise_multiplier"] == 1.0 and result["victim"]["dp"]["epsilon"] > 0
    assert json.loads(json.dumps(result)) == result


def test_mad_surrogate_victim_is_a_frozen_copy_of_the_victim(victim: Path) -> None:
    model, card = load_victim(victim)
    defense, label = build_defense("mad:epsilon=0.5,surrogate=victim", card=card, seed=0, victim_dir=victim)
    assert label == "mad:epsilon=0.5,surrogate=victim"
    assert defense.surrogate is not model
    for a, b in zip(defense.surrogate.parameters(), model.parameters()):
        assert torch.equal(a, b) and not a.requires_grad
    given, _ = build_defense("mad:surrogate=victim", card=card, seed=0, victim_model=model)
    assert all(torch.equal(a, b) for a, b in zip(given.surrogate.parameters(), model.parameters()))


def test_mad_surrogate_from_a_model_directory(victim: Path, split, tmp_path: Path) -> None:
    _, card = load_victim(victim)
    proxy_dir = tmp_path / "proxy"
    fit_victim(split[1], split[2], arch="mlp", epochs=1, seed=9, device="cpu", out=proxy_dir, progress=False)
    proxy, _ = load_victim(proxy_dir)
    defense, _ = build_defense(f"mad:epsilon=0.5,surrogate={proxy_dir}", card=card, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(defense.surrogate.parameters(), proxy.parameters()))
    result = _run(victim, split, defense=f"mad:epsilon=0.5,surrogate={proxy_dir}")
    assert result["label"].endswith(f"surrogate={proxy_dir}") and 0 < result["l1_mean"] <= 0.5 + 1e-6
    random_default, _ = build_defense("mad:surrogate=random", card=card, seed=3)
    reference = make_surrogate(card, 3)
    assert all(torch.equal(a, b) for a, b in zip(random_default.surrogate.parameters(), reference.parameters()))


@pytest.mark.parametrize(
    ("surrogate", "error", "match"),
    [
        ("victim", ValueError, "needs the victim model or its directory"),
        ("no/such/folder", FileNotFoundError, "no such model directory"),
    ],
)
def test_mad_surrogate_errors(victim: Path, surrogate: str, error: type, match: str) -> None:
    _, card = load_victim(victim)
    with pytest.raises(error, match=match):
        build_defense(f"mad:surrogate={surrogate}", card=card, seed=0)


def test_mad_surrogate_of_another_shape_is_refused(victim: Path) -> None:
    _, card = load_victim(victim)
    eleven = dataclasses.replace(card, num_classes=card.num_classes + 1, classes=(*card.classes, "extra"))
    with pytest.raises(ValueError, match="the victim takes"):
        build_defense(f"mad:surrogate={victim}", card=eleven, seed=0)


def test_results_say_where_they_came_from(victim: Path, split) -> None:
    from stealguard.provenance import code_version, portable_path

    result = _run(victim, split, defense="mad:epsilon=0.5")
    assert result["code_version"] == code_version() and "+g" in result["code_version"]
    assert result["victim_path"] == portable_path(victim) and not Path(result["victim_path"]).is_absolute()
    assert Path(result["victim_path"]).resolve() == victim.resolve() and result["data_root"] is None
    assert result["surrogate"] == "random" and result["units"]["angular_deviation_mean"] == "degrees"
    assert _run(victim, split, defense="topk:k=2")["surrogate"] is None
    assert _run(victim, split, defense="mad:epsilon=0.5,surrogate=victim")["surrogate"] == "victim"
