"""The embedded store: one SQLite file, shared by the server processes of one machine.

Transactions run under ``BEGIN IMMEDIATE`` (one writer at a time across processes, WAL journal).
Each process holds an exclusive ``flock`` on a file named after it in ``<file>.owners/``; the
kernel drops the lock when the process dies, however it dies, which is how a sweep tells that
the reservations of that process are orphans.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from stealguard.serve.stores.base import LOGGER, SWEEP_INTERVAL_S, SqlStore, StoreError

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage (name TEXT PRIMARY KEY, used INTEGER NOT NULL, tokens REAL NOT NULL, stamp REAL NOT NULL)",
    ("CREATE TABLE IF NOT EXISTS reservations (id TEXT PRIMARY KEY, name TEXT NOT NULL, n INTEGER NOT NULL, owner TEXT NOT NULL, "
     "stamp REAL NOT NULL)"),
    "CREATE INDEX IF NOT EXISTS reservations_owner ON reservations (owner)",
    "CREATE TABLE IF NOT EXISTS queries (key TEXT NOT NULL, ts REAL NOT NULL, input_sha256 TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS queries_key ON queries (key, ts)",
    ("CREATE TABLE IF NOT EXISTS replays (name TEXT NOT NULL, idempotency_key TEXT NOT NULL, body_sha256 TEXT NOT NULL, "
     "stamp REAL NOT NULL, answer BLOB NOT NULL, PRIMARY KEY (name, idempotency_key))"),
    "CREATE INDEX IF NOT EXISTS replays_stamp ON replays (stamp)",
    "CREATE TABLE IF NOT EXISTS imported (file TEXT PRIMARY KEY)",
)
_OWNER = re.compile(r"[0-9a-f]{32}")
_LEGACY_COPY = {
    "usage": "INSERT INTO usage (name, used, tokens, stamp) SELECT name, used, tokens, stamp FROM legacy.usage "
    "WHERE true ON CONFLICT (name) DO UPDATE SET used = used + excluded.used",
    "queries": "INSERT INTO queries (key, ts, input_sha256) SELECT key, ts, input_sha256 FROM legacy.queries",
    "replays": "INSERT INTO replays (name, idempotency_key, body_sha256, stamp, answer) "
    "SELECT name, idempotency_key, body_sha256, stamp, answer FROM legacy.replays WHERE true ON CONFLICT DO NOTHING",
}


class SqliteStore(SqlStore):
    """The store in the SQLite file ``path`` (created if absent, parent directories too).

    Args:
        path: the database file.
        sweep_interval: seconds between sweeps for dead processes' reservations, > 0.

    Raises:
        StoreError: the file cannot be created or is not a SQLite database.
    """

    def __init__(self, path: str | os.PathLike[str], *, sweep_interval: float = SWEEP_INTERVAL_S) -> None:
        super().__init__(sweep_interval=sweep_interval)
        self.path = Path(path)
        self.location = str(self.path)
        self._lock = threading.Lock()
        self._claimed: dict[str, int] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._owners = Path(f"{self.path}.owners")
            self._owners.mkdir(exist_ok=True)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open the SQLite store {self.location}: {err}") from None
        self._own_fd = self._claim(self.owner)
        if self._own_fd is None:
            raise StoreError(f"cannot lock {self._owners / self.owner}")
        self._start_sweeper()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            try:
                cur = self._db.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield cur
                except BaseException:
                    if self._db.in_transaction:
                        cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
            except sqlite3.Error as err:
                raise StoreError(f"the SQLite store {self.location} failed: {err}") from None

    def _claim(self, owner: str) -> int | None:
        """An fd holding ``owner``'s lock file exclusively, or None while its process holds it."""
        fd = os.open(self._owners / owner, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _dead(self, owners: Sequence[str]) -> list[str]:
        dead = []
        for owner in owners:
            if not _OWNER.fullmatch(owner) or owner == self.owner:
                continue
            fd = self._claim(owner)
            if fd is not None:
                self._claimed[owner] = fd
                dead.append(owner)
        return dead

    def _forget(self, owner: str) -> None:
        fd = self._claimed.pop(owner, None)
        if fd is not None:
            (self._owners / owner).unlink(missing_ok=True)
            os.close(fd)

    def import_legacy(self, *, usage: Path, queries: Path, replays: Path) -> None:
        """Copy the rows of the separate files of earlier versions (``usage.sqlite``, ...) once.

        A file is imported at most once (its name is recorded in the store, in the same
        transaction), so quotas already spent survive the upgrade.
        """
        for table, legacy in (("usage", usage), ("queries", queries), ("replays", replays)):
            if not legacy.is_file():
                continue
            with self._lock:
                self._db.execute("ATTACH DATABASE ? AS legacy", (str(legacy),))
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        has = self._db.execute("SELECT 1 FROM legacy.sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
                        done = self._db.execute("SELECT 1 FROM imported WHERE file = ?", (str(legacy.resolve()),)).fetchone()
                        if has and not done:
                            self._db.execute(_LEGACY_COPY[table])
                            self._db.execute("INSERT INTO imported (file) VALUES (?)", (str(legacy.resolve()),))
                            LOGGER.info("imported the %s of %s into %s", table, legacy, self.location)
                    except BaseException:
                        self._db.execute("ROLLBACK")
                        raise
                    self._db.execute("COMMIT")
                finally:
                    self._db.execute("DETACH DATABASE legacy")

    def close(self) -> None:
        self._stop_sweeper()
        with self._lock:
            if self._own_fd is not None:
                self._db.close()
                (self._owners / self.owner).unlink(missing_ok=True)
                os.close(self._own_fd)
                self._own_fd = None
