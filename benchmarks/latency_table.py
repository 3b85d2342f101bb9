"""The defense-latency tables of benchmarks/README.md, generated from the committed rows.

``defense_latency.py --csv benchmarks/results/latency/latency.csv`` appends one run's rows to
``latency.csv`` (per path, architecture and batch size) and, for the full-Jacobian comparison, to
``latency-mad-full.csv``. This script renders the latest run of each file (the ``run`` column,
a timestamp) as a Markdown table between markers of ``benchmarks/README.md``:
``<!-- latency-defenses:begin/end -->`` and ``<!-- latency-mad-full:begin/end -->``.

    python benchmarks/latency_table.py            # rewrite the marked tables
    python benchmarks/latency_table.py --check    # exit 1 if one is not current
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from report.doc_tables import sync_marked_main

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "latency"
PAGE = ROOT / "README.md"
TABLES = {
    "latency-defenses": (
        RESULTS / "latency.csv",
        ["arch", "batch", "path", "us_per_query", "added_us", "ratio", "ratio_iqr", "vs_floor", "target", "meets"],
    ),
    "latency-mad-full": (
        RESULTS / "latency-mad-full.csv",
        ["arch", "batch", "batched_ms_per_query", "reference_ms_per_query", "speedup", "max_abs_diff", "same_vertex"],
    ),
}
"""``{marker name: (rows file, columns shown)}``."""


def latest_run(path: Path) -> list[dict[str, str]]:
    """The rows of ``path`` whose ``run`` is the latest, in file order."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    last = max(row["run"] for row in rows)
    return [row for row in rows if row["run"] == last]


def cell(value: str) -> str:
    """A number to 3 significant digits (as the timing script prints it); other text as it is, empty as ''."""
    value = value.strip()
    if value.lstrip("-").isdigit():
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    return "" if math.isnan(number) else f"{number:.3g}"


def table(name: str) -> str:
    """The Markdown table of marker ``name``: the latest run's rows and a line naming the run."""
    path, columns = TABLES[name]
    rows = latest_run(path)
    lines = [
        f"Run {rows[0]['run']} (`{path.relative_to(ROOT)}`), torch {rows[0]['torch']}, {rows[0]['threads']} thread(s):",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(cell(row[column]) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def bodies() -> dict[str, str]:
    """``{marker name: table}`` for :data:`TABLES`."""
    return {name: table(name) for name in TABLES}


def main(argv: list[str] | None = None) -> int:
    return sync_marked_main(argv, PAGE, bodies, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
