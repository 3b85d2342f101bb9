"""Fixtures for tests/data: where the real data sets live (integration tests only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_data_root() -> Path:
    """``$STEALGUARD_DATA_ROOT``, else ``<repo>/../shared/data``."""
    return Path(os.environ.get("STEALGUARD_DATA_ROOT") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def real_data() -> Path:
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"real data sets not found at {root} (set STEALGUARD_DATA_ROOT to the folder holding mnist/, ...)")
    return root
