"""Query log for forensics: who asked what, when, off the request path.

Every answered request is handed to :meth:`QueryLog.record`, which hashes its inputs
(SHA-256 of their float32 bytes) and enqueues the digests; a background thread appends one
row per input ``(key, timestamp, input_sha256)`` to a SQLite table. The log holds no pixels
and no answers, only enough to count a key's queries, time them and recognise repeated or
shared inputs (e.g. the same query set used from two keys).

The queue is bounded: when the writer falls behind by ``max_pending`` requests (a slow or
full disk), further records are dropped and counted in :attr:`QueryLog.dropped` with a
logged warning, so the service keeps answering with bounded memory. A failed write is
logged and counted the same way; the writer thread keeps going.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from stealguard._checks import check_int

LOGGER = logging.getLogger("stealguard.serve")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    key TEXT NOT NULL,
    ts REAL NOT NULL,
    input_sha256 TEXT NOT NULL
)
"""
_INDEX = "CREATE INDEX IF NOT EXISTS queries_key ON queries (key, ts)"
_STOP = object()
DEFAULT_MAX_PENDING = 10_000


def input_hashes(x: Tensor) -> list[str]:
    """Hex SHA-256 of every input's float32 bytes (C order).

    Shape:
        x: ``(B, *input_shape)``; returns B digests.
    """
    rows = np.ascontiguousarray(x.detach().cpu().float().numpy()).reshape(x.shape[0], -1)
    return [hashlib.sha256(row.tobytes()).hexdigest() for row in rows]


class QueryLog:
    """Append-only per-key query log written by a background thread.

    Args:
        db_path: SQLite file (created if absent, parent created).
        clock: wall-clock seconds for the timestamps (``time.time``).
        max_pending: requests that may wait for the writer, >= 1; more are dropped (counted
            in :attr:`dropped`, in inputs).
    """

    def __init__(self, db_path: str | os.PathLike[str], *, clock: Any = time.time, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.path = Path(db_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=check_int("max_pending", max_pending, low=1))
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        db = sqlite3.connect(str(self.path), timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        db.execute(_INDEX)
        db.commit()
        db.close()
        self._thread = threading.Thread(target=self._write_loop, name="stealguard-query-log", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Inputs not logged so far (queue full or a failed write)."""
        return self._dropped

    def record(self, key: str, x: Tensor) -> None:
        """Hash the inputs of one answered request ``x`` ``(B, *input_shape)`` and enqueue their rows.

        Returns at once: when ``max_pending`` requests are already waiting, the rows are dropped
        (see :attr:`dropped`).
        """
        ts = self._clock()
        rows = [(key, ts, digest) for digest in input_hashes(x)]
        try:
            self._queue.put_nowait(rows)
        except queue.Full:
            self._drop(len(rows), "the writer is behind by max_pending requests")

    def flush(self) -> None:
        """Block until everything recorded so far is written."""
        self._queue.join()

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _drop(self, count: int, why: str) -> None:
        with self._dropped_lock:
            first = self._dropped == 0
            self._dropped += count
            total = self._dropped
        if first or total % 1000 < count:
            LOGGER.warning("query log: %d input(s) not logged so far (%s)", total, why)

    def _write(self, db: sqlite3.Connection, rows: list[tuple[str, float, str]]) -> None:
        db.executemany("INSERT INTO queries (key, ts, input_sha256) VALUES (?, ?, ?)", rows)
        db.commit()

    def _write_loop(self) -> None:
        db = sqlite3.connect(str(self.path), timeout=30.0)
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            while True:
                items = [self._queue.get()]
                while True:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                rows = [row for item in items if item is not _STOP for row in item]
                if rows:
                    try:
                        self._write(db, rows)
                    except sqlite3.Error as err:
                        db.rollback()
                        self._drop(len(rows), f"write failed: {type(err).__name__}: {err}")
                for _ in items:
                    self._queue.task_done()
                if any(item is _STOP for item in items):
                    return
        finally:
            db.close()


def summarize(db_path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Per key: ``count`` of logged inputs, ``distinct`` input hashes, ``first`` and ``last`` timestamp.

    Raises:
        FileNotFoundError: no log at ``db_path``.
    """
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(f"query log {str(path)!r} does not exist")
    with closing(sqlite3.connect(str(path), timeout=30.0)) as db:
        rows = db.execute(
            "SELECT key, COUNT(*), COUNT(DISTINCT input_sha256), MIN(ts), MAX(ts) FROM queries GROUP BY key"
        ).fetchall()
    return {key: {"count": count, "distinct": distinct, "first": first, "last": last} for key, count, distinct, first, last in rows}
