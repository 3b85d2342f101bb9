"""Budget curves from one query run, and replicas trained offline from saved transfer sets (CLI end to end)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from stealguard.attacks.transfer import load_transfer
from stealguard.cli import main
from stealguard.harness import train_victim
from stealguard.harness.budgets import parse_budgets

ATTACK = ["--attack", "knockoff", "--epochs", "2", "--attack-param", "batch_size=32", "--queryset", "digits", "--seed", "2",
          "--device", "cpu", "--quiet"]
DEFENSE = ["--defense", "reverse_sigmoid:beta=0.3"]
"""A deterministic defense: a noise defense draws its noise per call, so a prefix of a long run gets other noise than a short run."""


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("victim")
    train_victim(dataset="digits", arch="mlp", epochs=2, seed=0, device="cpu", out=out, progress=False)
    return out


@pytest.fixture(scope="module")
def plain(victim: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    """Separate plain runs at budgets 100 and 300; the 300 one also saves its transfer set."""
    root = tmp_path_factory.mktemp("plain")
    runs = {}
    for budget in (100, 300):
        extra = ["--save-transfer", str(root / "t300.safetensors")] if budget == 300 else []
        code = main(["attack", "--victim", str(victim), *ATTACK, *DEFENSE, "--budget", str(budget), "--out", str(root / f"{budget}.json"), *extra])
        assert code == 0
        runs[budget] = json.loads((root / f"{budget}.json").read_text())
    runs[0] = {"transfer": root / "t300.safetensors"}
    return runs


@pytest.fixture(scope="module")
def curve(victim: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    root = tmp_path_factory.mktemp("curve")
    out = root / "curve"
    code = main(["attack", "--victim", str(victim), *ATTACK, *DEFENSE, "--budgets", "300,100,50", "--out", str(out),
                 "--save-transfer", str(root / "curve.safetensors")])
    assert code == 0 and (out / "budget_curve.png").stat().st_size > 0
    saved = load_transfer(root / "curve.safetensors")
    assert saved.num_queries == 300 and saved.meta["defense"] == "reverse_sigmoid:beta=0.3" and saved.meta["queryset"] == "digits"
    with open(out / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_one_row_per_budget_none_over_its_budget(curve: list[dict]) -> None:
    assert [int(row["budget"]) for row in curve] == [50, 100, 300]
    assert all(int(row["queries_used"]) <= int(row["budget"]) for row in curve)
    assert all(row["status"] == "ok" and 0 <= float(row["attacker_accuracy"]) <= 1 for row in curve)
    assert [json.loads(row["attack_report"]).get("budget_curve", {}).get("query_run_budget") for row in curve] == [300, 300, None]


def test_each_row_equals_a_separate_run_at_its_budget(curve: list[dict], plain: dict[int, dict]) -> None:
    by_budget = {int(row["budget"]): row for row in curve}
    for budget in (100, 300):
        assert float(by_budget[budget]["attacker_accuracy"]) == plain[budget]["attacker_accuracy"]
        assert float(by_budget[budget]["fidelity"]) == plain[budget]["fidelity"]
        assert int(by_budget[budget]["queries_used"]) == plain[budget]["queries_used"] == budget


def test_saved_transfer_set_records_the_run(plain: dict[int, dict]) -> None:
    transfer = load_transfer(plain[0]["transfer"])
    assert transfer.num_queries == 300 and transfer.meta["queries_used"] == 300 and transfer.meta["budget"] == 300
    assert transfer.meta["defense"] == "reverse_sigmoid:beta=0.3" and transfer.meta["attack"] == "knockoff"
    assert transfer.meta["seed"] == 2 and transfer.meta["queryset"] == "digits" and transfer.meta["attack_params"]["epochs"] == 2


def test_offline_training_reproduces_the_plain_runs(victim: Path, plain: dict[int, dict], tmp_path: Path) -> None:
    for budget in (100, 300):
        out = tmp_path / f"offline{budget}.json"
        code = main(["attack", "--transfer", str(plain[0]["transfer"]), "--victim", str(victim), *ATTACK, "--budget", str(budget), "--out", str(out)])
        assert code == 0
        row = json.loads(out.read_text())
        assert row["attacker_accuracy"] == plain[budget]["attacker_accuracy"] and row["fidelity"] == plain[budget]["fidelity"]
        assert row["queries_used"] == budget and "offline" in row["measured"]


def test_offline_curve_without_the_victim_measures_no_fidelity(plain: dict[int, dict], tmp_path: Path) -> None:
    out = tmp_path / "curve"
    code = main(["attack", "--transfer", str(plain[0]["transfer"]), *ATTACK, "--budgets", "100,300", "--out", str(out)])
    assert code == 0
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["budget"]) for row in rows] == [100, 300] and all(row["fidelity"] == "" for row in rows)
    assert float(rows[1]["attacker_accuracy"]) == plain[300]["attacker_accuracy"]


def test_sweep_takes_budget_lists(victim: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    code = main(["sweep", "--victim", str(victim), *ATTACK, "--defense", "none", "--budgets", "50,100", "--out", str(out)])
    assert code == 0 and (out / "budget_curve.png").is_file() and (out / "tradeoff.png").is_file()
    with open(out / "results.csv", newline="") as handle:
        assert [int(row["budget"]) for row in csv.DictReader(handle)] == [50, 100]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "100", "--budgets", "50,100"], "not both"),
        ([], "needs --budget N or --budgets LIST"),
        (["--budgets", "50,x"], "comma-separated list of integers"),
        (["--budgets", "0,10"], "integers >= 1"),
        (["--budgets", "50", "--target", "http://127.0.0.1:9"], "cannot be used with --target"),
    ],
)
def test_bad_budget_options_are_one_line_errors(victim: Path, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    code = main(["attack", "--victim", str(victim), *ATTACK, *args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_hostile_transfer_file_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04\x95 not a transfer set")
    code = main(["attack", "--transfer", str(bad), *ATTACK, "--out", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert code == 2 and "not a safetensors file" in err and str(bad) in err and len(err.strip().splitlines()) == 1


def test_a_budget_beyond_the_transfer_set_is_refused(plain: dict[int, dict], tmp_path: Path, capsys) -> None:
    code = main(["attack", "--transfer", str(plain[0]["transfer"]), *ATTACK, "--budget", "301", "--out", str(tmp_path / "o.json")])
    assert code == 2 and "exceeds the 300 queries" in capsys.readouterr().err


def test_parse_budgets() -> None:
    assert parse_budgets("5000, 1000,5000") == (1000, 5000) and parse_budgets([3, 1]) == (1, 3)
    with pytest.raises(ValueError, match="budgets must be"):
        parse_budgets("")


GRID = """
name = "curve"
budget = 120
seeds = [0]
defenses = ["none"]

[[victim]]
name = "digits-mlp"
dataset = "digits"
arch = "mlp"
train = { epochs = 2 }

[[attack]]
name = "knockoff"
queryset = "digits"
params = { epochs = 1, batch_size = 32 }
budgets = [40, 80]
"""


def test_a_grid_attack_with_budgets_is_one_cell_at_its_largest(tmp_path: Path) -> None:
    from stealguard.harness.ray_grid import load_grid

    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    config = load_grid(path)
    (spec,) = config.specs()
    assert spec.budget == 80 and config.curve_budgets() == {spec.key(): (40, 80)}
    path.write_text(GRID.replace("budgets = [40, 80]", "budgets = [40, 80]\nbudget = 80"))
    with pytest.raises(ValueError, match="budget or budgets, not both"):
        load_grid(path)
    path.write_text(GRID.replace("budgets = [40, 80]", "budgets = [40, 40]"))
    with pytest.raises(ValueError, match="distinct budgets"):
        load_grid(path)


def test_a_grid_cell_with_budgets_gives_one_row_per_budget(tmp_path: Path) -> None:
    from stealguard.harness.ray_grid import _cell_task, load_grid
    from stealguard.harness.run import VictimBundle, prepare_victim, run
    from stealguard.runspec import Env

    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    config = load_grid(path)
    (spec,) = config.specs()
    env = Env(victim_cache=str(tmp_path / "victims"), device="cpu")
    bundle = VictimBundle.of(prepare_victim(spec.victim, env))
    rows = _cell_task(spec, env, bundle, None, config.curve_budgets()[spec.key()])
    assert [row.budget for row in rows] == [40, 80] and rows[-1].key == spec.key()
    assert all(row.queries_used <= row.budget for row in rows)
    separate = run(spec.model_copy(update={"budget": 40}), env)
    assert rows[0].attacker_accuracy == separate.attacker_accuracy and rows[0].key == separate.key
