"""run(spec, env): one experiment from its spec; the victim cache; victims as bundles."""

from __future__ import annotations

from pathlib import Path

import pytest

import stealguard.harness.run as run_module
from stealguard.harness import run_attack
from stealguard.harness.run import VictimBundle, failed_result, prepare_victim, run, victim_dir
from stealguard.harness.run_table import RunTable
from stealguard.runspec import DPVariant, Env, RunResult, RunSpec, VictimSpec

VICTIM = VictimSpec(dataset="digits", arch="mlp", train={"epochs": 2})
SPEC = RunSpec(victim=VICTIM, defense="mad:epsilon=0.5", attack="knockoff:epochs=1,batch_size=32", queryset="digits", budget=120, seed=1)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return Env(victim_cache=str(tmp_path_factory.mktemp("victims")), device="cpu")


@pytest.fixture(scope="module")
def result(env: Env) -> RunResult:
    return run(SPEC, env)


def test_run_matches_run_attack_on_the_same_settings(result: RunResult, env: Env) -> None:
    folder = victim_dir(VICTIM, env)
    direct = run_attack(
        victim=folder, defense="mad:epsilon=0.5", attack="knockoff", attack_params={"epochs": 1, "batch_size": 32},
        queryset="digits", budget=120, seed=1, defense_seed=SPEC.defense_seed, device="cpu", progress=False,
    )
    assert result.status == "ok" and result.key == SPEC.key()
    assert result.attacker_accuracy == direct["attacker_accuracy"] and result.l1_mean == direct["l1_mean"]
    assert result.angular_deviation_deg == direct["angular_deviation_mean"]
    assert result.queries_used == 120 and result.defense_seed == SPEC.defense_seed and result.victim == VICTIM.label()
    assert result.victim_variant == "float" and 0 < result.victim_accuracy <= 1 and result.device == "cpu"


def test_the_victim_is_trained_once(result: RunResult, env: Env, monkeypatch) -> None:
    def refuse(**_kwargs):
        raise AssertionError("the cached victim was trained again")

    monkeypatch.setattr(run_module, "train_victim", refuse)
    again = run(SPEC, env)
    assert {name: getattr(again, name) for name in RunResult.METRICS} == {name: getattr(result, name) for name in RunResult.METRICS}


def test_a_dp_variant_is_its_own_victim(env: Env) -> None:
    spec = SPEC.model_copy(update={"victim": VICTIM.model_copy(update={"variant": DPVariant(noise_multiplier=1.0)}), "defense": SPEC.defense.model_copy(update={"name": "none", "params": {}})})
    outcome = run(spec, env)
    assert outcome.victim_variant == "dp" and outcome.victim != VICTIM.label()


def test_a_saved_victim_directory_can_be_the_victim(result: RunResult, env: Env) -> None:
    spec = SPEC.model_copy(update={"victim": str(victim_dir(VICTIM, env))})
    outcome = run(spec, env)
    assert outcome.attacker_accuracy == result.attacker_accuracy and outcome.victim == str(victim_dir(VICTIM, env))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run(SPEC.model_copy(update={"victim": str(Path(env.victim_cache) / "nowhere")}), env)


def test_bundles_carry_a_victim_to_another_cache(result: RunResult, env: Env, tmp_path: Path) -> None:
    bundle = VictimBundle.of(prepare_victim(VICTIM, env))
    assert {"card.json", "model.safetensors"} <= set(bundle.files)
    elsewhere = env.model_copy(update={"victim_cache": str(tmp_path)})
    folder = bundle.materialize(elsewhere)
    assert folder == tmp_path / VICTIM.label()
    assert VictimBundle.of(folder).files == bundle.files
    assert bundle.materialize(elsewhere) == folder
    outcome = run(SPEC, elsewhere, victim=folder)
    assert outcome.attacker_accuracy == result.attacker_accuracy


@pytest.mark.parametrize("name", ["../escape", "/abs/path"])
def test_bundles_refuse_paths_outside_their_folder(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside its folder"):
        VictimBundle(label="v", files={name: b"x"}).materialize(Env(victim_cache=str(tmp_path)))


def test_failed_results_say_why(tmp_path: Path) -> None:
    failure = failed_result(SPEC, ValueError("epochs must be >= 1, got 0"))
    assert failure.status == "failed" and failure.error == "ValueError: epochs must be >= 1, got 0"
    table = RunTable(tmp_path / "failed.csv")
    table.append(failure)
    assert table.results()[0].error == failure.error and table.keys() == {SPEC.key()}


def test_run_table_appends_and_checks_its_header(result: RunResult, tmp_path: Path) -> None:
    table = RunTable(tmp_path / "results.csv")
    assert not table.exists() and table.results() == []
    table.append(result)
    table.append(result)
    assert len(table.results()) == 2 and table.results()[0].attacker_accuracy == result.attacker_accuracy
    assert list(table.frame().columns) == list(RunResult.columns())
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="header differs"):
        RunTable(other).append(result)


def test_a_dp_victim_is_measured_against_its_float_twin(env: Env, result: RunResult) -> None:
    dp = VICTIM.model_copy(update={"variant": DPVariant(noise_multiplier=2.0)})
    spec = SPEC.model_copy(update={"victim": dp, "defense": SPEC.defense.model_copy(update={"name": "none", "params": {}})})
    outcome = run(spec, env)
    assert dp.undefended() == VICTIM and VICTIM.undefended() == VICTIM
    assert outcome.victim_accuracy == outcome.clean_accuracy == pytest.approx(result.victim_accuracy, abs=1e-6)
    assert outcome.l1_mean > 0.01 and outcome.l1_max >= outcome.l1_mean
    assert outcome.defender_accuracy != outcome.clean_accuracy or outcome.l1_mean > 0
