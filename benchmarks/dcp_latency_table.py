"""The latency tables of benchmarks/dcp.md, generated from the committed rows.

``dcp_latency.py --out benchmarks/results/dcp-latency/latency.csv`` appends one run's rows to
``latency.csv`` (per victim form, batch size and path). This script renders the latest run (the
``run`` column, a timestamp) as two Markdown tables between markers of ``benchmarks/dcp.md``:
``<!-- dcp-latency:begin/end -->`` (time per query and ratio to undefended inference of each path)
and ``<!-- dcp-latency-speedup:begin/end -->`` (DCP's speed-up over each compared defense,
:func:`dcp_latency.speedups` of those rows).

    python benchmarks/dcp_latency_table.py            # rewrite the marked tables
    python benchmarks/dcp_latency_table.py --check    # exit 1 if one is not current
"""

from __future__ import annotations

from pathlib import Path

from _timing import markdown
from latency_table import latest_run
from report.doc_tables import sync_marked_main

ROOT = Path(__file__).resolve().parent
ROWS = ROOT / "results" / "dcp-latency" / "latency.csv"
PAGE = ROOT / "dcp.md"
PATH_COLUMNS = ["victim", "device", "batch", "path", "us_per_query", "ratio", "mJ_per_query", "dcp_fires"]
SPEEDUP_COLUMNS = ["victim", "device", "batch", "vs", "speedup_total", "added_us_dcp", "added_us_other", "speedup_added"]


def rows() -> list[dict[str, object]]:
    """The latest run's rows, numbers as numbers (an empty field, e.g. energy without RAPL counters, as None)."""

    def number(text: str) -> object:
        if text == "":
            return None
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return text

    return [{key: number(value) for key, value in row.items()} for row in latest_run(ROWS)]


def speedup_rows() -> list[dict[str, object]]:
    """DCP's speed-up over each compared defense in the latest run (:func:`dcp_latency.speedups`)."""
    from dcp_latency import speedups

    return speedups(rows())


def run_line(first: dict[str, object]) -> str:
    return (f"Run {first['run']} (`{ROWS.relative_to(ROOT)}`), torch {first['torch']}, {first['threads']} thread(s), "
            f"1-minute load {first['load_1min_at_start']} at its start:")


def bodies() -> dict[str, str]:
    """``{marker name: table}`` of the two tables."""
    latest = rows()
    return {
        "dcp-latency": run_line(latest[0]) + "\n\n" + markdown(latest, PATH_COLUMNS),
        "dcp-latency-speedup": markdown(speedup_rows(), SPEEDUP_COLUMNS),
    }


def main(argv: list[str] | None = None) -> int:
    return sync_marked_main(argv, PAGE, bodies, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
