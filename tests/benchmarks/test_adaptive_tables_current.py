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


def test_the_results_readme_quotes_the_rows_the_card_and_the_blocks() -> None:
    """benchmarks/results/adaptive/README.md: its counts of rows, the victim's accuracy and the grid's blocks."""
    import json

    results = REPO / "benchmarks" / "results" / "adaptive"
    text = " ".join((results / "README.md").read_text().split())
    (recovered,) = set(pd.read_csv(results / "recovery.csv")["rows"])
    assert f"to the clean posterior on the {recovered:,} MNIST test images" in text
    (filtered,) = set(pd.read_csv(results / "misinformation-filter.csv")["rows"])
    assert f"the share of the answers to the {filtered:,} Fashion-MNIST test images" in text
    card = json.loads((REPO / "benchmarks" / "victims" / "mnist-lenet" / "card.json").read_text())
    assert f"--seed 0 --out benchmarks/victims/mnist-lenet` ({100 * card['test_accuracy']:.2f}% test accuracy)" in text
    blocks = script("adaptive_verdict").BLOCKS
    listed = text.split(": the adaptive verdict grid's raw rows", 1)[0].rsplit("* ", 1)[1]
    assert sorted(listed.split(", ")) == sorted(f"`grid-{block}/`" for block in blocks)
    assert f"Run or resume all {({5: 'five'})[len(blocks)]} blocks" in text
