"""Marked results tables in a Markdown page are regenerated from their results file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stealguard.harness.compare import aggregate, pair_rows, pair_table
from stealguard.harness.doc_tables import sync_tables
from stealguard.harness.results import ResultsFile

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "sync_tables.py"


def _store(path: Path, attacker_none: float = 0.8) -> ResultsFile:
    store = ResultsFile(path)
    for defense, label, attacker in (("none", "none", attacker_none), ("dcp", "dcp:tau=0.8", 0.7)):
        for victim in ("v", "v-int8"):
            store.append({
                "key": f"{victim}|maze|{label}|0", "victim": victim, "attack_name": "maze", "attack": "maze",
                "defense": defense, "defense_params": {}, "label": label, "seed": 0, "victim_accuracy": 0.9,
                "defender_accuracy": 0.9, "attacker_accuracy": attacker, "fidelity": attacker, "l1_mean": 0.1,
                "query_l1_mean": 0.2, "queries_used": 1000, "elapsed_s": 60.0,
            })
    return store


def _expected(store: ResultsFile, victim: str) -> str:
    return pair_table(pair_rows(aggregate(store.rows()), victim, "maze"))


def _page(tmp_path: Path, body: str) -> Path:
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir(exist_ok=True)
    page.write_text(body)
    return page


def test_stale_and_missing_tables_are_regenerated_and_the_prose_is_kept(tmp_path):
    store = _store(tmp_path / "results" / "results.csv")
    page = _page(
        tmp_path,
        "# Title\n\nintro\n<!-- results-table: ../results/results.csv maze v -->\n| old | table |\n|---|---|\n\n"
        "between\n<!-- results-table: ../results/results.csv maze v-int8 -->\nafter\n",
    )
    text, updates = sync_tables(page)
    assert [(u.line, u.attack, u.victim, u.stale) for u in updates] == [(4, "maze", "v", True), (9, "maze", "v-int8", True)]
    expected = (
        "# Title\n\nintro\n<!-- results-table: ../results/results.csv maze v -->\n" + _expected(store, "v") + "\n\n"
        "between\n<!-- results-table: ../results/results.csv maze v-int8 -->\n" + _expected(store, "v-int8") + "\nafter\n"
    )
    assert text == expected
    page.write_text(text)
    again, updates = sync_tables(page)
    assert again == text and not any(u.stale for u in updates)


def test_a_new_row_makes_the_table_stale(tmp_path):
    store = _store(tmp_path / "results" / "results.csv")
    page = _page(tmp_path, "<!-- results-table: ../results/results.csv maze v -->\n")
    page.write_text(sync_tables(page)[0])
    store.append({
        "key": "v|maze|dcp:tau=0.99|0", "victim": "v", "attack_name": "maze", "attack": "maze", "defense": "dcp",
        "defense_params": {}, "label": "dcp:tau=0.99", "seed": 0, "victim_accuracy": 0.9, "defender_accuracy": 0.89,
        "attacker_accuracy": 0.5, "fidelity": 0.5, "l1_mean": 0.7, "queries_used": 1000, "elapsed_s": 60.0,
    })
    text, (update,) = sync_tables(page)
    assert update.stale and "`dcp:tau=0.99`" in text and "`dcp:tau=0.99`" not in page.read_text()


def test_script_check_fails_on_a_stale_table_and_rewrites_without_check(tmp_path):
    _store(tmp_path / "results" / "results.csv")
    page = _page(tmp_path, "<!-- results-table: ../results/results.csv maze v -->\n| old |\n")
    check = subprocess.run([sys.executable, str(SCRIPT), "--check", str(page)], capture_output=True, text=True)
    assert check.returncode == 1 and "stale table maze vs v" in check.stdout
    assert page.read_text().endswith("| old |\n")
    write = subprocess.run([sys.executable, str(SCRIPT), str(page)], capture_output=True, text=True)
    assert write.returncode == 0 and "rewrote table maze vs v" in write.stdout
    assert subprocess.run([sys.executable, str(SCRIPT), "--check", str(page)], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    ("marker", "error", "match"),
    [
        ("<!-- results-table: ../results/results.csv maze nobody -->", ValueError, r"page.md:2: .*no rows for attack 'maze' against victim 'nobody'; it has: maze v, maze v-int8"),
        ("<!-- results-table: ../results/gone.csv maze v -->", FileNotFoundError, r"page.md:2: results file .*gone.csv does not exist"),
        ("<!-- results-table: ../results/results.csv maze -->", ValueError, r"page.md:2: malformed marker"),
    ],
)
def test_bad_markers_name_the_line_and_what_is_wrong(tmp_path, marker, error, match):
    _store(tmp_path / "results" / "results.csv")
    page = _page(tmp_path, f"text\n{marker}\n")
    with pytest.raises(error, match=match):
        sync_tables(page)


def test_missing_page(tmp_path):
    with pytest.raises(FileNotFoundError, match="page .*nope.md does not exist"):
        sync_tables(tmp_path / "nope.md")
