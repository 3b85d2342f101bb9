"""ART stays optional: ``import stealguard`` never imports it, and its absence gives the install hint."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys

import pytest

from stealguard import attacks, data
from stealguard.interop.art import INSTALL_HINT


def test_importing_stealguard_and_its_attacks_does_not_import_art() -> None:
    code = (
        "import sys, stealguard, stealguard.attacks, stealguard.cli\n"
        "assert 'art_knockoff' in stealguard.attacks.names()\n"
        "print(sorted(m for m in sys.modules if m == 'art' or m.startswith('art.')))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture
def without_art(monkeypatch: pytest.MonkeyPatch) -> None:
    """ART made unimportable, and the interop modules forgotten so that they import afresh."""
    monkeypatch.setitem(sys.modules, "art", None)
    for name in [m for m in sys.modules if m.startswith("stealguard.interop.art")]:
        monkeypatch.delitem(sys.modules, name)


def test_importing_the_adapters_without_art_says_how_to_install_it(without_art) -> None:
    with pytest.raises(ImportError, match=re.escape(INSTALL_HINT) + "$"):
        importlib.import_module("stealguard.interop.art")


@pytest.mark.parametrize("name", ["art_knockoff", "art_copycat"])
def test_building_an_art_attack_without_art_says_how_to_install_it(without_art, name) -> None:
    queries = data.load_dataset("digits", split="test")
    with pytest.raises(ImportError, match=re.escape(INSTALL_HINT) + "$"):
        attacks.create(name, queryset=queries, replica_arch="mlp")
