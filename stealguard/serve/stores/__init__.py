"""Where the service keeps usage, rate state, the query log and idempotent replays.

* :class:`~stealguard.serve.stores.sqlite.SqliteStore`: one SQLite file, the embedded default
  (the server processes of one machine share it).
* :class:`~stealguard.serve.stores.postgres.PostgresStore`: one PostgreSQL database shared by
  server processes on several machines (``serve --store postgresql://...``).

Both implement :class:`~stealguard.serve.stores.base.Store`; :func:`open_store` picks one from a
location.
"""

from __future__ import annotations

import os
import urllib.parse

from stealguard.serve.stores.base import SWEEP_INTERVAL_S, LogRow, LogSummary, Replay, Store, StoreError, UsageRow

__all__ = ["LogRow", "LogSummary", "Replay", "Store", "StoreError", "UsageRow", "is_url", "open_store"]


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``) rather than a file path."""
    from stealguard.serve.stores.postgres import SCHEMES

    return isinstance(location, str) and urllib.parse.urlsplit(location).scheme in SCHEMES


def open_store(location: str | os.PathLike[str], *, sweep_interval: float = SWEEP_INTERVAL_S) -> Store:
    """The store at ``location``: a ``postgresql://`` URL, or else the path of a SQLite file.

    ``sweep_interval``: seconds between two sweeps for the reservations of dead server processes, > 0.

    Raises:
        StoreError: the store cannot be opened (one line, no password).
    """
    if is_url(location):
        from stealguard.serve.stores.postgres import PostgresStore

        return PostgresStore(str(location), sweep_interval=sweep_interval)
    if isinstance(location, str) and "://" in location:
        raise StoreError(f"unsupported store {location.split('://', 1)[0]!r}://...: give a postgresql:// URL or a SQLite file path")
    from stealguard.serve.stores.sqlite import SqliteStore

    return SqliteStore(location, sweep_interval=sweep_interval)
