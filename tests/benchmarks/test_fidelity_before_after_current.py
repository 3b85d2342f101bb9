"""docs/fidelity.md's before/after table is generated from the committed rows."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_before_after_table_is_current() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import fidelity_before_after
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert fidelity_before_after.sync_doc(check=True), "run: python benchmarks/fidelity_before_after.py --sync-doc"
