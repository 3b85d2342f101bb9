"""The recovery and stealing tables quoted in docs/adaptive.md equal what the committed CSVs generate."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "adaptive.md"


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recovery_table_is_generated_from_the_csv() -> None:
    recovery = script("recovery")
    frame = pd.read_csv(recovery.CSV)
    assert set(frame["defense"]) >= set(recovery.DEFENSES)
    assert f"{recovery.BEGIN}\n{recovery.table(frame)}\n{recovery.END}" in DOC.read_text()


def test_steal_table_is_generated_from_the_csv() -> None:
    steal = script("adaptive_steal")
    frame = pd.read_csv(steal.CSV)
    assert f"{steal.BEGIN}\n{steal.doc_table(frame)}\n{steal.END}" in DOC.read_text()


def test_branches_table_is_generated_from_the_csv() -> None:
    branches = script("inversion_branches")
    frame = pd.read_csv(branches.CSV)
    assert set(frame["spec"]) == set(branches.SPECS)
    assert f"{branches.BEGIN}\n{branches.table(frame)}\n{branches.END}" in DOC.read_text()


def test_fashionmnist_recovery_table_is_generated_from_its_csv() -> None:
    recovery = script("recovery")
    frame = pd.read_csv(recovery.CSV.with_name("recovery-fashionmnist.csv"))
    assert set(frame["defense"]) >= set(recovery.DEFENSES)
    begin, end = (marker.replace("recovery-table", "recovery-fashionmnist-table") for marker in (recovery.BEGIN, recovery.END))
    assert f"{begin}\n{recovery.table(frame)}\n{end}" in DOC.read_text()
