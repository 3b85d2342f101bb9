"""The adaptive verdict's CSVs and the tables quoted in docs/adaptive.md and the README equal what the
committed grid results generate (benchmarks/adaptive_verdict.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_verdict_csvs_and_tables_are_generated_from_the_grid_results() -> None:
    spec = importlib.util.spec_from_file_location("adaptive_verdict", REPO / "benchmarks" / "adaptive_verdict.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    frame = module.cells()
    assert not frame.empty
    assert module.stale(frame) == []
