"""``RunTable``: an append-only CSV of :class:`~stealguard.runspec.RunResult` rows.

The header is :meth:`RunResult.columns`; each row is appended and flushed to disk as soon as
its run ends, under an exclusive ``flock``, so an interrupted grid loses at most the runs in
flight and a reader never sees half a row. :meth:`RunTable.frame` reads the table with pandas
for aggregation.

A table written before a column of :attr:`RunResult.ADDED_COLUMNS` existed (the layout
:meth:`RunResult.earlier_columns`) is read as it is, its rows taking the added columns'
defaults; the first append rewrites it in the current layout (every stored value kept as
written, the added columns empty) by an atomic replace under the lock, so the rows keep
one header. :meth:`RunTable.take` removes rows the same way (to move them elsewhere, e.g. the
rows of cells to run again).
"""

from __future__ import annotations

import csv
import fcntl
import math
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from stealguard.runspec import RunResult


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


class RunTable:
    """Results of runs, one row per run, in ``path``.

    Raises:
        ValueError (on reading or appending): the file exists with a header that is neither the
            current layout nor the earlier one.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        """Whether the file holds at least one row."""
        return self.path.is_file() and bool(self.results())

    def append(self, result: RunResult) -> None:
        """Append ``result`` (creating the file and its folder with the header first).

        A table in the earlier layout is first rewritten in the current one.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            with self._locked() as handle:
                handle.seek(0)
                first = handle.readline()
                writer = csv.writer(handle, lineterminator="\n")
                if not first:
                    writer.writerow(RunResult.columns())
                elif not self._is_current(next(csv.reader([first]))):
                    self._write_rows(self._rows(handle))
                    continue
                handle.seek(0, os.SEEK_END)
                writer.writerow([_cell(value) for value in result.to_row().values()])
                handle.flush()
                os.fsync(handle.fileno())
                return

    def take(self, keys: set[str]) -> list[RunResult]:
        """Remove the rows whose key is in ``keys`` and return them, in file order.

        When any row is taken, the table is replaced atomically under the lock by the other rows,
        as written (in the current layout, when it was of the earlier one), so a concurrent appender
        loses nothing; otherwise the file is left alone.
        """
        if not self.path.is_file():
            return []
        with self._locked() as handle:
            rows = self._rows(handle)
            taken = [row for row in rows if row["key"] in keys]
            if taken:
                self._write_rows([row for row in rows if row["key"] not in keys])
            return [RunResult.from_row(row) for row in taken]

    def results(self) -> list[RunResult]:
        """Every stored result, in file order."""
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as handle:
            rows = self._rows(handle)
        return [RunResult.from_row(row) for row in rows]

    def keys(self) -> set[str]:
        """Keys of the stored runs."""
        return {result.key for result in self.results()}

    def frame(self) -> Any:
        """The table as a ``pandas.DataFrame`` (one row per run, columns as in the file)."""
        import pandas as pd

        return pd.DataFrame([result.to_row() for result in self.results()], columns=list(RunResult.columns()))

    def _is_current(self, header: list[str]) -> bool:
        """True for the current layout, False for the earlier one; ValueError for anything else."""
        if header == list(RunResult.columns()):
            return True
        if header == list(RunResult.earlier_columns()):
            return False
        raise ValueError(f"{self.path} is not a results table of this version (its header differs)")

    @contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        """The table opened for reading and appending under an exclusive lock (opened again while
        another writer had replaced the file)."""
        while True:
            handle = open(self.path, "a+", newline="")  # noqa: SIM115 (closed below or by the context)
            fcntl.flock(handle, fcntl.LOCK_EX)
            if self._still_the_file(handle):
                break
            handle.close()
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def _still_the_file(self, handle: IO[str]) -> bool:
        """Whether ``handle`` (locked) is still the file at ``path``: another appender may have replaced it."""
        try:
            return os.fstat(handle.fileno()).st_ino == self.path.stat().st_ino
        except FileNotFoundError:
            return False

    def _rows(self, handle: IO[str]) -> list[dict[str, str]]:
        """Every row of the open table, as read (ValueError when a row's header is of neither layout)."""
        handle.seek(0)
        rows = list(csv.DictReader(handle))
        if rows:
            self._is_current(list(rows[0]))
        return rows

    def _write_rows(self, rows: list[dict[str, str]]) -> None:
        """Replace the (locked) table by ``rows`` (as read, either layout) in the current layout."""
        defaults = RunResult.ADDED_COLUMNS
        descriptor, name = tempfile.mkstemp(prefix=f".{self.path.name}-", dir=self.path.parent)
        staging = Path(name)
        try:
            with os.fdopen(descriptor, "w", newline="") as out:
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(RunResult.columns())
                for row in rows:
                    writer.writerow([row[column] if column in row else defaults[column] for column in RunResult.columns()])
                out.flush()
                os.fsync(out.fileno())
            os.chmod(staging, stat.S_IMODE(self.path.stat().st_mode))
            os.replace(staging, self.path)
        finally:
            staging.unlink(missing_ok=True)
