"""The attack-accuracy tables of benchmarks/README.md equal what their committed result files generate
(benchmarks/attack_accuracy_table.py)."""

from __future__ import annotations

import json
from pathlib import Path

import attack_accuracy_table as module

from report.doc_tables import sync_marked


def test_the_quoted_tables_are_current() -> None:
    assert module.runs(), "no committed attack-accuracy results"
    assert sync_marked(module.PAGE, module.bodies(), check=True) == [], "run: python benchmarks/attack_accuracy_table.py"


def _result(attack: str, accuracy: float, **params: str) -> dict:
    return {
        "attack": attack, "attack_params": {"epochs": 30, **params}, "label": "none", "queries_used": 10000,
        "attacker_accuracy": accuracy, "fidelity": accuracy + 0.001, "defender_accuracy": 0.993, "elapsed_s": 12.4,
    }


def test_a_table_lists_the_results_in_the_attacks_order(tmp_path: Path) -> None:
    for name, result in {
        "a": _result("knockoff", 0.9, policy="adaptive"), "b": _result("jbda", 0.8), "c": _result("knockoff", 0.95, policy="random"),
    }.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(result))
    lines = module.table(tmp_path).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| jbda", "| knockoff", "| knockoff (adaptive)"]
    assert lines[2] == "| jbda | `none` | 10000 | 30 | 0.8000 | 0.8010 | 0.9930 | 12 |"


def test_the_comparison_with_the_paper_quotes_the_rows() -> None:
    runs = module.RESULTS / "budget-50000"
    accuracy = {path.name.split("-none-")[0]: json.loads(path.read_text())["attacker_accuracy"] for path in runs.glob("*.json")}
    paper = {"jbda": 89.2, "jb_self": 89.4, "jb_top3": 87.3}
    gaps = [100 * accuracy[name] - value for name, value in paper.items()]
    text = " ".join(module.PAGE.read_text().split())
    assert f"The MAD paper reports {' / '.join(str(v) for v in paper.values())} for JBDA / JB-self / JB-top3" in text
    assert f"Our Jacobian attacks come out {min(gaps):.1f} to {max(gaps):.1f} points higher." in text
    assert f"Fashion-MNIST queries, reaches {100 * accuracy['knockoff']:.2f}%" in text


def test_the_victim_accuracy_is_the_committed_card() -> None:
    card = json.loads((module.PAGE.parent / "victims" / "mnist-lenet" / "card.json").read_text())
    text = " ".join(module.PAGE.read_text().split())
    assert f"against the committed victim (`victims/mnist-lenet`, {100 * card['test_accuracy']:.2f}%)" in text
