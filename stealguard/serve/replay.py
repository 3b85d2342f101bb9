"""Idempotent retries: a request repeated with the same ``Idempotency-Key`` is answered again, not charged again.

A client that loses a response (a timeout, a dropped connection) cannot know whether the
server charged its quota for it. When a request carries an ``Idempotency-Key`` header (1 to
128 characters of ``A-Z a-z 0-9 . _ : -``, e.g. a fresh UUID per batch), the server keeps the
answer it gave under (API key name, idempotency key) together with the SHA-256 of the request
body, for ``ttl`` seconds, in the service's store (so every server process sharing it
answers the repeat; the service writes the answer in the same transaction that settles the
request's charge and its query-log rows). A repeat with the same
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
import time
from collections.abc import Callable

from stealguard._checks import check_number
from stealguard.serve.codec import InputError
from stealguard.serve.stores import Replay, Store, open_store

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
DEFAULT_TTL_S = 24 * 3600.0
_KEY_PATTERN = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


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
        store: the store, or where to open one (a ``postgresql://`` URL or a SQLite file path,
            created if absent); a store passed in is not closed by :meth:`close`.
        ttl: seconds an answer is kept, > 0 (default one day).
        clock: wall-clock seconds (``time.time``), replaceable in tests.

    Raises:
        ValueError: ``ttl`` out of range. StoreError: the store cannot be opened.
    """

    def __init__(
        self, store: Store | str | os.PathLike[str], *, ttl: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl = check_number("ttl", ttl, low=0.0, low_inclusive=False)
        self._clock = clock
        self._owned = not isinstance(store, Store)
        self._store = open_store(store) if not isinstance(store, Store) else store

    def lookup(self, name: str, idempotency_key: str, digest: str) -> bytes | None:
        """The answer stored for ``(name, idempotency_key)``, or None (never seen, or expired).

        Raises:
            InputError: 422 when the stored request had another body.
        """
        found = self._store.replay(name, idempotency_key)
        if found is None or found.stamp < self._clock() - self.ttl:
            return None
        if found.body_sha256 != digest:
            raise InputError(422, f"this {HEADER} was already used with another request body; use a new key for a new request")
        return found.answer

    def entry(self, name: str, idempotency_key: str, digest: str, answer: bytes) -> Replay:
        """The row that keeps ``answer`` for ``(name, idempotency_key)``, stamped now (for :meth:`Store.settle`)."""
        return Replay(name, idempotency_key, digest, self._clock(), bytes(answer))

    def store(self, name: str, idempotency_key: str, digest: str, answer: bytes) -> None:
        """Keep ``answer`` for ``(name, idempotency_key)`` (a live entry is not replaced) and drop expired ones."""
        self._store.keep_replay(self.entry(name, idempotency_key, digest, answer), ttl=self.ttl)

    def close(self) -> None:
        """Close the store when this object opened it."""
        if self._owned:
            self._store.close()
