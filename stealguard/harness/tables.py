"""Result rows -> CSV, JSON and a fixed-width text table."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("label", "defense"),
    ("defender_accuracy", "defender acc"),
    ("attacker_accuracy", "attacker acc"),
    ("fidelity", "fidelity"),
    ("l1_mean", "L1 mean"),
    ("latency_ratio", "latency x"),
)
"""(row key, header) of the columns :func:`format_table` shows by default."""

CSV_COLUMNS: tuple[str, ...] = (
    "label",
    "defense",
    "defense_params",
    "attack",
    "budget",
    "queries_used",
    "seed",
    "queryset",
    "defender_accuracy",
    "clean_accuracy",
    "attacker_accuracy",
    "fidelity",
    "l1_mean",
    "l1_max",
    "query_l1_mean",
    "angular_deviation_mean",
    "latency_undefended_s",
    "latency_defended_s",
    "latency_ratio",
)
"""Columns of the CSV written by :func:`write_csv` (nested values are JSON-encoded)."""


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.3f}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = TABLE_COLUMNS) -> str:
    """A fixed-width text table of ``rows`` (floats to 3 decimals, ``None`` as ``-``)."""
    header = [title for _, title in columns]
    body = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(columns))]

    def render(line: list[str]) -> str:
        first = line[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(line[1:], widths[1:]))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(line) for line in body)])


def write_csv(rows: Sequence[dict[str, Any]], path: Path, columns: Sequence[str] = CSV_COLUMNS) -> Path:
    """Write one line per row with ``columns``; dict/list values are JSON-encoded. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {key: json.dumps(row.get(key), sort_keys=True) if isinstance(row.get(key), (dict, list)) else row.get(key) for key in columns}
            )
    return path


def write_json(value: Any, path: Path) -> Path:
    """Write ``value`` as indented JSON (infinite floats as strings). Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(value), indent=2, sort_keys=True) + "\n")
    return path


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
