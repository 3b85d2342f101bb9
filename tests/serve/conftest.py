"""Shared fixtures of the serving tests: one tiny digits victim, trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from stealguard.harness import train_victim


@pytest.fixture(scope="session")
def victim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits ``mlp`` victim (3 epochs, seed 0) saved to a temporary directory."""
    out = tmp_path_factory.mktemp("victim")
    train_victim(dataset="digits", arch="mlp", epochs=3, seed=0, device="cpu", out=out, progress=False)
    return out
