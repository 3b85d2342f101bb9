"""Every committed grid config loads (so a typo in a defense or attack setting fails here, not hours into a sweep)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stealguard.harness.grid import load_grid

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "configs").glob("*.toml"))


def _config(stem: str) -> Path:
    """The committed config named ``<stem>.toml``."""
    return next(path for path in CONFIGS if path.stem == stem)


def test_there_are_configs() -> None:
    assert {path.stem for path in CONFIGS} >= {"quick", "paper", "paper-mnist-knockoff", "dcp-cifar10"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_config_loads_with_unique_cells(path: Path) -> None:
    grid = load_grid(path)
    keys = [cell.key() for cell in grid.cells()]
    assert keys and len(keys) == len(set(keys))
    assert all(cell.budget >= 1 for cell in grid.cells())


def test_dcp_grid_has_the_issue_8_setting() -> None:
    grid = load_grid(_config("dcp-cifar10"))
    float_victim, int8_victim = grid.victims
    assert float_victim.dataset == "cifar10:half=0" and int8_victim.int8 is not None and int8_victim.int8.base == float_victim
    assert {cell.queryset for cell in grid.cells() if cell.attack.attack == "knockoff"} == {"cifar10:half=1"}
    names = {cell.defense_name for cell in grid.cells()}
    assert names == {"none", "dcp", "reverse_sigmoid", "mad", "adaptive_misinformation"}
    assert all(sum(1 for spec in grid.defenses if spec.split(":")[0] == name) >= 2 for name in names - {"none"})


def test_cpu_dcp_grid_shares_the_full_grids_victims_and_runs_every_attack() -> None:
    full = load_grid(_config("dcp-cifar10"))
    cpu = load_grid(_config("dcp-cifar10-cpu"))
    assert cpu.victims == full.victims and cpu.victim_cache == full.victim_cache
    assert {attack.name for attack in cpu.attacks} == {attack.name for attack in full.attacks}
    budgets = {cell.attack.name: cell.budget for cell in cpu.cells()}
    assert budgets["knockoff"] == budgets["knockoff-adaptive"] == 25_000
    assert budgets["maze"] == budgets["dfme"] == 300_000
    assert {cell.defense_name for cell in cpu.cells()} == {cell.defense_name for cell in full.cells()}
