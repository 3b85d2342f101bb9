"""The examples in stealguard.data's docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["base", "transforms", "registry", "queryset", "split", "stats"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"stealguard.data.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
