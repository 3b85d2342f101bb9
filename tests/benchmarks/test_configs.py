"""Every committed grid config loads (so a typo in a defense or attack setting fails here, not hours into a sweep)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stealguard.harness.ray_grid import load_grid

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "configs").glob("*.toml"))


def _config(stem: str) -> Path:
    """The committed config named ``<stem>.toml``."""
    return next(path for path in CONFIGS if path.stem == stem)


def test_there_are_configs() -> None:
    assert {path.stem for path in CONFIGS} >= {"quick", "paper", "paper-mnist-knockoff", "dcp-cifar10"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_config_loads_with_unique_cells(path: Path) -> None:
    specs = load_grid(path).specs()
    keys = [spec.key() for spec in specs]
    assert keys and len(keys) == len(set(keys))
    assert all(spec.budget >= 1 for spec in specs)


def test_dcp_grid_has_the_issue_8_setting() -> None:
    grid = load_grid(_config("dcp-cifar10"))
    float_victim, int8_victim = grid.victim_specs().values()
    assert float_victim.dataset == "cifar10:half=0,seed=0" and int8_victim.variant.kind == "int8"
    assert int8_victim.float_base() == float_victim
    assert {spec.queryset for spec in grid.specs() if spec.attack.name == "knockoff"} == {"cifar10:half=1,seed=0"}
    names = {spec.defense.name for spec in grid.specs()}
    assert names == {"none", "dcp", "reverse_sigmoid", "mad", "adaptive_misinformation"}
    assert all(sum(1 for spec in grid.defenses if spec.split(":")[0] == name) >= 2 for name in names - {"none"})


def test_cpu_dcp_grid_shares_the_full_grids_victims_and_runs_every_attack() -> None:
    full = load_grid(_config("dcp-cifar10"))
    cpu = load_grid(_config("dcp-cifar10-cpu"))
    assert cpu.victim_specs() == full.victim_specs() and cpu.victim_cache == full.victim_cache
    assert {attack.name for attack in cpu.attacks} == {attack.name for attack in full.attacks}
    budgets = {attack.name: attack.budget or cpu.budget for attack in cpu.attacks}
    assert budgets["knockoff"] == budgets["knockoff-adaptive"] == 25_000
    assert budgets["maze"] == budgets["dfme"] == 300_000
    assert {spec.defense.name for spec in cpu.specs()} == {spec.defense.name for spec in full.specs()}
