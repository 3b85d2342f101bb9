"""The adaptive verdict's CSVs and the tables quoted in docs/adaptive.md and the README equal what the
committed grid results generate (benchmarks/adaptive_verdict.py); the grid script runs every block the
verdict reports, and the blocks compared across learners differ only in the replica training."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

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
        assert all(marker in doc for marker in module.markers(f"verdict-{block}")), block


def test_blocks_of_a_learner_family_differ_only_in_the_replica_training() -> None:
    module = _verdict_module()
    grids = module.configs()
    for family in module.LEARNERS:
        first, *others = family
        reference = {attack.name: attack for attack in grids[first].attacks}
        for block in others:
            grid = grids[block]
            assert grid.victims == grids[first].victims, block
            assert set(grid.defenses) <= set(grids[first].defenses), block
            assert (grid.budget, grid.seeds) == (grids[first].budget, grids[first].seeds), block
            for attack in grid.attacks:
                sibling = reference[attack.name]
                assert (attack.attack, attack.queryset) == (sibling.attack, sibling.queryset), (block, attack.name)
                params = dict(attack.params)
                assert params.pop("training") == "stealguard", (block, attack.name)
                assert params == dict(sibling.params), (block, attack.name)
                assert set(attack.defenses or grid.defenses) <= set(sibling.defenses or grids[first].defenses)
