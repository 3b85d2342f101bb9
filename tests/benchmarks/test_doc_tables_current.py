"""The results tables quoted in the committed benchmark pages equal their committed results files."""

from __future__ import annotations

from pathlib import Path

import pytest

from report.doc_tables import sync_tables

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("page", "tables"), [("benchmarks/dcp.md", 8)])
def test_quoted_tables_match_the_results_file(page, tables):
    _, updates = sync_tables(REPO / page)
    assert len(updates) >= tables
    stale = [f"line {u.line}: {u.attack} vs {u.victim}" for u in updates if u.stale]
    assert not stale, f"{page} quotes stale tables ({stale}); run: python benchmarks/sync_tables.py {page}"
