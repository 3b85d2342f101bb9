"""run_grid on a tiny digits grid: rows for every cell, resume, selection, failures, DP-SGD victims, workers."""

from __future__ import annotations

import json

import pytest

from stealguard import models
from stealguard.data import DataNotFoundError

from stealguard.harness.grid import grid_from_dict
from stealguard.harness.reproduce import check_cached_victim, code_version, prepare_victim, run_grid, select_cells, victim_path
from stealguard.harness.results import ResultsFile

CONFIG = {
    "name": "tiny",
    "budget": 200,
    "seeds": [0],
    "defenses": ["none", "reverse_sigmoid:beta=0.5", "dp_sgd:noise_multiplier=1.0"],
    "victim": [{"name": "d", "dataset": "digits", "arch": "mlp", "train": {"epochs": 3}}],
    "attack": [{"name": "knockoff", "queryset": "digits", "params": {"epochs": 2}}],
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    grid = grid_from_dict(CONFIG)
    results = ResultsFile(root / "results.csv")
    rows, failures = run_grid(grid, results=results, work_dir=root / "work", data_root=None, device="cpu", progress=False)
    return grid, results, root, rows, failures


def test_every_cell_has_a_row_with_its_parameters(finished):
    grid, results, root, rows, failures = finished
    assert failures == []
    stored = results.rows()
    assert [r["key"] for r in stored] == [c.key() for c in grid.cells()] == [r["key"] for r in rows]
    for row in stored:
        assert row["queries_used"] <= row["budget"] == 200
        assert 0.0 <= row["attacker_accuracy"] <= 1.0 and 0.0 <= row["defender_accuracy"] <= 1.0
        assert row["code_version"] == code_version() and row["code_version"].startswith("0.")
        assert row["victim"] == "d" and row["attack_name"] == "knockoff" and row["queryset"] == "digits"
    assert [r["defense"] for r in stored] == ["none", "reverse_sigmoid", "dp_sgd"]


def test_dp_sgd_cell_attacks_a_dp_victim_and_measures_its_distance(finished):
    grid, results, root, _rows, _failures = finished
    dp_cell = [c for c in grid.cells() if c.dp is not None][0]
    assert (victim_path(root / "work", dp_cell.victim, dp_cell.dp) / "card.json").is_file()
    none_row, _rs, dp_row = results.rows()
    assert dp_row["defense_params"] == {"noise_multiplier": 1.0, "max_grad_norm": 1.0}
    assert dp_row["l1_mean"] > 0.0 and dp_row["l1_max"] >= dp_row["l1_mean"]
    assert dp_row["victim_accuracy"] == none_row["victim_accuracy"]
    assert abs(none_row["defender_accuracy"] - none_row["victim_accuracy"]) < 1e-6
    assert dp_row["defender_accuracy"] != none_row["defender_accuracy"]


@pytest.mark.parametrize(
    ("victim", "match"),
    [
        ({"seed": 3}, r"seed: card 0, grid 3"),
        ({"arch": "lenet"}, r"arch: card 'mlp', grid 'lenet'"),
        ({"dataset": "digits:half=0"}, r"dataset: card 'digits', grid 'digits:half=0,seed=0'"),
    ],
)
def test_a_cached_victim_that_is_not_the_grids_is_refused(finished, victim, match):
    _grid, _results, root, _rows, _failures = finished
    other = grid_from_dict(dict(CONFIG, victim=[{**CONFIG["victim"][0], **victim}])).victims[0]
    card_before = (victim_path(root / "work", other) / "card.json").read_text()
    with pytest.raises(ValueError, match=match) as info:
        prepare_victim(other, work_dir=root / "work", data_root=None, device="cpu", progress=False)
    assert "'d'" in str(info.value) and "--work" in str(info.value)
    assert (victim_path(root / "work", other) / "card.json").read_text() == card_before


def test_cached_victims_are_checked_for_int8_and_dp_settings(finished):
    grid, _results, root, _rows, _failures = finished
    spec = grid.victims[0]
    dp_dir = victim_path(root / "work", spec, {"noise_multiplier": 1.0, "max_grad_norm": 1.0})
    check_cached_victim(dp_dir, spec, {"noise_multiplier": 1.0, "max_grad_norm": 1.0})
    with pytest.raises(ValueError, match=r"dp: card \{'noise_multiplier': 1.0, 'max_grad_norm': 1.0\}, grid \{'noise_multiplier': 2.0"):
        check_cached_victim(dp_dir, spec, {"noise_multiplier": 2.0, "max_grad_norm": 1.0})
    with pytest.raises(ValueError, match=r"dp: card None"):
        check_cached_victim(victim_path(root / "work", spec), spec, {"noise_multiplier": 1.0, "max_grad_norm": 1.0})
    int8_spec = grid_from_dict(dict(CONFIG, victim=[*CONFIG["victim"], {"name": "d8", "int8": {"of": "d"}}])).victims[1]
    with pytest.raises(ValueError, match=r"int8: card False, grid True"):
        check_cached_victim(victim_path(root / "work", spec), int8_spec)


def test_resume_runs_nothing_twice(finished):
    grid, results, root, _rows, _failures = finished
    before = results.path.read_text()
    rows, failures = run_grid(grid, results=results, work_dir=root / "work", data_root=None, device="cpu", progress=False)
    assert rows == [] and failures == [] and results.path.read_text() == before


def test_selection_and_failures_do_not_stop_the_sweep(tmp_path):
    config = dict(CONFIG, defenses=["none", "rounding:decimals=1"], attack=[
        {"name": "knockoff", "queryset": "digits", "params": {"epochs": 1}},
        {"name": "broken", "attack": "knockoff", "queryset": "mnist", "params": {"epochs": 1}},
    ])
    grid = grid_from_dict(config)
    results = ResultsFile(tmp_path / "r.csv")
    rows, failures = run_grid(
        grid, results=results, work_dir=tmp_path / "w", data_root=tmp_path / "no-data", device="cpu", progress=False,
        select=select_cells(defenses=["rounding"]),
    )
    assert [r["label"] for r in rows] == ["rounding:decimals=1"]
    assert [(c.attack.name, type(e)) for c, e in failures] == [("broken", DataNotFoundError)]
    assert "mnist" in str(failures[0][1])
    assert results.keys() == {rows[0]["key"]}


@pytest.mark.integration
def test_two_worker_processes_give_the_same_rows_as_one(finished, tmp_path):
    grid, results, root, _rows, _failures = finished
    parallel = ResultsFile(tmp_path / "r.csv")
    select = select_cells(defenses=["none", "reverse_sigmoid"])
    rows, failures = run_grid(grid, results=parallel, work_dir=root / "work", data_root=None, device="cpu", progress=False, workers=2, select=select)
    assert failures == [] and len(rows) == 2
    serial = {r["key"]: r for r in results.rows()}
    for row in parallel.rows():
        assert row["attacker_accuracy"] == serial[row["key"]]["attacker_accuracy"]
        assert row["defender_accuracy"] == serial[row["key"]]["defender_accuracy"]


def test_int8_victim_is_quantized_from_its_cached_base_and_dp_twin(tmp_path):
    config = {
        **CONFIG,
        "defenses": ["none", "dp_sgd:noise_multiplier=1.0"],
        "victim": [*CONFIG["victim"], {"name": "d-int8", "int8": {"of": "d", "calibration": 128}}],
    }
    grid = grid_from_dict(config)
    results = ResultsFile(tmp_path / "results.csv")
    rows, failures = run_grid(
        grid, results=results, work_dir=tmp_path / "work", data_root=None, device="cpu", progress=False,
        select=select_cells(victims=["d-int8"]),
    )
    assert failures == [] and len(rows) == 2
    int8_spec = grid.victims[1]
    base_dir, int8_dir = victim_path(tmp_path / "work", grid.victims[0]), victim_path(tmp_path / "work", int8_spec)
    base_card, int8_card = models.load_card(base_dir), models.load_card(int8_dir)
    assert base_card.quantization is None and int8_card.quantization["calibration_size"] == 128
    assert int8_card.quantization["float_test_accuracy"] == base_card.test_accuracy
    dp = {"noise_multiplier": 1.0, "max_grad_norm": 1.0}
    dp_base_card = models.load_card(victim_path(tmp_path / "work", grid.victims[0], dp))
    dp_int8_card = models.load_card(victim_path(tmp_path / "work", int8_spec, dp))
    assert dp_int8_card.quantization["float_test_accuracy"] == dp_base_card.test_accuracy and dp_int8_card.dp == dp_base_card.dp
    none_row, dp_row = rows
    assert none_row["victim"] == dp_row["victim"] == "d-int8"
    assert none_row["victim_accuracy"] == int8_card.test_accuracy
    assert abs(none_row["defender_accuracy"] - int8_card.test_accuracy) < 1e-6
    assert json.loads(none_row["key"])["victim"]["int8"] == {"of": "d", "calibration": 128, "seed": 0}



def test_misinformation_model_is_trained_once_before_the_cells(tmp_path, monkeypatch):
    import stealguard.harness.reproduce as reproduce
    from stealguard.defenses.misinformation import misinformation_dir

    grid = grid_from_dict(dict(CONFIG, defenses=["adaptive_misinformation:tau=0.5", "adaptive_misinformation:tau=0.9", "none"]))
    base_dir = victim_path(tmp_path / "work", grid.victims[0])
    seen = []
    real_run_cell = reproduce.run_cell

    def checking_run_cell(cell, **kwargs):
        seen.append((cell.defense, (misinformation_dir(base_dir) / "card.json").is_file()))
        return real_run_cell(cell, **kwargs)

    trained = []
    real_for_victim = reproduce.misinformation_for_victim
    monkeypatch.setattr(reproduce, "run_cell", checking_run_cell)
    monkeypatch.setattr(reproduce, "misinformation_for_victim", lambda *a, **k: trained.append(k["victim_dir"]) or real_for_victim(*a, **k))
    rows, failures = run_grid(grid, results=ResultsFile(tmp_path / "r.csv"), work_dir=tmp_path / "work", data_root=None, device="cpu", progress=False)
    assert failures == [] and len(rows) == 3
    assert trained == [base_dir]
    assert seen == [(spec, True) for spec in grid.defenses]


def test_int8_victims_misinformation_model_is_its_base_model_quantized(tmp_path, monkeypatch):
    import stealguard.harness.reproduce as reproduce
    from stealguard.defenses.misinformation import misinformation_dir

    config = {
        **CONFIG,
        "defenses": ["adaptive_misinformation:tau=0.9"],
        "victim": [*CONFIG["victim"], {"name": "d-int8", "int8": {"of": "d", "calibration": 64}}],
    }
    grid = grid_from_dict(config)
    trained = []
    real_for_victim = reproduce.misinformation_for_victim
    monkeypatch.setattr(reproduce, "misinformation_for_victim", lambda *a, **k: trained.append(k["victim_dir"]) or real_for_victim(*a, **k))
    rows, failures = run_grid(
        grid, results=ResultsFile(tmp_path / "r.csv"), work_dir=tmp_path / "work", data_root=None, device="cpu", progress=False,
        select=select_cells(victims=["d-int8"]),
    )
    assert failures == [] and len(rows) == 1
    base_dir, int8_dir = (victim_path(tmp_path / "work", spec) for spec in grid.victims)
    assert trained == [base_dir]
    base_card = models.load_card(misinformation_dir(base_dir))
    int8_card = models.load_card(misinformation_dir(int8_dir))
    assert base_card.quantization is None
    assert int8_card.quantization["calibration_size"] == 64 and int8_card.train == base_card.train
