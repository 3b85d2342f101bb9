"""`benchmarks/reproduce.py`: a grid run on an embedded Ray, then its report (integration), and the report's pieces."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from stealguard.harness.ray_grid import load_grid
from stealguard.harness.run_table import RunTable
from stealguard.runspec import Int8Variant

from _rows import DIGITS, result
from report.names import Names, read_frame
from report.summary import paper_table, write_report

pytestmark = pytest.mark.xdist_group("ray")
"""reproduce.py starts a Ray cluster: on the test worker of the other modules that do."""

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "reproduce.py"
TINY = (
    'name = "tiny"\nbudget = 200\nseeds = [0]\n'
    'defenses = ["none", "mad:epsilon=0.5", "dp_sgd:noise_multiplier=1.0,max_grad_norm=1.0"]\n'
    '[[victim]]\nname = "d"\ndataset = "digits"\narch = "mlp"\ntrain = { epochs = 2 }\n'
    '[[attack]]\nname = "knockoff"\nqueryset = "digits"\nparams = { epochs = 2 }\n'
    '[compare]\nreferences = ["mad"]\nrivals = ["dp_sgd"]\n'
)


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=timeout)


@pytest.mark.integration
def test_a_three_cell_grid_end_to_end_and_resumed(tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out, work = tmp_path / "out", tmp_path / "work"
    done = _run("--config", str(config), "--out", str(out), "--work", str(work), "--quiet", "--data-root", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    stored = RunTable(out / "results.csv").results()
    assert sorted(r.key for r in stored) == sorted(spec.key() for spec in load_grid(config).specs())
    assert {r.defense_seed for r in stored} != {r.seed for r in stored}
    done_lines = [line for line in done.stdout.splitlines() if line.startswith("done ")]
    assert len(done_lines) == 3
    assert all(re.fullmatch(r"done d knockoff \S+ seed 0: attacker acc [01]\.\d{4}, defender acc [01]\.\d{4}, \d+ s", line) for line in done_lines)
    assert any(" dp_sgd:noise_multiplier=1.0,max_grad_norm=1.0 seed 0" in line for line in done_lines)
    summary = (out / "summary.md").read_text()
    assert "## knockoff vs d: mad against dp_sgd at equal cost" in summary
    assert summary.count("mad leaves the attacker lower accuracy than dp_sgd") == 2
    assert (out / "d-knockoff.png").stat().st_size > 1000

    again = _run("--config", str(config), "--out", str(out), "--work", str(work), "--quiet", "--data-root", str(tmp_path))
    assert again.returncode == 0 and not [line for line in again.stdout.splitlines() if line.startswith("done ")]
    assert len(RunTable(out / "results.csv").results()) == 3


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace('"mad:epsilon=0.5"', '"nonsense"'))
    done = _run("--config", str(bad), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error: grid config") and "unknown defense 'nonsense'" in done.stderr


def test_report_only_without_results_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _run("--quick", "--report-only", "--out", str(tmp_path / "empty"), "--quiet")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: no results in")


def test_paper_table_puts_our_numbers_beside_the_papers() -> None:
    def row(defense, label, attacker, defender, std=0.01):
        return {
            "victim": "mnist-lenet", "attack_name": "knockoff", "defense": defense, "label": label, "victim_accuracy": 0.993,
            "defender_accuracy": defender, "defender_loss": round(0.993 - defender, 6), "attacker_accuracy": attacker,
            "attacker_accuracy_std": std,
        }

    rows = [
        row("none", "none", 0.98, 0.993),
        row("mad", "mad:epsilon=0.5", 0.80, 0.990),
        row("mad", "mad:epsilon=1.0", 0.60, 0.985),
        row("mad", "mad:epsilon=1.5", 0.10, 0.20),
    ]
    table = paper_table(rows)
    line = next(li for li in table.splitlines() if li.startswith("| mnist-lenet | knockoff |"))
    assert line == "| mnist-lenet | knockoff | 99.4 | 99.3 | 99.0 | 98.0 ± 1.0 | 69.8 | 60.0 ± 1.0 (`mad:epsilon=1.0`) |"
    assert "| fashionmnist-lenet | jbda | 92.0 | not run | 38.7 | not run | – | not run |" in table


def test_report_compares_the_grids_references_with_its_rivals(tmp_path: Path) -> None:
    table = RunTable(tmp_path / "results.csv")
    for seed in (0, 1):
        for defense, attacker, defender, l1 in (
            ("none", 0.80, 0.90, 0.0), ("dcp", 0.70, 0.90, 0.1), ("reverse_sigmoid:beta=0.3", 0.75, 0.88, 0.3),
            ("mad:epsilon=0.5", 0.60, 0.85, 0.5),
        ):
            table.append(result(defense, attack="knockoff", seed=seed, defender_accuracy=defender, attacker_accuracy=attacker + 0.001 * seed, l1_mean=l1))
    names = Names(victims={DIGITS.key(): "v"})
    summary = write_report(
        table.path, tmp_path, command="test", references=("dcp",), rivals=("reverse_sigmoid", "mad", "adaptive_misinformation"), names=names,
    )
    text = summary.read_text()
    assert "## knockoff vs v: dcp against reverse_sigmoid, mad at equal cost" in text
    assert "### dcp" in text and "### mad\n" not in text
    assert text.count("dcp leaves the attacker lower accuracy than") == 4
    assert "(8 cells; code versions: test)" in text


def test_dp_victims_are_reported_as_the_dp_sgd_defense_of_their_float_twin(tmp_path: Path) -> None:
    from stealguard.runspec import DPVariant

    dp = DIGITS.model_copy(update={"variant": DPVariant(noise_multiplier=0.5)})
    table = RunTable(tmp_path / "results.csv")
    table.append(result("none", victim=DIGITS, attacker_accuracy=0.8))
    table.append(result("none", victim=dp, attacker_accuracy=0.6))
    frame = read_frame(table.path, Names(victims={DIGITS.key(): "v"}))
    assert list(frame["victim"]) == ["v", "v"]
    assert list(frame["defense"]) == ["none", "dp_sgd"]
    assert frame["label"].iloc[1] == "dp_sgd:noise_multiplier=0.5,max_grad_norm=1.0"


def test_committed_victims_are_checked_against_the_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from reproduce import card_differences

    int8 = DIGITS.model_copy(update={"variant": Int8Variant(calibration=64)})
    card = SimpleNamespace(arch="mlp", dataset="digits", seed=0, quantization={"calibration_size": 512, "calibration_seed": 0}, dp=None, train={})
    assert card_differences(card, int8) == ["int8: card (512, 0), grid (64, 0)"]
    assert card_differences(SimpleNamespace(**{**vars(card), "quantization": None}), DIGITS) == []
