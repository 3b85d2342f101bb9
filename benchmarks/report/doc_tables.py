"""Keep the results tables quoted in a Markdown page equal to the results file they come from.

A benchmark page (e.g. ``benchmarks/dcp.md``) quotes the per-pair tables of a grid's report. Each
quoted table is marked by an HTML comment on the line right before it, which Markdown renderers hide::

    <!-- results-table: results/dcp-cpu/results.csv maze cifar10-resnet9 -->
    | defense setting | seeds | victim acc | ... |

The marker names the results file (relative to the page), the attack's grid label and the victim.
:func:`sync_tables` regenerates every marked table from that file (a
:class:`~stealguard.harness.run_table.RunTable`, victims and attacks named as the committed grid
configs name them) with :func:`report.compare.pair_table`, the same table ``benchmarks/reproduce.py``
writes into ``summary.md``, so a page cannot quote numbers its results file does not hold.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from report import compare
from report.names import read_frame

MARKER = re.compile(r"^<!-- results-table: (?P<path>\S+) (?P<attack>\S+) (?P<victim>\S+) -->$")
"""A marker line: results file (relative to the page), attack label, victim name."""
_MARKER_START = "<!-- results-table:"


@dataclass(frozen=True)
class TableUpdate:
    """One marked table of a page: where it is, what it quotes, and whether it was stale."""

    line: int
    """1-based line number of the marker in the page as read."""
    results: Path
    attack: str
    victim: str
    stale: bool


def _table(results: Path, attack: str, victim: str, cache: dict[Path, list[dict]], where: str) -> str:
    if results not in cache:
        if not results.is_file():
            raise FileNotFoundError(f"{where}: results file {results} does not exist")
        cache[results] = compare.aggregate(read_frame(results))
    members = compare.pair_rows(cache[results], victim, attack)
    if not members:
        pairs = sorted({f"{r['attack_name']} {r['victim']}" for r in cache[results]})
        raise ValueError(
            f"{where}: {results} has no rows for attack {attack!r} against victim {victim!r}; "
            f"it has: {', '.join(pairs) or 'no rows at all'}"
        )
    return compare.pair_table(members)


def sync_tables(page: Path | str) -> tuple[str, list[TableUpdate]]:
    """The text of ``page`` with every marked table regenerated from its results file.

    The table under a marker is the run of lines starting with ``|`` right after it (none: the table
    is inserted). Nothing is written; the caller decides (see ``benchmarks/sync_tables.py``).

    Args:
        page: a Markdown file with ``<!-- results-table: PATH ATTACK VICTIM -->`` markers.

    Returns:
        (new text, one :class:`TableUpdate` per marker in page order).

    Raises:
        FileNotFoundError: the page or a marker's results file is missing.
        ValueError: a malformed marker, or a results file without rows for the marker's pair
            (the message names the page, the line and the pairs the file does hold).
    """
    page = Path(page)
    if not page.is_file():
        raise FileNotFoundError(f"page {page} does not exist")
    lines = page.read_text().split("\n")
    out: list[str] = []
    updates: list[TableUpdate] = []
    cache: dict[Path, list[dict]] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if not line.startswith(_MARKER_START):
            continue
        where = f"{page}:{i}"
        match = MARKER.match(line.strip())
        if match is None:
            raise ValueError(f"{where}: malformed marker {line!r}; expected '<!-- results-table: PATH ATTACK VICTIM -->'")
        results = (page.parent / match["path"]).resolve()
        table = _table(results, match["attack"], match["victim"], cache, where)
        end = i
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        current = "\n".join(lines[i:end])
        out.extend(table.split("\n"))
        updates.append(TableUpdate(i, results, match["attack"], match["victim"], stale=current != table))
        i = end
    return "\n".join(out), updates


def marked_block(text: str, begin: str, end: str) -> str:
    """The text between the ``begin`` and ``end`` marker lines of ``text`` (without the newlines around it).

    Raises:
        ValueError: a marker is missing, or ``end`` comes before ``begin``.
    """
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"markers {begin!r} ... {end!r} not found in this order")
    return text[start + len(begin):stop].strip("\n")


def replace_marked(page: Path | str, begin: str, end: str, body: str) -> bool:
    """Put ``body`` between the ``begin`` and ``end`` markers of ``page``; True if the page changed.

    Raises:
        FileNotFoundError: no such page. ValueError: a marker is missing (:func:`marked_block`).
    """
    page = Path(page)
    text = page.read_text()
    if marked_block(text, begin, end) == body.strip("\n"):
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    page.write_text(f"{head}{begin}\n{body.strip(chr(10))}\n{end}{tail}")
    return True


def markers(name: str) -> tuple[str, str]:
    """The begin and end marker lines of the generated section ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def sync_marked(page: Path | str, bodies: dict[str, str], *, check: bool) -> list[str]:
    """Keep the sections of ``page`` between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` equal
    to ``bodies[NAME]``: with ``check``, only return the names whose section is missing or differs;
    else rewrite those sections and return the names whose markers are missing (nothing written for them).
    """
    text = Path(page).read_text()
    out = []
    for name, body in bodies.items():
        begin, end = markers(name)
        try:
            current = marked_block(text, begin, end)
        except ValueError:
            out.append(name)
            continue
        if current != body.strip("\n"):
            if check:
                out.append(name)
            else:
                replace_marked(page, begin, end, body)
    return out


def write_section(page: Path | str, name: str, body: str) -> None:
    """Write ``body`` into the section ``name`` of ``page`` (:func:`sync_marked`), untouched if current.

    Raises:
        ValueError: ``page`` has no markers for ``name``.
    """
    if sync_marked(page, {name: body}, check=False):
        begin, end = markers(name)
        raise ValueError(f"{page}: markers {begin!r} ... {end!r} not found in this order")


def sync_marked_main(argv: list[str] | None, page: Path, bodies: Callable[[], dict[str, str]], description: str) -> int:
    """The command line of a script that keeps ``page``'s marked sections equal to ``bodies()``
    (:func:`sync_marked`): rewrite them, or with ``--check`` only report; exit status 1 if any
    section is not current (``--check``) or has no markers."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="only say which sections are not current (exit 1 if any)")
    args = parser.parse_args(argv)
    out = sync_marked(page, bodies(), check=args.check)
    for name in out:
        print(f"{'not current' if args.check else 'no markers'}: {page} ({name})", file=sys.stderr)
    return 1 if out else 0
