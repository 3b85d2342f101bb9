"""Rewrite the results tables a benchmark page quotes from its results files (or check them).

Each table to keep in step is marked on the line before it (see ``benchmarks/report/doc_tables.py``):

    <!-- results-table: results/dcp-cpu/results.csv maze cifar10-resnet9 -->

Usage:

    python benchmarks/sync_tables.py benchmarks/dcp.md             # rewrite stale tables in place
    python benchmarks/sync_tables.py --check benchmarks/dcp.md     # write nothing; exit 1 if one is stale

Run it after new rows land in a results file (and ``reproduce.py --report-only``); the prose that reads the
tables still needs a person.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from report.doc_tables import sync_tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("pages", nargs="+", type=Path, help="Markdown pages with results-table markers")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table is stale")
    args = parser.parse_args(argv)
    stale_pages = 0
    for page in args.pages:
        try:
            text, updates = sync_tables(page)
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        stale = [u for u in updates if u.stale]
        for update in stale:
            verb = "stale" if args.check else "rewrote"
            print(f"{page}:{update.line}: {verb} table {update.attack} vs {update.victim} (from {update.results.name})")
        if stale:
            stale_pages += 1
            if not args.check:
                page.write_text(text)
        print(f"{page}: {len(updates)} marked table(s), {len(stale)} {'stale' if args.check else 'rewritten'}")
    return 1 if args.check and stale_pages else 0


if __name__ == "__main__":
    sys.exit(main())
