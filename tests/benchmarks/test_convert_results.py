"""benchmarks/convert_results.py: rows of the earlier runner become RunResult rows of the specs they ran, numbers kept."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from convert_results import OLD_COLUMNS, convert_file, convert_row

from stealguard.harness.ray_grid import load_grid
from stealguard.harness.run_table import RunTable
from stealguard.runspec import DPVariant, Int8Variant, RunResult

HERE = Path(__file__).resolve().parent
OLD = HERE / "data" / "old_results.csv"
"""Three rows of the earlier runner's files as committed: MAD (seed 1), a DP-SGD victim, DCP on the int8 CIFAR victim."""
REPO = HERE.parents[1]
CONFIGS = REPO / "benchmarks" / "configs"


def _old_rows() -> list[dict[str, str]]:
    with open(OLD, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_row_becomes_the_spec_it_ran_with_every_number_kept() -> None:
    old = _old_rows()[0]
    result = convert_row(old)
    spec = result.run_spec()
    assert str(spec.defense) == "mad:epsilon=0.5" and spec.seed == spec.defense_seed == 1 and result.defense_seed == 1
    assert str(spec.attack) == "knockoff:epochs=10" and spec.queryset == "fashionmnist" and spec.budget == 50_000
    assert result.key == spec.key() and result.victim == spec.victim.label()
    for name in ("defender_accuracy", "attacker_accuracy", "fidelity", "l1_mean", "l1_max", "query_l1_mean", "latency_ratio", "elapsed_s"):
        assert getattr(result, name) == float(old[name]), name
    assert result.angular_deviation_deg == float(old["angular_deviation_mean"]) and result.victim_accuracy == float(old["victim_accuracy"])
    assert (result.code_version, result.finished_at, result.queries_used) == (old["code_version"], old["finished_at"], 50_000)
    assert '"seed": 1' in result.attack_report


def test_dp_sgd_rows_are_dp_victims_and_int8_rows_int8_victims() -> None:
    _, dp, dcp = (convert_row(row) for row in _old_rows())
    dp_spec, dcp_spec = dp.run_spec(), dcp.run_spec()
    assert dp_spec.victim.variant == DPVariant(noise_multiplier=0.5, max_grad_norm=1.0) and dp.defense == "none"
    assert dp.query_l1_mean != dp.query_l1_mean
    assert dcp_spec.victim.variant == Int8Variant(calibration=512, seed=0)
    assert str(dcp_spec.defense) == "dcp:tau=0.8,beta=0.3" and dcp_spec.queryset == "cifar10:half=1,seed=0"
    assert dcp_spec.attack.params["policy"] == "adaptive"


def test_converted_specs_are_the_committed_configs_cells_with_the_attackers_seed_for_the_defender() -> None:
    cells = {spec.model_copy(update={"defense_seed": spec.seed}).key() for path in CONFIGS.glob("*.toml") for spec in load_grid(path).specs()}
    assert all(convert_row(row).key in cells for row in _old_rows())


def test_every_committed_results_file_is_converted_and_traces_to_a_config_cell() -> None:
    cells = {spec.model_copy(update={"defense_seed": spec.seed}).key() for path in CONFIGS.glob("*.toml") for spec in load_grid(path).specs()}
    files = sorted(p for folder in ("paper", "dcp-cpu") for p in (REPO / "benchmarks" / "results" / folder).glob("*.csv"))
    assert len(files) == 3
    for path in files:
        results = RunTable(path).results()
        assert results and all(r.key in cells and r.defense_seed == r.seed and r.run_spec().key() == r.key for r in results), path


def test_a_file_is_rewritten_once_and_a_foreign_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    shutil.copy(OLD, path)
    assert convert_file(path) == 3
    assert [r.key for r in RunTable(path).results()] == [convert_row(row).key for row in _old_rows()]
    assert convert_file(path) is None
    with open(path, newline="") as handle:
        assert tuple(next(csv.reader(handle))) == RunResult.columns()
    foreign = tmp_path / "other.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="neither the earlier runner's header"):
        convert_file(foreign)
    assert len(OLD_COLUMNS) == 26


def test_a_row_that_does_not_convert_stops_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    text = OLD.read_text().replace("mad:epsilon=0.5", "mad:nonsense=1", 1)
    path.write_text(text)
    with pytest.raises(ValueError, match=r"results.csv:2: .*nonsense"):
        convert_file(path)
    assert path.read_text() == text
