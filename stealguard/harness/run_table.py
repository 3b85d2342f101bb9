"""``RunTable``: an append-only CSV of :class:`~stealguard.runspec.RunResult` rows.

The header is :meth:`RunResult.columns`; each row is appended and flushed to disk as soon as
its run ends, under an exclusive ``flock``, so an interrupted grid loses at most the runs in
flight and a reader never sees half a row. :meth:`RunTable.frame` reads the table with pandas
for aggregation.
"""

from __future__ import annotations

import csv
import fcntl
import math
import os
from pathlib import Path
from typing import Any

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
        ValueError (on reading or appending): the file exists with another header.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        """Whether the file holds at least one row."""
        return self.path.is_file() and bool(self.results())

    def append(self, result: RunResult) -> None:
        """Append ``result`` (creating the file and its folder with the header first)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", newline="") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.seek(0)
                first = handle.readline()
                writer = csv.writer(handle, lineterminator="\n")
                if not first:
                    writer.writerow(RunResult.columns())
                elif next(csv.reader([first])) != list(RunResult.columns()):
                    raise ValueError(f"{self.path} is not a results table of this version (its header differs)")
                handle.seek(0, os.SEEK_END)
                writer.writerow([_cell(value) for value in result.to_row().values()])
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def results(self) -> list[RunResult]:
        """Every stored result, in file order."""
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as handle:
            rows = list(csv.DictReader(handle))
            header = rows and list(rows[0])
        if header and header != list(RunResult.columns()):
            raise ValueError(f"{self.path} is not a results table of this version (its header differs)")
        return [RunResult.from_row(row) for row in rows]

    def keys(self) -> set[str]:
        """Keys of the stored runs."""
        return {result.key for result in self.results()}

    def frame(self) -> Any:
        """The table as a ``pandas.DataFrame`` (one row per run, columns as in the file)."""
        import pandas as pd

        return pd.DataFrame([result.to_row() for result in self.results()], columns=list(RunResult.columns()))
