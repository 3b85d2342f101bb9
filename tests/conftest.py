"""Settings shared by every test directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Run torch on one thread: the test models are tiny, and on a 2-core machine intra-op
    threads fight over the cores (a training step of the digits mlp gets about 10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shared_data_root() -> Path:
    """``$STEALGUARD_DATA_ROOT``, else ``<repo>/../shared/data``."""
    return Path(os.environ.get("STEALGUARD_DATA_ROOT") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of the real data sets (integration tests only); skips when it is absent."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"real data sets not found at {root} (set STEALGUARD_DATA_ROOT to the folder holding mnist/, ...)")
    return root
