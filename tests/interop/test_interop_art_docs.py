"""The ART interop's examples run: the modules' doctests and the README's example."""

from __future__ import annotations

import contextlib
import doctest
import io
import re
from pathlib import Path

import pytest

import stealguard.attacks.art_extraction as art_extraction
import stealguard.interop.art.estimators as estimators
import stealguard.interop.art.postprocessor as postprocessor

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("module", [postprocessor, estimators, art_extraction])
def test_doctests(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_readme_example_runs_and_counts_the_queries() -> None:
    section = README.read_text().split("### IBM ART interop", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    assert printed.getvalue().split() == ["500"]
