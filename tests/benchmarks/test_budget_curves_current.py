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
    separate = table[table.separate_is == "a run at this budget"]
    assert len(separate) == 12 and re.search(r"difference 0\.0000 in all 12 pairs", section)
    spreads = table.groupby(["defense", "budget"]).curve_attacker_accuracy.agg(lambda values: 100 * (values.max() - values.min()))
    assert f"The seed spread at a budget is {spreads.min():.1f}–{spreads.max():.1f} points" in " ".join(section.split())


def test_the_adam_comparison_quotes_the_before_after_rows() -> None:
    import json

    rows = pd.read_csv(BENCHMARKS / "results" / "fidelity" / "before_after.csv")
    training = rows.attack_params.map(lambda params: json.loads(params).get("training"))
    adam = rows[(rows.attack == "knockoff") & (rows.defense == "none") & (training == "stealguard") & (rows.budget == 10_000)]
    assert len(adam) == 2
    text = " ".join((BENCHMARKS / "README.md").read_text().split())
    assert f"Adam for 30 epochs reached {100 * adam.attacker_accuracy.mean():.2f}% at 10k undefended, the mean of two seeds" in text
