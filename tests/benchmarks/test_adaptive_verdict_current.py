"""The adaptive verdict's CSVs and the tables quoted in docs/adaptive.md and the README equal what the
committed grid results generate (benchmarks/adaptive_verdict.py); the grid script runs every block the
verdict reports, the blocks compared across learners differ only in the replica training, and the
report renders once every planned cell has a result."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from stealguard.harness.run_table import RunTable
from stealguard.runspec import RunResult, RunSpec

from report.doc_tables import markers

REPO = Path(__file__).resolve().parents[2]


def _verdict_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("adaptive_verdict", REPO / "benchmarks" / "adaptive_verdict.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verdict_csvs_and_tables_are_generated_from_the_grid_results() -> None:
    module = _verdict_module()
    frame = module.cells()
    assert not frame.empty
    assert module.stale(frame) == []


def test_the_grid_script_runs_every_reported_block_and_each_has_a_doc_section() -> None:
    module = _verdict_module()
    script = (REPO / "benchmarks" / "adaptive_grid.sh").read_text()
    (loop,) = [line for line in script.splitlines() if line.startswith("for block in")]
    assert sorted(loop.removeprefix("for block in ").removesuffix("; do").split()) == sorted(module.BLOCKS)
    doc = module.DOC.read_text()
    for block in module.BLOCKS:
        assert all(marker in doc for marker in markers(f"verdict-{block}")), block


def _cell_key(attack_name: str, spec: RunSpec) -> tuple[str, str, str, int]:
    """What names a cell across blocks: attack name, victim, defense and seed."""
    return attack_name, spec.victim.label(), str(spec.defense), spec.seed


def test_blocks_of_a_learner_family_differ_only_in_the_replica_training() -> None:
    """Each cell of a family's later block is a cell of its first block with the attacker's replica
    training set to Knockoff's own schedule (Adam), and nothing else changed."""
    module = _verdict_module()
    grids = module.configs()
    for family in module.LEARNERS:
        first, *others = family
        reference = {_cell_key(name, spec): spec for _label, name, spec in grids[first].named_cells()}
        for block in others:
            for _label, name, spec in grids[block].named_cells():
                sibling = reference.get(_cell_key(name, spec))
                assert sibling is not None, (block, name, str(spec.defense))
                dumped = spec.model_dump()
                assert dumped["attack"]["params"].pop("training") == "stealguard", (block, name)
                assert dumped == sibling.model_dump(), (block, name)


def test_the_report_renders_once_every_planned_cell_has_its_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every block's section, each learner family's table and the README headline, from a made-up
    result for each cell the committed configs plan: the complete grid reads as complete, every
    setting of every block has a row, and no attacker is still pending."""
    module = _verdict_module()
    generator = random.Random(0)
    for block, config in module.configs().items():
        table = RunTable(tmp_path / f"grid-{block}" / "results.csv")
        for _label, spec in config.cells():
            card = SimpleNamespace(dataset=spec.victim.dataset, arch=spec.victim.arch, test_accuracy=0.99)
            defended = 0.99 - (0.0 if spec.defense.name == "none" else generator.uniform(0.0, 0.02))
            table.append(RunResult(
                **RunResult.identity(spec, victim_card=card), status="ok", defender_accuracy=defended,
                attacker_accuracy=generator.uniform(0.3, 0.95), fidelity=generator.uniform(0.3, 0.95), l1_mean=0.1,
                test_size=10000, code_version="test",
            ))
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    frame = module.cells()
    assert set(frame["block"]) == set(module.BLOCKS)
    sections = module.sections(frame)
    generated = {name: text for bodies in sections.values() for name, text in bodies.items()}
    assert set(generated) == {f"verdict-{block}" for block in module.BLOCKS} | {"adaptive-headline"}
    assert set(sections[module.DOC]) == {f"verdict-{block}" for block in module.BLOCKS}
    for name, text in generated.items():
        assert "(complete)" in text and "| pending" not in text and "not yet run:" not in text, name
    for family in module.LEARNERS:
        assert "No defense setting" not in sections[module.DOC][f"verdict-{list(family)[-1]}"]
    for block in module.BLOCKS:
        path = module.verdict.plot_block(frame, block, tmp_path / f"{block}.png")
        assert path.stat().st_size > 0
