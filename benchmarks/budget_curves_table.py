"""Compare budget curves (one query run) with separate runs at each budget, from the rows that
``benchmarks/budget_curves.sh`` wrote under ``benchmarks/results/budget_curves/``.

Writes ``comparison.csv`` (one row per defense, seed and budget: the curve's and the separate run's
attacker accuracy and fidelity, and their difference) and prints it as a markdown table; seed noise is
the spread between the two seeds at each budget. Run: ``python benchmarks/budget_curves_table.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results" / "budget_curves"


def comparison(folder: Path = RESULTS) -> pd.DataFrame:
    """One row per (defense, seed, budget) with the curve's and the separate run's numbers."""
    rows = []
    for curve in sorted(folder.glob("curve-*/results.csv")):
        tag, seed = curve.parent.name.removeprefix("curve-").rsplit("-seed", 1)
        for row in pd.read_csv(curve).itertuples():
            separate_path = folder / f"separate-{tag}-seed{seed}-{row.budget}.json"
            separate = json.loads(separate_path.read_text()) if separate_path.is_file() else None
            if separate is None and row.budget == pd.read_csv(curve).budget.max():
                separate = {"attacker_accuracy": row.attacker_accuracy, "fidelity": row.fidelity, "note": "the query run itself"}
            rows.append({
                "defense": row.defense_label, "seed": int(seed), "budget": int(row.budget),
                "curve_attacker_accuracy": row.attacker_accuracy, "curve_fidelity": row.fidelity,
                "separate_attacker_accuracy": None if separate is None else separate["attacker_accuracy"],
                "separate_fidelity": None if separate is None else separate["fidelity"],
                "separate_is": "missing" if separate is None else separate.get("note", "a run at this budget"),
            })
    table = pd.DataFrame(rows)
    if not table.empty:
        table["difference"] = table.curve_attacker_accuracy - table.separate_attacker_accuracy
        spread = table.groupby(["defense", "budget"]).curve_attacker_accuracy.agg(lambda s: s.max() - s.min())
        table["seed_spread"] = [spread[(d, b)] for d, b in zip(table.defense, table.budget)]
    return table


def markdown(table: pd.DataFrame) -> str:
    """The table as markdown, numbers to 4 decimals."""
    def cell(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Attacker accuracy against queries: each curve (one query run per seed) as a line, the separate runs as crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for color, (defense, rows) in zip(("tab:blue", "tab:red", "tab:green"), table.groupby("defense")):
        for seed, seed_rows in rows.groupby("seed"):
            ax.plot(seed_rows.budget, seed_rows.curve_attacker_accuracy, marker="o", color=color, alpha=0.8,
                    label=f"{defense}, one query run (seed {seed})", linestyle="-" if seed == 0 else "--")
            separate = seed_rows[seed_rows.separate_is == "a run at this budget"]
            ax.plot(separate.budget, separate.separate_attacker_accuracy, "x", color="black", markersize=9)
    ax.plot([], [], "x", color="black", label="separate run at that budget")
    ax.set(xscale="log", xlabel="queries", ylabel="attacker accuracy (MNIST test)",
           title="Knockoff on the MNIST LeNet: budget curve vs separate runs")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    table = comparison()
    table.to_csv(RESULTS / "comparison.csv", index=False)
    plot(table, RESULTS / "comparison.png")
    print(markdown(table))


if __name__ == "__main__":
    main()
