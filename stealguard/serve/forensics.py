"""Query log for forensics: who asked what, when, off the request path.

Every answered request is handed to :meth:`QueryLog.record`, which only enqueues it; a
background thread hashes every input (SHA-256 of its float32 bytes) and appends one row
per input ``(key, timestamp, input_sha256)`` to a SQLite table. The log holds no pixels and
no answers, only enough to count a key's queries, time them and recognise repeated or
shared inputs (e.g. the same query set used from two keys).
"""

from __future__ import annotations

import hashlib
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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    key TEXT NOT NULL,
    ts REAL NOT NULL,
    input_sha256 TEXT NOT NULL
)
"""
_INDEX = "CREATE INDEX IF NOT EXISTS queries_key ON queries (key, ts)"
_STOP = object()


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
    """

    def __init__(self, db_path: str | os.PathLike[str], *, clock: Any = time.time) -> None:
        self.path = Path(db_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._queue: queue.Queue[Any] = queue.Queue()
        db = sqlite3.connect(str(self.path), timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        db.execute(_INDEX)
        db.commit()
        db.close()
        self._thread = threading.Thread(target=self._write_loop, name="stealguard-query-log", daemon=True)
        self._thread.start()

    def record(self, key: str, x: Tensor) -> None:
        """Enqueue one answered request (returns at once; ``x`` must not be modified afterwards)."""
        self._queue.put((key, self._clock(), x))

    def flush(self) -> None:
        """Block until everything recorded so far is written."""
        self._queue.join()

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

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
                stop = any(item is _STOP for item in items)
                rows = [(key, ts, digest) for item in items if item is not _STOP for key, ts, x in [item] for digest in input_hashes(x)]
                if rows:
                    db.executemany("INSERT INTO queries (key, ts, input_sha256) VALUES (?, ?, ?)", rows)
                    db.commit()
                for _ in items:
                    self._queue.task_done()
                if stop:
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
