"""Grids on Ray: config validation, and a real two-node Ray cluster losing a node mid-grid."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stealguard import cli
from stealguard.harness.ray_grid import (
    FAILED_FILE,
    RESULTS_FILE,
    GridConfig,
    grid_outcome_line,
    load_grid,
    ray_init_options,
    run_grid,
)
from stealguard.harness.run import run
from stealguard.harness.run_table import RunTable
from stealguard.runspec import DPVariant, Env, RunResult

pytestmark = pytest.mark.xdist_group("ray")
"""Ray clusters of this module and of the reproduce tests start one after another, on one test worker."""

GRID = """
name = "tiny"
budget = 120
seeds = [0, 1]
defenses = ["none", "mad:epsilon=0.5"]
max_retries = 1

[[victim]]
name = "digits-mlp"
dataset = "digits"
arch = "mlp"
train = { epochs = 2 }

[[attack]]
name = "knockoff"
queryset = "digits"
params = { epochs = 1, batch_size = 32 }
"""
BROKEN_ATTACK = """
[[attack]]
name = "broken"
attack = "knockoff"
queryset = "digits"
params = { epochs = 0 }
defenses = ["none"]
seeds = [0]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def test_a_grid_expands_to_run_specs(tmp_path: Path) -> None:
    config = load_grid(_write(tmp_path, GRID + '\n[[victim]]\nname = "digits-mlp-int8"\nint8 = { of = "digits-mlp", calibration = 64 }\n'))
    specs = config.specs()
    assert len(specs) == 2 * 1 * 2 * 2
    assert {str(spec.defense) for spec in specs} == {"none", "mad:epsilon=0.5"}
    assert {spec.victim.variant.kind for spec in specs} == {"float", "int8"}
    assert len({spec.key() for spec in specs}) == len(specs)


def test_status_counts_stored_and_failed_cells_per_attack(tmp_path: Path, capsys) -> None:
    from dataclasses import replace

    from stealguard.harness.run import failed_result

    path = _write(tmp_path, GRID + BROKEN_ATTACK)
    config = load_grid(path)
    specs = config.specs()
    out = tmp_path / "out"
    stored = RunTable(out / RESULTS_FILE)
    ok = replace(failed_result(specs[0], "x"), status="ok", error="")
    stored.append(ok)
    stored.append(ok)
    RunTable(out / FAILED_FILE).append(failed_result(specs[-1], "ValueError: epochs"))
    assert cli.main(["grid", str(path), "--out", str(out), "--status"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "knockoff: 1 of 4 cells stored", "broken: 0 of 1 cells stored, 1 failed", "total: 1 of 5 cells stored, 1 failed",
    ]


def test_supersede_moves_one_attacks_rows_aside_so_resume_runs_them_again(tmp_path: Path, capsys) -> None:
    from dataclasses import replace

    from stealguard.harness.ray_grid import SUPERSEDED_FILE
    from stealguard.harness.run import failed_result

    path = _write(tmp_path, GRID + BROKEN_ATTACK)
    config = load_grid(path)
    out = tmp_path / "out"
    stored = RunTable(out / RESULTS_FILE)
    named = list(config.named_cells())
    for _, _, spec in named:
        stored.append(replace(failed_result(spec, "x"), status="ok", error=""))
    broken = {spec.key() for _, attack, spec in named if attack == "broken"}
    failed = RunTable(out / FAILED_FILE)
    failed.append(failed_result(next(spec for _, attack, spec in named if attack == "broken"), "ValueError: once"))
    failed.append(failed_result(named[0][2], "ValueError: kept"))
    assert cli.main(["grid", str(path), "--out", str(out), "--supersede", "broken"]) == 0
    assert capsys.readouterr().out.strip() == f"moved 2 row(s) of broken to {out / SUPERSEDED_FILE}; --resume runs those cells again"
    assert [result.key for result in RunTable(out / SUPERSEDED_FILE).results()] == [*broken, *broken]
    assert [result.error for result in failed.results()] == ["ValueError: kept"]
    assert stored.keys() == {spec.key() for _, _, spec in named} - broken
    assert cli.main(["grid", str(path), "--out", str(out), "--status"]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == ["broken: 0 of 1 cells stored", "total: 4 of 5 cells stored"]
    assert cli.main(["grid", str(path), "--out", str(out), "--supersede", "nope"]) == 2
    assert "--supersede nope: not an attack of" in capsys.readouterr().err


def test_supersede_moves_every_budget_row_of_a_curve_cell(tmp_path: Path) -> None:
    from dataclasses import replace

    from stealguard.harness.ray_grid import SUPERSEDED_FILE, supersede_cells
    from stealguard.harness.run import failed_result

    curve = GRID.replace('params = { epochs = 1, batch_size = 32 }', 'params = { epochs = 1, batch_size = 32 }\nbudgets = [60, 120]')
    config = load_grid(_write(tmp_path, curve))
    out = tmp_path / "out"
    stored = RunTable(out / RESULTS_FILE)
    for spec in config.specs():
        for budget in (60, 120):
            stored.append(replace(failed_result(spec.model_copy(update={"budget": budget}), "x"), status="ok", error=""))
    assert supersede_cells(config, out, ["knockoff"]) == 2 * len(config.specs())
    assert stored.results() == [] and len(RunTable(out / SUPERSEDED_FILE).results()) == 2 * len(config.specs())


def test_dp_sgd_in_the_defenses_is_a_victim_variant(tmp_path: Path) -> None:
    config = load_grid(_write(tmp_path, GRID.replace('"mad:epsilon=0.5"', '"dp_sgd:noise_multiplier=1.0"')))
    dp = [spec for spec in config.specs() if spec.victim.variant.kind == "dp"]
    assert len(dp) == 2 and all(str(spec.defense) == "none" for spec in dp)
    assert dp[0].victim.variant == DPVariant(noise_multiplier=1.0, max_grad_norm=1.0)


def test_the_committed_grid_configs_load() -> None:
    configs = sorted((Path(__file__).parents[2] / "benchmarks" / "configs").glob("*.toml"))
    assert configs
    for path in configs:
        assert load_grid(path).specs()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda text: text.replace('arch = "mlp"', 'arch = "nosuch"'), r"victim\.0\.arch: unknown architecture"),
        (lambda text: text.replace("budget = 120", "budget = 0"), "budget"),
        (lambda text: text.replace('"mad:epsilon=0.5"', '"mad:epsilonn=0.5"'), "takes no parameter"),
        (lambda text: text.replace("seeds = [0, 1]", "seeds = [0, 0]"), "seeds: lists a seed twice"),
        (lambda text: text + "\nsurplus = 3\n", "surplus"),
        (lambda text: text.replace('queryset = "digits"', "queryset = { mnist = 'fashionmnist' }"), "queryset names no data set"),
        (lambda text: text + '\n[[victim]]\nname = "x"\nint8 = { of = "nobody" }\n', "int8.of must name an earlier float victim"),
        (lambda text: "budget = [", "not valid TOML"),
    ],
)
def test_bad_configs_name_the_field(tmp_path: Path, change, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_grid(_write(tmp_path, change(GRID)))


def test_grid_cli_refuses_a_bad_config_in_one_line(tmp_path: Path, capsys) -> None:
    assert cli.main(["grid", str(_write(tmp_path, GRID.replace("budget = 120", "budget = -1"))), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "budget" in err
    assert cli.main(["grid", str(tmp_path / "missing.toml")]) == 2


def test_config_models_are_pydantic() -> None:
    assert issubclass(GridConfig, object) and GridConfig.model_json_schema()["title"] == "GridConfig"


@pytest.fixture
def loopback_ray(monkeypatch):
    """Ray nodes of this test answer on 127.0.0.1 only (drivers and workers alike)."""
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray._private.ray_constants as constants

    monkeypatch.setattr(constants, "ENABLE_RAY_CLUSTER", False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield


@pytest.fixture(scope="module")
def _no_ray_but_this_modules():
    """No Ray from elsewhere in this module's driver, and none left running after it."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def embedded_ray(_no_ray_but_this_modules, loopback_ray) -> None:
    """One embedded single-CPU Ray for this module's grids: ``run_grid`` uses a Ray that is already
    up and leaves it up, so the tests share its start (several seconds) and its warm workers."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=1, **ray_init_options(None))


@pytest.fixture
def own_ray_cluster(loopback_ray) -> None:
    """No Ray in this driver yet: the test starts and connects to its own cluster."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.mark.integration
def test_a_two_node_grid_survives_losing_a_node(tmp_path: Path, own_ray_cluster) -> None:
    from ray.cluster_utils import Cluster

    config = load_grid(_write(tmp_path, GRID + BROKEN_ATTACK))
    env = Env(victim_cache=str(tmp_path / "victims"), device="cpu", progress=False)
    out = tmp_path / "out"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    removed: list[str] = []

    def remove_the_worker_after_the_first_result(_result: RunResult) -> None:
        if not removed:
            cluster.remove_node(worker)
            removed.append("worker")

    try:
        outcome = run_grid(config, out_dir=out, env=env, address=cluster.address, on_result=remove_the_worker_after_the_first_result)
    finally:
        cluster.shutdown()
    assert removed == ["worker"]
    stored = RunTable(out / RESULTS_FILE).results()
    good = [spec for spec in config.specs() if spec.attack.params["epochs"] == 1]
    assert sorted(result.key for result in stored) == sorted(spec.key() for spec in good)
    failed = RunTable(out / FAILED_FILE).results()
    assert len(failed) == 1 and failed[0].status == "failed" and "epochs" in failed[0].error
    assert len(outcome.results) == 4 and len(outcome.failures) == 1

    one_by_one = {spec.key(): run(spec, env) for spec in good}
    for result in stored:
        expected = one_by_one[result.key]
        assert {name: getattr(result, name) for name in RunResult.METRICS} == {name: getattr(expected, name) for name in RunResult.METRICS}

    again = run_grid(config, out_dir=out, env=env, address=None, resume=True)
    assert again.results == [] and again.failures == [] and again.skipped == 5
    print(f"\ntwo-node grid: {grid_outcome_line(outcome, out)}; worker node removed after the first result; "
          f"{len(stored)} stored once each, equal to one-by-one runs; resume skipped {again.skipped}")
    with pytest.raises(FileExistsError, match="--resume"):
        run_grid(config, out_dir=out, env=env)
    assert os.environ["OMP_NUM_THREADS"] == "1"


@pytest.mark.integration
def test_a_dp_cell_on_ray_is_measured_against_its_float_twin(tmp_path: Path, embedded_ray) -> None:
    text = GRID.replace('defenses = ["none", "mad:epsilon=0.5"]', 'defenses = ["dp_sgd:noise_multiplier=2.0"]').replace("seeds = [0, 1]", "seeds = [0]")
    config = load_grid(_write(tmp_path, text))
    env = Env(victim_cache=str(tmp_path / "victims"), device="cpu")
    outcome = run_grid(config, out_dir=tmp_path / "out", env=env)
    assert len(outcome.results) == 1 and not outcome.failures
    on_ray = outcome.results[0]
    direct = run(config.specs()[0], env)
    assert on_ray.victim_variant == "dp" and on_ray.l1_mean == direct.l1_mean > 0
    assert on_ray.clean_accuracy == direct.clean_accuracy == on_ray.victim_accuracy


@pytest.mark.integration
def test_only_the_cells_that_need_it_wait_for_the_misinformation_model(tmp_path: Path, embedded_ray) -> None:
    text = GRID.replace('defenses = ["none", "mad:epsilon=0.5"]', 'defenses = ["none", "adaptive_misinformation:tau=0.5"]')
    text = text.replace("seeds = [0, 1]", "seeds = [0]")
    config = load_grid(_write(tmp_path, text))
    env = Env(victim_cache=str(tmp_path / "victims"), device="cpu")
    outcome = run_grid(config, out_dir=tmp_path / "out", env=env)
    assert sorted(result.defense for result in outcome.results) == ["adaptive_misinformation", "none"]
    assert not outcome.failures
    direct = {result.defense: result for result in (run(spec, env) for spec in config.specs())}
    for result in outcome.results:
        assert result.attacker_accuracy == direct[result.defense].attacker_accuracy


@pytest.mark.integration
def test_a_budget_curve_cell_stores_one_row_per_budget(tmp_path: Path, embedded_ray) -> None:
    text = GRID.replace("seeds = [0, 1]", "seeds = [0]").replace('defenses = ["none", "mad:epsilon=0.5"]', 'defenses = ["none"]')
    config = load_grid(_write(tmp_path, text.rstrip() + "\nbudgets = [40, 80]\n"))
    env = Env(victim_cache=str(tmp_path / "victims"), device="cpu")
    outcome = run_grid(config, out_dir=tmp_path / "out", env=env)
    stored = RunTable(tmp_path / "out" / RESULTS_FILE).results()
    assert [row.budget for row in stored] == [40, 80] and len(outcome.results) == 2 and not outcome.failures
    again = run_grid(config, out_dir=tmp_path / "out", env=env, resume=True)
    assert again.skipped == 1 and again.results == []
