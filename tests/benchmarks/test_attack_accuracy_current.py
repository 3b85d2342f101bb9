"""The attack-accuracy tables of benchmarks/README.md equal what their committed result files generate
(benchmarks/attack_accuracy_table.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("attack_accuracy_table", REPO / "benchmarks" / "attack_accuracy_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_quoted_tables_are_current() -> None:
    module = _module()
    assert module.runs(), "no committed attack-accuracy results"
    assert module.stale() == [], "run: python benchmarks/attack_accuracy_table.py"


def _result(attack: str, accuracy: float, **params: str) -> dict:
    return {
        "attack": attack, "attack_params": {"epochs": 30, **params}, "label": "none", "queries_used": 10000,
        "attacker_accuracy": accuracy, "fidelity": accuracy + 0.001, "defender_accuracy": 0.993, "elapsed_s": 12.4,
    }


def test_a_table_lists_the_results_in_the_attacks_order(tmp_path: Path) -> None:
    module = _module()
    for name, result in {
        "a": _result("knockoff", 0.9, policy="adaptive"), "b": _result("jbda", 0.8), "c": _result("knockoff", 0.95, policy="random"),
    }.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(result))
    lines = module.table(tmp_path).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| jbda", "| knockoff", "| knockoff (adaptive)"]
    assert lines[2] == "| jbda | `none` | 10000 | 30 | 0.8000 | 0.8010 | 0.9930 | 12 |"
