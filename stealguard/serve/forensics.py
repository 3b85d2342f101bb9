"""Query log for forensics: who asked what, when.

Every answered input becomes one row ``(key, timestamp, input_sha256)`` (SHA-256 of its float32
bytes) in the ``queries`` table of the service's store. The service writes a request's rows in
the same transaction that settles its charge (:meth:`stealguard.serve.stores.Store.settle`),
before the answer leaves, so the log and the quota agree whatever is killed when: a key's
``used`` equals its rows once no request is in flight. A store that cannot take the rows fails
the request (503) instead of answering it unlogged.

The log holds no pixels and no answers, only enough to count a key's queries, time them and
recognise repeated or shared inputs (e.g. the same query set used from two keys).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from stealguard.serve.stores import LogRow, Store, is_url, open_store


def input_hashes(x: Tensor) -> list[str]:
    """Hex SHA-256 of every input's float32 bytes (C order).

    Shape:
        x: ``(B, *input_shape)``; returns B digests.
    """
    rows = np.ascontiguousarray(x.detach().cpu().float().numpy()).reshape(x.shape[0], -1)
    return [hashlib.sha256(row.tobytes()).hexdigest() for row in rows]


class QueryLog:
    """Per-key query log in a store.

    Args:
        store: the store, or where to open one (a ``postgresql://`` URL or a SQLite file path,
            created if absent); a store passed in is not closed by :meth:`close`.
        clock: wall-clock seconds for the timestamps (``time.time``).

    Raises:
        StoreError: the store cannot be opened.
    """

    def __init__(self, store: Store | str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._owned = not isinstance(store, Store)
        self._store = open_store(store) if not isinstance(store, Store) else store

    def rows(self, key: str, x: Tensor) -> list[LogRow]:
        """The rows of one answered request ``x`` ``(B, *input_shape)`` by ``key``, stamped now (B rows)."""
        ts = self._clock()
        return [(key, ts, digest) for digest in input_hashes(x)]

    def record(self, key: str, x: Tensor) -> None:
        """Write the rows of ``x`` (one transaction; they are durable when this returns).

        Raises:
            StoreError: the store failed; nothing was written.
        """
        self._store.append_log(self.rows(key, x))

    def close(self) -> None:
        """Close the store when this object opened it."""
        if self._owned:
            self._store.close()


def summarize(store: Store | str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Per key: ``count`` of logged inputs, ``distinct`` input hashes, ``first`` and ``last`` timestamp.

    Args:
        store: a store, a ``postgresql://`` URL or the path of a SQLite store.

    Raises:
        FileNotFoundError: no SQLite file at ``store``.
        StoreError: the store cannot be opened.
    """
    if isinstance(store, Store):
        rows = store.log_summary()
    else:
        if not is_url(store) and not Path(store).is_file():
            raise FileNotFoundError(f"query log {str(store)!r} does not exist")
        opened = open_store(store)
        try:
            rows = opened.log_summary()
        finally:
            opened.close()
    return {r.key: {"count": r.count, "distinct": r.distinct, "first": r.first, "last": r.last} for r in rows}
