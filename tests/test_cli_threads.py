"""``--threads`` of train, attack, sweep and demo: parsed, validated before work starts, applied."""

from __future__ import annotations

import pytest
import torch

from stealguard import cli


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("command", ["train", "attack", "sweep", "demo"])
@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_thread_count_is_a_usage_error(command, value, capsys):
    assert cli.main([command, "--threads", value]) == cli.USAGE_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads" in err[0]


def test_auto_is_half_the_usable_cores_at_least_one():
    assert 1 <= cli.default_threads() <= cli.usable_cores()
    assert cli.default_threads() == max(1, cli.usable_cores() // 2)


@pytest.mark.parametrize("value,expected", [("1", 1), ("auto", None)])
def test_threads_set_before_the_command_runs(value, expected, tmp_path, restore_threads, capsys):
    torch.set_num_threads(3)
    status = cli.main(["train", "--dataset", "no_such_data", "--arch", "mlp", "--out", str(tmp_path), "--threads", value])
    assert status == cli.USAGE_ERROR  # the unknown data set fails after the threads are set
    assert torch.get_num_threads() == (cli.default_threads() if expected is None else expected)


def test_demo_threads_default_to_one():
    args = cli.build_parser().parse_args(["demo"])
    assert args.torch_threads is None
    assert cli.build_parser().parse_args(["demo", "--threads", "2"]).torch_threads == 2


GRID = """
name = "threads-check"
budget = 10
seeds = [0]
defenses = ["none"]
threads = 1

[[victim]]
name = "digits-mlp"
dataset = "digits"
arch = "mlp"

[[attack]]
name = "knockoff"
"""


@pytest.mark.parametrize("flag,expected", [([], 1), (["--threads", "2"], 2)])
def test_grid_threads_override_the_configs_per_cell_threads(flag, expected, tmp_path, monkeypatch, restore_threads):
    from stealguard.harness import ray_grid

    seen = {}

    def fake_run_grid(config, **kwargs):
        seen["threads"] = config.threads
        raise ValueError("stop before Ray starts")

    monkeypatch.setattr(ray_grid, "run_grid", fake_run_grid)
    (tmp_path / "grid.toml").write_text(GRID)
    torch.set_num_threads(3)
    assert cli.main(["grid", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "out"), *flag]) == cli.USAGE_ERROR
    assert seen["threads"] == expected
    assert torch.get_num_threads() == 3  # the driver keeps its own; workers set the cell's
