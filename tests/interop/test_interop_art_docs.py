"""The ART interop's examples run: the modules' doctests and the README's example."""

from __future__ import annotations

import contextlib
import doctest
import io
import re
from pathlib import Path

import pytest

from stealguard.attacks import art_extraction
from stealguard.interop.art import estimators, postprocessor

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("module", [postprocessor, estimators, art_extraction])
def test_doctests(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_readme_example_runs_and_counts_the_queries() -> None:
    section = README.read_text().split("### IBM ART interop", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102  (the README's own example, run as documented)
    assert printed.getvalue().split() == ["500"]
