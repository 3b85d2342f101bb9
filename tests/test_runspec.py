"""RunSpec and friends: values that validate, print, hash and round-trip; RunResult rows."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from stealguard.runspec import AttackSpec, DefenseSpec, DPVariant, Env, Int8Variant, RunResult, RunSpec, VictimSpec
from stealguard.seeds import derive_seed

VICTIM = VictimSpec(dataset="digits", arch="mlp", train={"epochs": 2})


def _spec(**changes) -> RunSpec:
    settings = {"victim": VICTIM, "defense": "mad:epsilon=0.5", "attack": "knockoff:epochs=2", "budget": 100}
    settings.update(changes)
    return RunSpec(**settings)


def test_specs_parse_print_and_round_trip() -> None:
    spec = _spec()
    assert spec.defense == DefenseSpec(name="mad", params={"epsilon": 0.5})
    assert str(spec.defense) == "mad:epsilon=0.5" and str(spec.attack) == "knockoff:epochs=2"
    assert DefenseSpec.model_validate(str(spec.defense)) == spec.defense
    assert RunSpec.model_validate_json(spec.model_dump_json()) == spec
    assert RunSpec.model_validate(spec.model_dump()) == spec
    assert str(DefenseSpec.model_validate("random_noise:epsilon=0.5,consistent=true")) == "random_noise:epsilon=0.5,consistent=true"


def test_the_defense_seed_is_derived_and_recorded() -> None:
    spec = _spec(seed=3)
    assert spec.defense_seed == derive_seed(3, "defense") != 3
    assert _spec(seed=3, defense_seed=3).defense_seed == 3
    assert RunSpec.model_validate_json(spec.model_dump_json()).defense_seed == spec.defense_seed


def test_keys_are_stable_and_tell_specs_apart() -> None:
    assert _spec().key() == _spec().key()
    different = [_spec(seed=1), _spec(defense="mad:epsilon=0.6"), _spec(budget=101), _spec(defense_seed=5),
                 _spec(victim=VICTIM.model_copy(update={"variant": Int8Variant()})), _spec(queryset="digits")]
    assert len({spec.key() for spec in different} | {_spec().key()}) == len(different) + 1


def test_victim_labels_name_the_variant() -> None:
    assert VICTIM.label().startswith("digits-mlp-")
    assert "-int8-" in VICTIM.model_copy(update={"variant": Int8Variant()}).label()
    assert "-dp1.5-" in VICTIM.model_copy(update={"variant": DPVariant(noise_multiplier=1.5)}).label()
    assert VictimSpec(dataset="cifar10:half=0", arch="lenet").dataset == "cifar10:half=0,seed=0"
    int8 = VICTIM.model_copy(update={"variant": Int8Variant(calibration=64)})
    assert int8.float_base() == VICTIM and VICTIM.float_base() == VICTIM


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"defense": "nonsense"}, "unknown defense 'nonsense'"),
        ({"defense": "topk:kk=2"}, "takes no parameter"),
        ({"defense": "mad:epsilon"}, "key=value"),
        ({"attack": "jbdx"}, "unknown attack 'jbdx'"),
        ({"attack": "knockoff:epochz=1"}, "takes no parameter"),
        ({"budget": 0}, "budget"),
        ({"seed": -1}, "seed"),
        ({"queryset": "cifar10:half=7"}, "half"),
        ({"surplus": 1}, "surplus"),
    ],
)
def test_bad_specs_name_the_field(changes: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        _spec(**changes)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"dataset": "digits", "arch": "nosuch"}, "unknown architecture"),
        ({"dataset": "digits", "arch": "mlp", "train": {"epochz": 1}}, "unknown training setting"),
        ({"dataset": "digits", "arch": "mlp", "variant": {"kind": "int4"}}, "variant"),
        ({"dataset": "digits", "arch": "mlp", "variant": {"kind": "dp", "noise_multiplier": -1}}, "noise_multiplier"),
    ],
)
def test_bad_victims_are_refused(fields: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        VictimSpec(**fields)


def test_specs_are_frozen() -> None:
    spec = _spec()
    with pytest.raises(ValidationError):
        spec.budget = 5  # type: ignore[misc]


def test_run_result_rows_round_trip_through_strings() -> None:
    class Card:
        dataset, arch, test_accuracy, quantization, dp = "digits", "mlp", 0.9, None, None

    spec = _spec()
    result = RunResult(**RunResult.identity(spec, victim_card=Card()), attacker_accuracy=0.5, queries_used=100)
    as_strings = {key: "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
                  for key, value in result.to_row().items()}
    back = RunResult.from_row(as_strings)
    assert back.attacker_accuracy == 0.5 and back.queries_used == 100 and math.isnan(back.fidelity)
    assert back.run_spec() == spec and back.key == spec.key()
    assert list(result.to_row()) == list(RunResult.columns())
    with pytest.raises(ValueError, match="lacks column"):
        RunResult.from_row({"key": "x"})
    with pytest.raises(ValueError, match="budget"):
        RunResult.from_row({**as_strings, "budget": "many"})


def test_env_defaults_do_not_oversubscribe() -> None:
    assert Env().threads == 1 and Env().progress is False
    with pytest.raises(ValidationError, match="threads"):
        Env(threads=0)


def test_attack_spec_from_a_string() -> None:
    assert AttackSpec.model_validate("jbda:seed_size=10,round_epochs=1").params == {"seed_size": 10, "round_epochs": 1}


def test_module_doctest() -> None:
    import doctest

    import stealguard.runspec

    assert doctest.testmod(stealguard.runspec).failed == 0


def test_stealguard_run_is_the_entry_point() -> None:
    import stealguard
    from stealguard.harness.run import run

    assert stealguard.run is run
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        stealguard.nothing  # noqa: B018
