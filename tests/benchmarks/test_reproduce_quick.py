"""`benchmarks/reproduce.py --quick`: the whole reproduction pipeline on digits, as CI runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from stealguard.harness.grid import load_grid
from stealguard.harness.results import ResultsFile

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "reproduce.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=900)


def test_quick_mode_end_to_end(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    done = _run("--quick", "--out", str(out), "--work", str(work), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    grid = load_grid(REPO / "benchmarks" / "configs" / "quick.toml")
    rows = ResultsFile(out / "results.csv").rows()
    assert sorted(r["key"] for r in rows) == sorted(c.key() for c in grid.cells())
    done_lines = [line for line in done.stdout.splitlines() if line.startswith("done ")]
    assert len(done_lines) == len(rows)
    assert all(re.search(r": attacker acc [01]\.\d{4}, defender acc [01]\.\d{4}, \d+ s$", line) for line in done_lines)
    assert {r["defense"] for r in rows} >= {"none", "mad", "reverse_sigmoid", "random_noise", "dp_sgd", "label_only"}
    summary = (out / "summary.md").read_text()
    assert "python benchmarks/reproduce.py --quick" in summary
    for attack in ("knockoff", "jbda"):
        assert (out / f"digits-mlp-{attack}.png").stat().st_size > 1000
        assert f"## {attack} vs digits-mlp: mad and mad_argmax against reverse_sigmoid, random_noise, dp_sgd at equal cost" in summary
    assert summary.count("### mad\n") == summary.count("### mad_argmax\n") == 2
    assert summary.count("mad leaves the attacker lower accuracy than") == 12
    assert summary.count("mad_argmax leaves the attacker lower accuracy than") == 12
    assert summary.count("mad leaves the attacker lower accuracy than dp_sgd") == 4
    assert "| best dp_sgd at no greater cost |" in summary
    assert "within seed noise" in summary and "one seed" not in summary

    again = _run("--quick", "--out", str(out), "--work", str(work), "--quiet")
    assert again.returncode == 0 and len(ResultsFile(out / "results.csv").rows()) == len(rows)


def test_bad_config_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\nbudget = 10\ndefenses = ["nonsense"]\n[[victim]]\nname = "d"\ndataset = "digits"\narch = "mlp"\n'
        '[[attack]]\nname = "knockoff"\nqueryset = "digits"\n'
    )
    done = _run("--config", str(bad), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: grid defenses[0]") and "Traceback" not in done.stderr


def test_paper_table_puts_our_numbers_beside_the_papers(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import reproduce

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
    table = reproduce.paper_table(rows)
    line = next(li for li in table.splitlines() if li.startswith("| mnist-lenet | knockoff |"))
    assert line == "| mnist-lenet | knockoff | 99.4 | 99.3 | 99.0 | 98.0 ± 1.0 | 69.8 | 60.0 ± 1.0 (`mad:epsilon=1.0`) |"
    assert "| fashionmnist-lenet | jbda | 92.0 | not run | 38.7 | not run | – | not run |" in table


def test_report_only_without_results_is_one_line_and_exit_2(tmp_path):
    done = _run("--quick", "--report-only", "--out", str(tmp_path / "empty"), "--quiet")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: no results in")



def test_report_compares_the_grids_references_with_its_rivals(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import reproduce

    results = ResultsFile(tmp_path / "results.csv")
    for seed in (0, 1):
        for defense, label, attacker, defender, l1 in (
            ("none", "none", 0.80, 0.90, 0.0),
            ("dcp", "dcp", 0.70, 0.90, 0.1),
            ("reverse_sigmoid", "reverse_sigmoid:beta=0.3", 0.75, 0.88, 0.3),
            ("mad", "mad:epsilon=0.5", 0.60, 0.85, 0.5),
        ):
            results.append({
                "key": f"{label}-{seed}", "victim": "v", "attack_name": "knockoff", "defense": defense, "label": label, "seed": seed,
                "victim_accuracy": 0.90, "defender_accuracy": defender, "attacker_accuracy": attacker + 0.001 * seed,
                "l1_mean": l1, "code_version": "test",
            })
    summary = reproduce.report(results, tmp_path, command="test", references=("dcp",), rivals=("reverse_sigmoid", "mad", "adaptive_misinformation"))
    text = summary.read_text()
    assert "## knockoff vs v: dcp against reverse_sigmoid, mad at equal cost" in text
    assert "### dcp" in text and "### mad\n" not in text
    assert text.count("dcp leaves the attacker lower accuracy than") == 4


def test_rerun_replace_swaps_the_row_and_keeps_the_old_one(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(
        'name = "tiny"\nbudget = 200\nseeds = [0]\ndefenses = ["none", "dcp"]\n'
        '[[victim]]\nname = "d"\ndataset = "digits"\narch = "mlp"\ntrain = { epochs = 2 }\n'
        '[[attack]]\nname = "knockoff"\nqueryset = "digits"\nparams = { epochs = 2 }\n'
    )
    out, work = tmp_path / "out", tmp_path / "work"
    first = _run("--config", str(config), "--out", str(out), "--work", str(work), "--quiet")
    assert first.returncode == 0, first.stderr[-3000:]
    stored = {r["defense"]: r for r in ResultsFile(out / "results.csv").rows()}

    compared = _run("--config", str(config), "--out", str(out), "--work", str(work), "--quiet", "--rerun", "--defenses", "dcp")
    assert compared.returncode == 0, compared.stderr[-3000:]
    assert "| d | knockoff | dcp | 0 |" in compared.stdout
    assert "done d knockoff dcp seed 0: attacker acc" in compared.stdout
    assert ResultsFile(out / "results.csv").rows() == list(stored.values()) and not (out / "superseded.csv").exists()

    replaced = _run(
        "--config", str(config), "--out", str(out), "--work", str(work), "--quiet", "--rerun", "--replace", "--defenses", "dcp"
    )
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    rows = ResultsFile(out / "results.csv").rows()
    assert [r["defense"] for r in rows] == ["none", "dcp"] and rows[0] == stored["none"]
    assert rows[1]["key"] == stored["dcp"]["key"] and rows[1]["finished_at"] != stored["dcp"]["finished_at"]
    assert ResultsFile(out / "superseded.csv").rows() == [stored["dcp"]]
    summary = (out / "summary.md").read_text()
    assert "--replace" in summary and "1 earlier row(s) of rerun cells (`--rerun --replace`) are kept in `superseded.csv`" in summary

    alone = _run("--config", str(config), "--out", str(out), "--replace")
    assert alone.returncode == 2 and "--replace only goes with --rerun" in alone.stderr
