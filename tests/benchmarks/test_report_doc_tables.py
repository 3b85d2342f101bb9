"""Marked results tables in a Markdown page are regenerated from their results file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stealguard.harness.run_table import RunTable
from stealguard.runspec import Int8Variant

from _rows import DIGITS, result
from report.compare import aggregate, pair_rows, pair_table
from report.doc_tables import sync_tables
from report.names import read_frame

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "sync_tables.py"
INT8 = DIGITS.model_copy(update={"variant": Int8Variant()})
V, V_INT8 = DIGITS.label(), INT8.label()
"""Victims no committed config names: the reports call them by their labels."""


def _metrics(attacker: float) -> dict:
    return {
        "defender_accuracy": 0.9, "attacker_accuracy": attacker, "fidelity": attacker, "l1_mean": 0.1, "query_l1_mean": 0.2,
        "queries_used": 1000, "elapsed_s": 60.0,
    }


def _store(path: Path, attacker_none: float = 0.8) -> RunTable:
    store = RunTable(path)
    for defense, attacker in (("none", attacker_none), ("dcp:tau=0.8", 0.7)):
        for victim in (DIGITS, INT8):
            store.append(result(defense, attack="maze", victim=victim, **_metrics(attacker)))
    return store


def _expected(store: RunTable, victim: str) -> str:
    return pair_table(pair_rows(aggregate(read_frame(store.path)), victim, "maze"))


def _page(tmp_path: Path, body: str) -> Path:
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir(exist_ok=True)
    page.write_text(body)
    return page


def test_stale_and_missing_tables_are_regenerated_and_the_prose_is_kept(tmp_path):
    store = _store(tmp_path / "results" / "results.csv")
    page = _page(
        tmp_path,
        f"# Title\n\nintro\n<!-- results-table: ../results/results.csv maze {V} -->\n| old | table |\n|---|---|\n\n"
        f"between\n<!-- results-table: ../results/results.csv maze {V_INT8} -->\nafter\n",
    )
    text, updates = sync_tables(page)
    assert [(u.line, u.attack, u.victim, u.stale) for u in updates] == [(4, "maze", V, True), (9, "maze", V_INT8, True)]
    expected = (
        f"# Title\n\nintro\n<!-- results-table: ../results/results.csv maze {V} -->\n" + _expected(store, V) + "\n\n"
        f"between\n<!-- results-table: ../results/results.csv maze {V_INT8} -->\n" + _expected(store, V_INT8) + "\nafter\n"
    )
    assert text == expected
    assert "| `dcp:tau=0.8` | 1 | 90.00% | 90.00% | 70.00% | 87.5% | 70.00% | 0.100 | 0.200 | 1,000 | 1 min |" in text
    page.write_text(text)
    again, updates = sync_tables(page)
    assert again == text and not any(u.stale for u in updates)


def test_victims_and_attacks_go_by_the_names_of_the_committed_configs(tmp_path):
    from stealguard.harness.ray_grid import load_grid

    config = load_grid(REPO / "benchmarks" / "configs" / "quick.toml")
    victim = config.victim_specs()["digits-mlp"]
    attack = next(a for a in config.attacks if a.name == "jbda")
    store = RunTable(tmp_path / "results" / "results.csv")
    store.append(result("none", attack=f"jbda:{','.join(f'{k}={v}' for k, v in attack.params.items())}", victim=victim, **_metrics(0.5)))
    page = _page(tmp_path, "<!-- results-table: ../results/results.csv jbda digits-mlp -->\n")
    text, (update,) = sync_tables(page)
    assert update.stale and "| `none` | 1 | 90.00% |" in text


def test_a_new_row_makes_the_table_stale(tmp_path):
    store = _store(tmp_path / "results" / "results.csv")
    page = _page(tmp_path, f"<!-- results-table: ../results/results.csv maze {V} -->\n")
    page.write_text(sync_tables(page)[0])
    store.append(result("dcp:tau=0.99", attack="maze", **{**_metrics(0.5), "defender_accuracy": 0.89, "l1_mean": 0.7}))
    text, (update,) = sync_tables(page)
    assert update.stale and "`dcp:tau=0.99`" in text and "`dcp:tau=0.99`" not in page.read_text()


def test_script_check_fails_on_a_stale_table_and_rewrites_without_check(tmp_path, capsys):
    import sync_tables as script

    _store(tmp_path / "results" / "results.csv")
    page = _page(tmp_path, f"<!-- results-table: ../results/results.csv maze {V} -->\n| old |\n")
    assert script.main(["--check", str(page)]) == 1 and f"stale table maze vs {V}" in capsys.readouterr().out
    assert page.read_text().endswith("| old |\n")
    assert script.main([str(page)]) == 0 and f"rewrote table maze vs {V}" in capsys.readouterr().out
    check = subprocess.run([sys.executable, str(SCRIPT), "--check", str(page)], capture_output=True, text=True, check=False)
    assert check.returncode == 0 and "1 marked table(s), 0 stale" in check.stdout


@pytest.mark.parametrize(
    ("marker", "error", "match"),
    [
        (
            "<!-- results-table: ../results/results.csv maze nobody -->", ValueError,
            rf"page.md:2: .*no rows for attack 'maze' against victim 'nobody'; it has: maze {V}, maze {V_INT8}",
        ),
        (f"<!-- results-table: ../results/gone.csv maze {V} -->", FileNotFoundError, r"page.md:2: results file .*gone.csv does not exist"),
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


def test_sync_marked_reports_then_rewrites_the_sections_that_differ(tmp_path):
    from report.doc_tables import sync_marked

    page = tmp_path / "page.md"
    page.write_text("a\n<!-- t:begin -->\nold\n<!-- t:end -->\nb\n")
    bodies = {"t": "new", "missing": "x"}
    assert sync_marked(page, bodies, check=True) == ["t", "missing"]
    assert "old" in page.read_text()
    assert sync_marked(page, bodies, check=False) == ["missing"]
    assert page.read_text() == "a\n<!-- t:begin -->\nnew\n<!-- t:end -->\nb\n"
    assert sync_marked(page, {"t": "new"}, check=True) == []


def test_write_section_rewrites_one_section_and_names_missing_markers(tmp_path):
    from report.doc_tables import write_section

    page = tmp_path / "page.md"
    page.write_text("a\n<!-- t:begin -->\nold\n<!-- t:end -->\nb\n")
    write_section(page, "t", "new\n")
    assert page.read_text() == "a\n<!-- t:begin -->\nnew\n<!-- t:end -->\nb\n"
    with pytest.raises(ValueError, match=r"page\.md: markers '<!-- u:begin -->' \.\.\. '<!-- u:end -->' not found"):
        write_section(page, "u", "x")
    assert page.read_text() == "a\n<!-- t:begin -->\nnew\n<!-- t:end -->\nb\n"
