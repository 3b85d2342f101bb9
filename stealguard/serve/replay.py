"""Idempotent retries: a request repeated with the same ``Idempotency-Key`` is answered again, not charged again.

A client that loses a response (a timeout, a dropped connection) cannot know whether the
server charged its quota for it. When a request carries an ``Idempotency-Key`` header (1 to
128 characters of ``A-Z a-z 0-9 . _ : -``, e.g. a fresh UUID per batch), the server keeps the
answer it gave under (API key name, idempotency key) together with the SHA-256 of the request
body, for ``ttl`` seconds, in SQLite (so worker processes share it). A repeat with the same
body gets the stored answer and is neither charged nor logged again; the same idempotency key
with another body is refused (422). Only the defended answer is stored: exactly what the
client already received.

Two copies of one request that arrive at the same time both miss the store and are both
charged; the store protects sequential retries, the case a lost response produces.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from stealguard._checks import check_number
from stealguard.serve.codec import InputError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
DEFAULT_TTL_S = 24 * 3600.0
_KEY_PATTERN = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS replays (
    name TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    stamp REAL NOT NULL,
    answer BLOB NOT NULL,
    PRIMARY KEY (name, idempotency_key)
)
"""


def check_idempotency_key(value: str) -> str:
    """``value`` when it is a valid ``Idempotency-Key``.

    Raises:
        InputError: 400 naming the header and the allowed form.
    """
    if not _KEY_PATTERN.fullmatch(value):
        raise InputError(400, f"the {HEADER} header must be 1 to 128 characters of A-Z a-z 0-9 . _ : - (e.g. a UUID)")
    return value


def body_digest(body: bytes, content_type: str | None) -> str:
    """Hex SHA-256 of the content type and the body (what a repeat must match)."""
    return hashlib.sha256((content_type or "").encode() + b"\0" + body).hexdigest()


class ReplayStore:
    """Stored answers of requests with an idempotency key, per API key, for ``ttl`` seconds.

    Args:
        db_path: SQLite file (created if absent; parent created).
        ttl: seconds an answer is kept, > 0 (default one day).
        clock: wall-clock seconds (``time.time``), replaceable in tests.
    """

    def __init__(self, db_path: str | os.PathLike[str], *, ttl: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.time) -> None:
        self.ttl = check_number("ttl", ttl, low=0.0, low_inclusive=False)
        self._clock = clock
        self._lock = threading.Lock()
        path = Path(db_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def lookup(self, name: str, idempotency_key: str, digest: str) -> bytes | None:
        """The answer stored for ``(name, idempotency_key)``, or None (never seen, or expired).

        Raises:
            InputError: 422 when the stored request had another body.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT body_sha256, stamp, answer FROM replays WHERE name = ? AND idempotency_key = ?", (name, idempotency_key)
            ).fetchone()
        if row is None or row[1] < self._clock() - self.ttl:
            return None
        if row[0] != digest:
            raise InputError(422, f"this {HEADER} was already used with another request body; use a new key for a new request")
        return bytes(row[2])

    def store(self, name: str, idempotency_key: str, digest: str, answer: bytes) -> None:
        """Keep ``answer`` for ``(name, idempotency_key)`` (a live entry is not replaced) and drop expired ones."""
        now = self._clock()
        with self._lock:
            self._db.execute("DELETE FROM replays WHERE stamp < ?", (now - self.ttl,))
            self._db.execute(
                "INSERT OR IGNORE INTO replays (name, idempotency_key, body_sha256, stamp, answer) VALUES (?, ?, ?, ?, ?)",
                (name, idempotency_key, digest, now, answer),
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
