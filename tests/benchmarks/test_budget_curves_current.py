"""The budget-curve numbers quoted in benchmarks/README.md are the committed rows'."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_readme_table_quotes_the_committed_comparison() -> None:
    table = pd.read_csv(BENCHMARKS / "results" / "budget_curves" / "comparison.csv")
    assert (table.difference.abs() < 1e-12).all() and len(table) == 16
    text = (BENCHMARKS / "README.md").read_text()
    section = text[text.index("## Budget curves") :]
    for defense in ("none", "mad:epsilon=0.5"):
        line = next(line for line in section.splitlines() if line.startswith(f"| {defense} |"))
        quoted = [tuple(float(v) for v in cell.split(" / ")) for cell in line.strip("|").split("|")[1:]]
        rows = table[table.defense == defense]
        for (seed0, seed1), budget in zip(quoted, (1000, 5000, 10000, 50000)):
            at = rows[rows.budget == budget].set_index("seed").curve_attacker_accuracy
            assert (seed0, seed1) == (round(100 * at[0], 2), round(100 * at[1], 2))
    assert re.search(r"difference 0\.0000 in all 12 pairs", section)
