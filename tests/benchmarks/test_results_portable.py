"""Committed result rows name paths relative to where their command ran, never one machine's folders."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ABSOLUTE = re.compile(r'(?<=["=\s,(])/[A-Za-z][\w.-]*/[\w.-]+|^/[A-Za-z][\w.-]*/[\w.-]+', re.MULTILINE)
"""A POSIX absolute path of two components or more, opening a value (a JSON or CSV string, a key=value, a word)."""


def _committed(*folders: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--", *folders], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [REPO / name for name in listed if name.endswith((".csv", ".json", ".jsonl", ".txt"))]


def test_the_pattern_finds_what_rows_used_to_hold() -> None:
    assert ABSOLUTE.search('"victim_path": "/work/main/benchmarks/victims/mnist-lenet"')
    assert ABSOLUTE.search('"{""victim"":""/home/user/victims/mnist"",""defense"":')
    assert not ABSOLUTE.search('"victim_path": "benchmarks/victims/mnist-lenet", "data_root": "../shared/data", "rate": "queries/s"')


def test_no_committed_result_names_an_absolute_path() -> None:
    files = _committed("benchmarks/results", "docs")
    assert files, "no committed results found"
    offending = {str(path.relative_to(REPO)): match.group(0) for path in files if (match := ABSOLUTE.search(path.read_text(errors="replace")))}
    assert not offending, f"absolute paths in committed results (record them with stealguard.provenance.portable_path): {offending}"
