"""RunTable: appends under a lock, reads tables of the earlier layout and rewrites them on the first append."""

from __future__ import annotations

import csv
import dataclasses
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from stealguard.harness.run_table import RunTable
from stealguard.runspec import RunResult, RunSpec

SPEC = RunSpec(victim={"dataset": "digits", "arch": "mlp"}, defense="mad:epsilon=0.5", attack="knockoff", budget=100, seed=0)


def make_result(seed: int = 0, **changes) -> RunResult:
    spec = SPEC.model_copy(update={"seed": seed})
    identity = {
        "key": spec.key(), "spec": spec.model_dump_json(), "victim": "digits-mlp", "victim_dataset": "digits",
        "victim_arch": "mlp", "victim_variant": "float", "victim_accuracy": 0.95, "defense": "mad",
        "defense_label": "mad:epsilon=0.5", "defense_params": '{"epsilon":0.5}', "attack": "knockoff",
        "attack_label": "knockoff", "attack_params": "{}", "queryset": None, "budget": 100, "seed": seed, "defense_seed": 7,
    }
    values = {"attacker_accuracy": 0.1 + seed / 100, "l1_mean": 1 / 3, "elapsed_s": 2.5, "device": "cpu", "code_version": "0.1+abc"}
    return RunResult(**identity, **{**values, **changes})


def write_earlier(path: Path, results: list[RunResult]) -> None:
    """A table as written before the added columns existed: the current table less those columns."""
    current = path.with_name("current.csv")
    for result in results:
        RunTable(current).append(result)
    with open(current, newline="") as source, open(path, "w", newline="") as target:
        writer = csv.DictWriter(target, RunResult.earlier_columns(), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(csv.DictReader(source))
    current.unlink()


def test_the_earlier_layout_lacks_exactly_the_added_columns() -> None:
    assert set(RunResult.columns()) - set(RunResult.earlier_columns()) == set(RunResult.ADDED_COLUMNS) == {"device"}
    assert [name for name in RunResult.columns() if name in RunResult.earlier_columns()] == list(RunResult.earlier_columns())


def test_rows_round_trip_with_their_device(tmp_path: Path) -> None:
    table = RunTable(tmp_path / "results.csv")
    table.append(make_result(0))
    table.append(make_result(1, device="cuda:0 (NVIDIA H100 80GB HBM3)"))
    assert [result.device for result in table.results()] == ["cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"]
    assert table.results()[0] == make_result(0)


def test_an_earlier_table_reads_its_rows_with_no_device(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    write_earlier(path, [make_result(0), make_result(1)])
    stored = RunTable(path).results()
    assert [result.device for result in stored] == ["", ""]
    assert stored == [dataclasses.replace(make_result(seed), device="") for seed in (0, 1)]
    assert list(RunTable(path).frame().columns) == list(RunResult.columns())


def test_the_first_append_rewrites_an_earlier_table_keeping_every_value(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    write_earlier(path, [make_result(0), make_result(1)])
    path.chmod(0o640)
    mode = stat.S_IMODE(path.stat().st_mode)
    with open(path, newline="") as handle:
        before = list(csv.DictReader(handle))
    RunTable(path).append(make_result(2))
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == RunResult.columns()
        after = list(reader)
    assert [{name: row[name] for name in RunResult.earlier_columns()} for row in after[:2]] == before
    assert [row["device"] for row in after] == ["", "", "cpu"]
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [result.seed for result in RunTable(path).results()] == [0, 1, 2]
    assert not [entry for entry in tmp_path.iterdir() if entry.name != "results.csv"]


def test_a_foreign_header_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="header differs"):
        RunTable(path).append(make_result(0))
    with pytest.raises(ValueError, match="header differs"):
        RunTable(path).results()
    assert path.read_text() == "a,b\n1,2\n"


def _append_seeds(path: str, seeds: list[int]) -> None:
    table = RunTable(path)
    for seed in seeds:
        table.append(make_result(seed))


def test_appenders_in_several_processes_lose_no_row_while_the_table_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    write_earlier(path, [make_result(100)])
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_seeds, args=(str(path), list(range(start, start + 20)))) for start in (0, 20, 40)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert sorted(result.seed for result in RunTable(path).results()) == [*range(60), 100]


def test_take_removes_the_rows_with_those_keys_and_returns_them(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    write_earlier(path, [make_result(seed) for seed in range(4)])
    table = RunTable(path)
    wanted = {make_result(1).key, make_result(3).key, "absent"}
    assert [result.seed for result in table.take(wanted)] == [1, 3]
    assert [result.seed for result in table.results()] == [0, 2]
    assert table.take(wanted) == [] and RunTable(tmp_path / "none.csv").take(wanted) == []
    with open(path, newline="") as handle:
        assert tuple(next(csv.reader(handle))) == RunResult.columns()


def test_rewriting_leaks_no_file_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    write_earlier(path, [make_result(seed) for seed in range(3)])
    table = RunTable(path)
    before = len(os.listdir("/proc/self/fd"))
    table.append(make_result(3))
    table.take({make_result(0).key})
    assert len(os.listdir("/proc/self/fd")) == before
