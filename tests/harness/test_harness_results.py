"""ResultsFile: typed round trip, resumable keys, concurrent appends, torn lines, foreign files."""

from __future__ import annotations

import math
import multiprocessing

import pytest

from stealguard.harness.results import RESULT_COLUMNS, ResultsFile


def _row(key: str, **extra) -> dict:
    return {
        "key": key, "victim": "v", "attack_name": "knockoff", "defense": "mad", "label": "mad:epsilon=0.5",
        "defense_params": {"epsilon": 0.5}, "attack_params": {"epochs": 3, "queryset": "digits"},
        "budget": 100, "seed": 1, "attacker_accuracy": 0.875, "l1_mean": 0.1234567890123, "query_l1_mean": None,
        "angular_deviation_mean": math.inf, **extra,
    }


def test_round_trip_types(tmp_path):
    store = ResultsFile(tmp_path / "r.csv")
    store.append(_row("a"))
    (row,) = store.rows()
    assert row["key"] == "a" and row["budget"] == 100 and row["seed"] == 1
    assert row["defense_params"] == {"epsilon": 0.5} and row["attack_params"]["queryset"] == "digits"
    assert row["l1_mean"] == 0.1234567890123
    assert row["query_l1_mean"] is None and row["angular_deviation_mean"] == math.inf
    assert row["fidelity"] is None
    assert (tmp_path / "r.csv").read_text().splitlines()[0].split(",") == list(RESULT_COLUMNS)


def test_keys_and_order(tmp_path):
    store = ResultsFile(tmp_path / "r.csv")
    assert store.rows() == [] and store.keys() == set()
    for key in ("b", "a", "c"):
        store.append(_row(key))
    assert [r["key"] for r in store.rows()] == ["b", "a", "c"]
    assert store.keys() == {"a", "b", "c"}


def test_torn_last_line_is_ignored_and_next_append_starts_a_new_line(tmp_path):
    path = tmp_path / "r.csv"
    store = ResultsFile(path)
    store.append(_row("a"))
    with path.open("a") as handle:
        handle.write('"{half a line')
    assert store.keys() == {"a"}
    store.append(_row("b"))
    assert store.keys() == {"a", "b"}


def test_row_without_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="key"):
        ResultsFile(tmp_path / "r.csv").append({"victim": "v"})


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b,c\n1,2,3\n")
    store = ResultsFile(path)
    with pytest.raises(ValueError, match="not a stealguard results file"):
        store.rows()
    with pytest.raises(ValueError, match="not a stealguard results file"):
        store.append(_row("a"))
    assert path.read_text() == "a,b,c\n1,2,3\n"


def _append_many(path: str, prefix: str) -> None:
    store = ResultsFile(path)
    for i in range(40):
        store.append(_row(f"{prefix}{i}", label="x" * 500))


def test_concurrent_appends_lose_nothing(tmp_path):
    path = tmp_path / "r.csv"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(path), p)) for p in "abc"]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert ResultsFile(path).keys() == {f"{p}{i}" for p in "abc" for i in range(40)}
    assert len(path.read_text().splitlines()) == 121


def test_replace_keeps_one_row_per_key_and_moves_the_old_one_verbatim(tmp_path):
    store, old = ResultsFile(tmp_path / "r.csv"), ResultsFile(tmp_path / "superseded.csv")
    for key in ("a", "b", "c"):
        store.append(_row(key, attacker_accuracy=0.5))
    before = (tmp_path / "r.csv").read_text().splitlines()
    assert store.replace(_row("b", attacker_accuracy=0.25), superseded=old) == 1
    assert [(r["key"], r["attacker_accuracy"]) for r in store.rows()] == [("a", 0.5), ("c", 0.5), ("b", 0.25)]
    assert (tmp_path / "superseded.csv").read_text().splitlines() == [before[0], before[2]]
    assert store.replace(_row("d"), superseded=old) == 0
    assert store.keys() == {"a", "b", "c", "d"} and [r["key"] for r in old.rows()] == ["b"]


def test_replace_refuses_to_supersede_into_the_same_file(tmp_path):
    store = ResultsFile(tmp_path / "r.csv")
    store.append(_row("a"))
    with pytest.raises(ValueError, match="another file"):
        store.replace(_row("a"), superseded=ResultsFile(tmp_path / "r.csv"))
    assert store.keys() == {"a"}


def _replace_many(path: str, superseded: str) -> None:
    store = ResultsFile(path)
    for i in range(40):
        store.replace(_row(f"r{i}", label="y" * 500), superseded=ResultsFile(superseded))


def test_replace_loses_no_concurrent_append(tmp_path):
    path, superseded = tmp_path / "r.csv", tmp_path / "s.csv"
    for i in range(40):
        ResultsFile(path).append(_row(f"r{i}"))
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(path), p)) for p in "ab"]
    workers.append(context.Process(target=_replace_many, args=(str(path), str(superseded))))
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    rows = ResultsFile(path).rows()
    assert sorted(r["key"] for r in rows) == sorted([f"{p}{i}" for p in "ab" for i in range(40)] + [f"r{i}" for i in range(40)])
    assert all(r["label"] == "y" * 500 for r in rows if r["key"].startswith("r"))
    assert len(ResultsFile(superseded).rows()) == 40


def test_replace_with_a_bad_row_leaves_both_files_untouched(tmp_path):
    store, old = ResultsFile(tmp_path / "r.csv"), ResultsFile(tmp_path / "superseded.csv")
    store.append(_row("a"))
    before = (tmp_path / "r.csv").read_text()
    with pytest.raises(ValueError, match="line breaks"):
        store.replace(_row("a", label="two\nlines"), superseded=old)
    with pytest.raises(ValueError, match="key"):
        store.replace({"victim": "v"}, superseded=old)
    assert (tmp_path / "r.csv").read_text() == before and not old.path.exists()
