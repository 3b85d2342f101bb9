"""The shared store: one PostgreSQL database for server processes on any number of machines.

A key's charge locks its usage row (``SELECT ... FOR UPDATE``) in one transaction, so concurrent
charges from every process are serialised per key and a quota is spent exactly once. Each
process keeps a small pool of connections (a dropped one is replaced when the next transaction
begins) and one more connection that holds a session advisory lock named after the process:
PostgreSQL releases it when that connection ends, which is how a sweep tells that a process
(killed, or its machine gone: TCP keepalives end the session) left orphan reservations behind.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from stealguard._checks import check_int
from stealguard.serve.stores.base import SWEEP_INTERVAL_S, SqlStore, StoreError

_SCHEMA = (
    ("CREATE TABLE IF NOT EXISTS usage (name TEXT PRIMARY KEY, used BIGINT NOT NULL, tokens DOUBLE PRECISION NOT NULL, "
     "stamp DOUBLE PRECISION NOT NULL)"),
    ("CREATE TABLE IF NOT EXISTS reservations (id TEXT PRIMARY KEY, name TEXT NOT NULL, n BIGINT NOT NULL, owner TEXT NOT NULL, "
     "stamp DOUBLE PRECISION NOT NULL)"),
    "CREATE INDEX IF NOT EXISTS reservations_owner ON reservations (owner)",
    "CREATE TABLE IF NOT EXISTS queries (key TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, input_sha256 TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS queries_key ON queries (key, ts)",
    ("CREATE TABLE IF NOT EXISTS replays (name TEXT NOT NULL, idempotency_key TEXT NOT NULL, body_sha256 TEXT NOT NULL, "
     "stamp DOUBLE PRECISION NOT NULL, answer BYTEA NOT NULL, PRIMARY KEY (name, idempotency_key))"),
    "CREATE INDEX IF NOT EXISTS replays_stamp ON replays (stamp)",
)
_SCHEMA_LOCK = 0x5347_5343_4845_4D41
"""Advisory lock key held while creating the tables (concurrent ``CREATE ... IF NOT EXISTS`` can collide)."""
SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_S = 10


def redact(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = urllib.parse.quote(parts.username or "", safe="")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _owner_key(owner: str) -> int:
    """The advisory-lock key (a positive 60-bit integer) of an owner's 32-hex-digit id."""
    return int(owner[:15], 16)


class PostgresStore(SqlStore):
    """The store in the PostgreSQL database at ``url`` (tables created if absent).

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?param=value...]`` (libpq URI).
        pool_size: connections kept per process for the transactions, >= 1 (default 4).
        sweep_interval: seconds between sweeps for dead processes' reservations, > 0.

    Raises:
        StoreError: the server cannot be reached, refuses the login, or the tables cannot be created
            (one line, without the password).
    """

    _LOCK_ROW = " FOR UPDATE"
    _GREATEST = "GREATEST"

    def __init__(self, url: str, *, pool_size: int = 4, sweep_interval: float = SWEEP_INTERVAL_S) -> None:
        super().__init__(sweep_interval=sweep_interval)
        if urllib.parse.urlsplit(url).scheme not in SCHEMES:
            raise StoreError(f"a PostgreSQL store URL starts with postgresql://, got {redact(url)!r}")
        self._url = url
        self._password = urllib.parse.urlsplit(url).password
        self.location = redact(url)
        self._idle: list[Any] = []
        self._idle_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(check_int("pool_size", pool_size, low=1))
        self._owner_lock = threading.Lock()
        self._claimed: set[str] = set()
        self._owner_conn: Any = None
        try:
            self._hold_owner_lock()
            with self._transaction() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    cur.execute(statement)
        except BaseException:
            self.close()
            raise
        self._start_sweeper()

    def _error(self, what: str, err: Exception) -> StoreError:
        text = " ".join(str(err).split()) or type(err).__name__
        if self._password:
            text = text.replace(self._password, "***")
        return StoreError(f"{what} the PostgreSQL store {self.location}: {text}")

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(
                self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name="stealguard-serve",
                keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
            )
        except psycopg.Error as err:
            raise self._error("cannot reach", err) from None

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        import psycopg

        with self._slots:
            with self._idle_lock:
                conn = self._idle.pop() if self._idle else None
            try:
                if conn is None or conn.closed:
                    conn = self._connect()
                try:
                    conn.execute("BEGIN")
                except psycopg.OperationalError:
                    conn.close()
                    conn = self._connect()
                    conn.execute("BEGIN")
                cur = conn.cursor()
                try:
                    yield cur
                except BaseException:
                    if not conn.broken:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except psycopg.Error as err:
                raise self._error("lost", err) from None
            finally:
                if conn is not None and not conn.closed and not conn.broken:
                    with self._idle_lock:
                        self._idle.append(conn)
                elif conn is not None:
                    conn.close()

    def _hold_owner_lock(self) -> None:
        """(Re)connect the owner connection and take this process's advisory lock on it."""
        with self._owner_lock:
            if self._owner_conn is not None and not self._owner_conn.closed and not self._owner_conn.broken:
                return
            if self._owner_conn is not None:
                self._owner_conn.close()
            self._owner_conn = self._connect()
            self._owner_conn.execute("SELECT pg_advisory_lock(%s)", (_owner_key(self.owner),))
            self._claimed.clear()

    def sweep(self) -> int:
        self._hold_owner_lock()
        return super().sweep()

    def _dead(self, owners: Sequence[str]) -> list[str]:
        dead = []
        with self._owner_lock:
            for owner in owners:
                if len(owner) != 32 or owner == self.owner:
                    continue
                (got,) = self._owner_conn.execute("SELECT pg_try_advisory_lock(%s)", (_owner_key(owner),)).fetchone()
                if got:
                    self._claimed.add(owner)
                    dead.append(owner)
        return dead

    def _forget(self, owner: str) -> None:
        with self._owner_lock:
            if owner in self._claimed:
                self._claimed.discard(owner)
                self._owner_conn.execute("SELECT pg_advisory_unlock(%s)", (_owner_key(owner),))

    def close(self) -> None:
        self._stop_sweeper()
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        with self._owner_lock:
            if self._owner_conn is not None:
                self._owner_conn.close()
                self._owner_conn = None
