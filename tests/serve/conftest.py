"""Shared fixtures of the serving tests: one tiny digits victim, trained once per session, and
the stores (SQLite, and PostgreSQL on a throwaway server started once per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stealguard.harness import train_victim
from tests._postgres import PostgresServer, Unavailable


@pytest.fixture(scope="session")
def victim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits ``mlp`` victim (3 epochs, seed 0) saved to a temporary directory."""
    out = tmp_path_factory.mktemp("victim")
    train_victim(dataset="digits", arch="mlp", epochs=3, seed=0, device="cpu", out=out, progress=False)
    return out


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session (skips the test, with the reason, where it cannot run)."""
    try:
        server = PostgresServer()
    except Unavailable as err:
        pytest.skip(f"no PostgreSQL server for the store tests: {err}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where to open a fresh, empty store: a SQLite file, or a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()
