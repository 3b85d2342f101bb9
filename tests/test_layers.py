"""The package's layering (import-linter contract in pyproject.toml) and the core's light imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_layers_contract_holds() -> None:
    linter = Path(sys.executable).with_name("lint-imports")
    command = [str(linter)] if linter.exists() else [sys.executable, "-m", "importlinter.cli"]
    done = subprocess.run([*command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


@pytest.mark.parametrize("module", ["stealguard.defenses", "stealguard.attacks", "stealguard.runspec", "stealguard"])
def test_the_core_imports_no_heavy_dependency(module: str) -> None:
    heavy = ("fastapi", "uvicorn", "ray", "matplotlib", "opacus", "pandas", "art", "psycopg")
    code = f"import sys, {module}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == ""
