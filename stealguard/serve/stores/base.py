"""The store behind the service: usage rows, reservations, the query log and idempotent replays.

One abstract :class:`Store` with the transactions the service needs; the SQL they run is shared
by the SQLite and PostgreSQL back ends (:class:`SqlStore`), which differ only in how they connect,
lock a key's row and tell whether another server process is still alive.

Tables:

* ``usage (name, used, tokens, stamp)``: per key, queries spent (reserved ones included) and the
  rate limiter's token bucket (tokens left at wall-clock ``stamp``).
* ``reservations (id, name, n, owner, stamp)``: queries charged for a request still being answered,
  by the server process ``owner``.
* ``queries (key, ts, input_sha256)``: the forensic query log, one row per answered input.
* ``replays (name, idempotency_key, body_sha256, stamp, answer)``: answers kept for idempotent retries.

A request is charged by :meth:`Store.charge` before inference (the charge and a reservation in
one transaction, with the key's row locked) and settled by :meth:`Store.settle` after it (the
reservation dropped, the query-log rows and the replay written, in one transaction), or released
by :meth:`Store.release` when it was not answered. A server killed between the two leaves its
reservations behind; :meth:`Store.sweep`, run by every live process, gives them back once their
owner is gone. So at any time without requests in flight, a key's ``used`` equals its rows in
the query log, whatever was killed when.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from stealguard._checks import check_number

LOGGER = logging.getLogger("stealguard.serve")
SWEEP_INTERVAL_S = 5.0
"""Seconds between two sweeps for the reservations of dead server processes."""


class StoreError(ValueError):
    """A store that cannot be opened or used: bad location, unreachable server, refused login.

    The message is one line and never holds a password.
    """


@dataclasses.dataclass(frozen=True)
class UsageRow:
    """A key's spending: ``used`` queries (>= 0) and ``tokens`` left in its bucket at wall-clock ``stamp``."""

    used: int
    tokens: float
    stamp: float


@dataclasses.dataclass(frozen=True)
class Replay:
    """An answer kept for idempotent retries: ``answer`` bytes given to ``(name, idempotency_key)``
    for a body whose SHA-256 is ``body_sha256``, at wall-clock ``stamp``."""

    name: str
    idempotency_key: str
    body_sha256: str
    stamp: float
    answer: bytes


LogRow = tuple[str, float, str]
"""One query-log row: ``(key name, wall-clock timestamp, hex SHA-256 of the input)``."""


@dataclasses.dataclass(frozen=True)
class LogSummary:
    """Per key in the query log: ``count`` rows, ``distinct`` input hashes, ``first`` and ``last`` timestamp."""

    key: str
    count: int
    distinct: int
    first: float
    last: float


class Store(abc.ABC):
    """Transactions of the service over one database, safe to call from many threads and processes.

    ``location`` names the database for messages and logs (no password); ``owner`` is this
    process's id on its reservations (32 hex digits, new at every start).
    """

    location: str
    owner: str

    @abc.abstractmethod
    def charge(
        self, name: str, n: int, *, fresh: UsageRow, decide: Callable[[UsageRow], UsageRow], reserve: bool = False
    ) -> tuple[UsageRow, str | None]:
        """Lock ``name``'s usage row (created as ``fresh`` if absent) and write ``decide(row)``; with
        ``reserve``, also record the ``n`` queries as a reservation of this process.

        All in one transaction: when ``decide`` raises, nothing changes and the exception propagates.

        Returns:
            The new row and the reservation's id (for :meth:`settle` or :meth:`release`), or None.
        """

    @abc.abstractmethod
    def settle(
        self, reservation: str, *, name: str, n: int, log: Sequence[LogRow] = (), replay: Replay | None = None, ttl: float = 0.0
    ) -> None:
        """Close an answered request's reservation and write its log rows and replay, in one transaction.

        A reservation already given back by a sweep is charged again, so ``used`` keeps counting
        every answered query. A live replay under the same key is kept; replays older than
        ``ttl`` seconds before ``replay.stamp`` are dropped.
        """

    @abc.abstractmethod
    def release(self, reservation: str, *, name: str) -> None:
        """Give back the queries of an unanswered request's reservation (once, whoever calls)."""

    @abc.abstractmethod
    def refund(self, name: str, n: int) -> None:
        """``used -= n`` for ``name`` (never below 0)."""

    @abc.abstractmethod
    def usage(self, name: str) -> UsageRow | None:
        """``name``'s row, or None when it never spent anything."""

    @abc.abstractmethod
    def replay(self, name: str, idempotency_key: str) -> Replay | None:
        """The stored replay for ``(name, idempotency_key)``, expired or not, or None."""

    @abc.abstractmethod
    def keep_replay(self, replay: Replay, *, ttl: float) -> None:
        """Store ``replay`` (a live one under the same key is kept) and drop those older than ``ttl`` seconds."""

    @abc.abstractmethod
    def append_log(self, rows: Sequence[LogRow]) -> None:
        """Append query-log rows (one transaction)."""

    @abc.abstractmethod
    def log_summary(self) -> list[LogSummary]:
        """Per key: count, distinct inputs, first and last timestamp of the query log."""

    @abc.abstractmethod
    def pending(self) -> int:
        """Queries reserved by requests not settled or released yet, over all server processes."""

    @abc.abstractmethod
    def sweep(self) -> int:
        """Give back the reservations of server processes that are gone; the number of queries given back."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the sweeper and close the connections (idempotent)."""


class SqlStore(Store):
    """The transactions in SQL shared by the back ends (``?`` placeholders; :meth:`_sql` adapts them).

    A subclass provides :meth:`_transaction` (a cursor inside BEGIN ... COMMIT, rolled back on an
    exception), :attr:`_LOCK_ROW` (appended to the row read of :meth:`charge`), :attr:`_GREATEST`,
    :meth:`_dead` (which of the given owners are gone) and :meth:`_forget` (after their sweep).
    """

    _LOCK_ROW = ""
    _GREATEST = "MAX"

    def __init__(self, *, sweep_interval: float = SWEEP_INTERVAL_S) -> None:
        self._interval = check_number("sweep_interval", sweep_interval, low=0.0, low_inclusive=False)
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # -- what a back end provides -------------------------------------------------------------

    @abc.abstractmethod
    def _transaction(self) -> Any:
        """Context manager: a cursor inside one transaction (committed on exit, rolled back on an exception)."""

    @abc.abstractmethod
    def _dead(self, owners: Sequence[str]) -> list[str]:
        """The owners among ``owners`` whose process is gone (never this store's own)."""

    def _forget(self, owner: str) -> None:
        """Called after ``owner``'s reservations were swept."""

    def _sql(self, statement: str) -> str:
        return statement

    # -- the transactions -------------------------------------------------------------------

    def _run(self, cursor: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        return cursor.execute(self._sql(statement), tuple(params))

    def charge(
        self, name: str, n: int, *, fresh: UsageRow, decide: Callable[[UsageRow], UsageRow], reserve: bool = False
    ) -> tuple[UsageRow, str | None]:
        reservation = uuid.uuid4().hex if reserve else None
        with self._transaction() as cur:
            self._run(
                cur, "INSERT INTO usage (name, used, tokens, stamp) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, fresh.used, fresh.tokens, fresh.stamp),
            )
            used, tokens, stamp = self._run(cur, "SELECT used, tokens, stamp FROM usage WHERE name = ?" + self._LOCK_ROW, (name,)).fetchone()
            row = decide(UsageRow(int(used), float(tokens), float(stamp)))
            self._run(cur, "UPDATE usage SET used = ?, tokens = ?, stamp = ? WHERE name = ?", (row.used, row.tokens, row.stamp, name))
            if reservation is not None:
                self._run(
                    cur, "INSERT INTO reservations (id, name, n, owner, stamp) VALUES (?, ?, ?, ?, ?)",
                    (reservation, name, n, self.owner, row.stamp),
                )
        return row, reservation

    def settle(
        self, reservation: str, *, name: str, n: int, log: Sequence[LogRow] = (), replay: Replay | None = None, ttl: float = 0.0
    ) -> None:
        with self._transaction() as cur:
            if not self._run(cur, "DELETE FROM reservations WHERE id = ? RETURNING n", (reservation,)).fetchall():
                LOGGER.warning("reservation of %d queries for %r was swept before its answer was settled; charged again", n, name)
                self._run(cur, "UPDATE usage SET used = used + ? WHERE name = ?", (n, name))
            if log:
                cur.executemany(self._sql("INSERT INTO queries (key, ts, input_sha256) VALUES (?, ?, ?)"), list(log))
            if replay is not None:
                self._put_replay(cur, replay, ttl)

    def release(self, reservation: str, *, name: str) -> None:
        with self._transaction() as cur:
            for (n,) in self._run(cur, "DELETE FROM reservations WHERE id = ? RETURNING n", (reservation,)).fetchall():
                self._refund(cur, name, int(n))

    def _refund(self, cur: Any, name: str, n: int) -> None:
        self._run(cur, f"UPDATE usage SET used = {self._GREATEST}(used - ?, 0) WHERE name = ?", (int(n), name))

    def refund(self, name: str, n: int) -> None:
        with self._transaction() as cur:
            self._refund(cur, name, n)

    def usage(self, name: str) -> UsageRow | None:
        with self._transaction() as cur:
            row = self._run(cur, "SELECT used, tokens, stamp FROM usage WHERE name = ?", (name,)).fetchone()
        return None if row is None else UsageRow(int(row[0]), float(row[1]), float(row[2]))

    def replay(self, name: str, idempotency_key: str) -> Replay | None:
        with self._transaction() as cur:
            row = self._run(
                cur, "SELECT body_sha256, stamp, answer FROM replays WHERE name = ? AND idempotency_key = ?", (name, idempotency_key)
            ).fetchone()
        return None if row is None else Replay(name, idempotency_key, str(row[0]), float(row[1]), bytes(row[2]))

    def _put_replay(self, cur: Any, replay: Replay, ttl: float) -> None:
        self._run(cur, "DELETE FROM replays WHERE stamp < ?", (replay.stamp - ttl,))
        self._run(
            cur,
            "INSERT INTO replays (name, idempotency_key, body_sha256, stamp, answer) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (name, idempotency_key) DO NOTHING",
            (replay.name, replay.idempotency_key, replay.body_sha256, replay.stamp, replay.answer),
        )

    def keep_replay(self, replay: Replay, *, ttl: float) -> None:
        with self._transaction() as cur:
            self._put_replay(cur, replay, ttl)

    def append_log(self, rows: Sequence[LogRow]) -> None:
        if rows:
            with self._transaction() as cur:
                cur.executemany(self._sql("INSERT INTO queries (key, ts, input_sha256) VALUES (?, ?, ?)"), list(rows))

    def log_summary(self) -> list[LogSummary]:
        with self._transaction() as cur:
            rows = self._run(
                cur, "SELECT key, COUNT(*), COUNT(DISTINCT input_sha256), MIN(ts), MAX(ts) FROM queries GROUP BY key ORDER BY key"
            ).fetchall()
        return [LogSummary(str(k), int(c), int(d), float(f), float(last)) for k, c, d, f, last in rows]

    def pending(self) -> int:
        with self._transaction() as cur:
            (total,) = self._run(cur, "SELECT COALESCE(SUM(n), 0) FROM reservations").fetchone()
        return int(total)

    def sweep(self) -> int:
        with self._transaction() as cur:
            owners = [str(o) for (o,) in self._run(cur, "SELECT DISTINCT owner FROM reservations WHERE owner <> ?", (self.owner,)).fetchall()]
        given = 0
        for owner in self._dead(owners) if owners else []:
            per_key: dict[str, int] = {}
            try:
                with self._transaction() as cur:
                    for name, n in self._run(cur, "DELETE FROM reservations WHERE owner = ? RETURNING name, n", (owner,)).fetchall():
                        per_key[str(name)] = per_key.get(str(name), 0) + int(n)
                    for name, n in sorted(per_key.items()):
                        self._refund(cur, name, n)
            finally:
                self._forget(owner)
            if per_key:
                count = sum(per_key.values())
                given += count
                LOGGER.warning("gave back %d queries reserved by a server process that is gone (%s)", count, ", ".join(sorted(per_key)))
        return given

    # -- the sweeper thread -----------------------------------------------------------------

    def _start_sweeper(self) -> None:
        """Sweep now, then every ``sweep_interval`` seconds on a daemon thread until :meth:`close`."""
        self._sweep_safely()
        self._sweeper = threading.Thread(target=self._sweep_loop, args=(self._interval,), name="stealguard-store-sweeper", daemon=True)
        self._sweeper.start()

    def _sweep_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._sweep_safely()

    def _sweep_safely(self) -> None:
        try:
            self.sweep()
        except Exception as err:  # noqa: BLE001 - the sweeper logs and tries again next interval
            LOGGER.warning("store sweep failed (%s): %s", type(err).__name__, str(err).splitlines()[0] if str(err) else "")

    def _stop_sweeper(self) -> None:
        self._stop.set()
        if self._sweeper is not None and self._sweeper is not threading.current_thread():
            self._sweeper.join(timeout=30)
            self._sweeper = None
