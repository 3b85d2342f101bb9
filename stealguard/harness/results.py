"""``ResultsFile``: one append-only CSV of experiment results, keyed by cell, safe to resume.

Each line is one finished cell (victim, attack, defense setting, seed, budget) with every
parameter and metric and the code version that produced it. A sweep asks :meth:`keys`
which cells are already done and skips them, so an interrupted sweep continues where it
stopped. Appends take an exclusive ``flock`` and write the whole line at once, so several
worker processes can share one file; a line cut short by a crash is ignored on reading
(and its cell is run again). Every row is one physical line: no value holds a newline
(parameters are JSON-encoded on one line), so a torn line cannot swallow the next one.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULT_COLUMNS: tuple[str, ...] = (
    "key",
    "victim",
    "victim_dataset",
    "victim_arch",
    "victim_accuracy",
    "attack_name",
    "attack",
    "queryset",
    "attack_params",
    "defense",
    "defense_params",
    "label",
    "budget",
    "queries_used",
    "seed",
    "defender_accuracy",
    "attacker_accuracy",
    "fidelity",
    "l1_mean",
    "l1_max",
    "query_l1_mean",
    "angular_deviation_mean",
    "latency_ratio",
    "elapsed_s",
    "code_version",
    "finished_at",
)
"""Columns of the results file, in order. ``attack_name`` is the grid's label of the attack
(e.g. ``knockoff-adaptive``), ``attack`` the registry name; ``*_params`` are JSON objects."""

JSON_COLUMNS = frozenset({"attack_params", "defense_params"})
INT_COLUMNS = frozenset({"budget", "queries_used", "seed"})
FLOAT_COLUMNS = frozenset(
    {
        "victim_accuracy", "defender_accuracy", "attacker_accuracy", "fidelity", "l1_mean", "l1_max",
        "query_l1_mean", "angular_deviation_mean", "latency_ratio", "elapsed_s",
    }
)


def _encode(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column in JSON_COLUMNS:
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def _decode(column: str, text: str) -> Any:
    if text == "":
        return None
    if column in JSON_COLUMNS:
        return json.loads(text)
    if column in INT_COLUMNS:
        return int(text)
    if column in FLOAT_COLUMNS:
        return float(text)
    return text


class ResultsFile:
    """An append-only CSV of result rows with :data:`RESULT_COLUMNS` (a row changes only
    through :meth:`replace`, which keeps the old one elsewhere).

    Args:
        path: the CSV file; created (with its header) on the first append.

    Raises:
        ValueError (on reading or appending): the file's header is not :data:`RESULT_COLUMNS`
        (a file from another tool or an older layout: move it aside).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def rows(self) -> list[dict[str, Any]]:
        """Every complete row, typed (ints, floats, JSON objects, ``None`` for empty cells), in file order."""
        if not self.path.is_file():
            return []
        lines = self.path.read_text().split("\n")
        if not lines[0]:
            return []
        self._check_header(next(csv.reader([lines[0]])))
        rows = []
        for text in lines[1:]:
            line = next(csv.reader([text]), [])
            if len(line) != len(RESULT_COLUMNS):
                continue
            try:
                rows.append({column: _decode(column, cell) for column, cell in zip(RESULT_COLUMNS, line)})
            except ValueError:
                continue
        return rows

    def keys(self) -> set[str]:
        """Keys of the cells already in the file."""
        return {row["key"] for row in self.rows()}

    def append(self, row: dict[str, Any]) -> None:
        """Append one row (missing columns are left empty; extra keys are ignored).

        Raises:
            ValueError: ``row`` has no ``key``; the file's header differs.
        """
        self._append_line(self._line(row))

    def _line(self, row: dict[str, Any]) -> str:
        """``row`` as one CSV line, without its newline.

        Raises:
            ValueError: ``row`` has no ``key``; a value holds a line break.
        """
        if not row.get("key"):
            raise ValueError("a result row needs a non-empty 'key'")
        cells = [_encode(c, row.get(c)) for c in RESULT_COLUMNS]
        bad = [c for c, cell in zip(RESULT_COLUMNS, cells) if "\n" in cell or "\r" in cell]
        if bad:
            raise ValueError(f"result values must not contain line breaks; found in {bad}")
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        return buffer.getvalue().rstrip("\n")

    def _append_line(self, line: str) -> None:
        """Append one encoded CSV line (no newline) under an exclusive lock, writing the header first if the file is new."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+", newline="") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.seek(0)
                header = handle.readline()
                if header:
                    self._check_header(next(csv.reader([header.rstrip("\n")])))
                    handle.seek(0, io.SEEK_END)
                    if handle.tell() and not self._ends_with_newline(handle):
                        handle.write("\n")
                else:
                    csv.writer(handle, lineterminator="\n").writerow(RESULT_COLUMNS)
                handle.write(line + "\n")
                handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def replace(self, row: dict[str, Any], *, superseded: ResultsFile) -> int:
        """Put ``row`` in place of the stored rows with its key; move those rows to ``superseded``.

        For a cell run again on purpose (a retrained victim, a fixed bug): the file keeps one row
        per key, and the replaced rows are kept verbatim in ``superseded`` (their own results
        file, appended to), so no measured number is lost. The rewrite happens in place under
        the same lock as :meth:`append`, so concurrent appends are never lost. A key not yet
        stored is simply appended.

        Returns:
            How many stored rows were moved to ``superseded``.

        Raises:
            ValueError: ``row`` has no ``key`` or a value with a line break (checked before the file
            is touched); ``superseded`` is this file; a header differs.
        """
        line = self._line(row)
        if superseded.path.resolve() == self.path.resolve():
            raise ValueError(f"superseded rows need another file than {self.path}")
        if not self.path.is_file():
            self._append_line(line)
            return 0
        with self.path.open("r+", newline="") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                lines = handle.read().split("\n")
                self._check_header(next(csv.reader([lines[0]])))
                kept, moved = [lines[0]], []
                for text in lines[1:]:
                    if not text:
                        continue
                    cells = next(csv.reader([text]), [])
                    if len(cells) == len(RESULT_COLUMNS) and cells[0] == row["key"]:
                        moved.append(text)
                    else:
                        kept.append(text)
                for text in moved:
                    superseded._append_line(text)
                handle.seek(0)
                handle.truncate()
                handle.write("\n".join([*kept, line]) + "\n")
                handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return len(moved)

    def _ends_with_newline(self, handle: Any) -> bool:
        end = handle.tell()
        handle.seek(end - 1)
        last = handle.read(1)
        handle.seek(end)
        return last == "\n"

    def _check_header(self, header: Sequence[str]) -> None:
        if tuple(header) != RESULT_COLUMNS:
            raise ValueError(
                f"{self.path} is not a stealguard results file of this layout (header {list(header)[:4]}...); "
                "move it aside or pass another results path"
            )
