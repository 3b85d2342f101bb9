"""The demo: files written, rows as promised, reproducible for a seed."""

from __future__ import annotations

import json
from pathlib import Path

from stealguard.harness import demo
from stealguard.harness.demo import DEMO_BUDGET, DEMO_DEFENSES

SUBSET = ("none", "mad:epsilon=0.5", "label_only")
STABLE = ("defender_accuracy", "attacker_accuracy", "fidelity", "l1_mean", "queries_used", "angular_deviation_mean")


def test_demo_writes_results_and_is_reproducible(tmp_path: Path) -> None:
    first = demo(out_dir=tmp_path / "a", seed=0, device="cpu", progress=False, defenses=SUBSET)
    second = demo(out_dir=tmp_path / "b", seed=0, device="cpu", progress=False, defenses=SUBSET)
    assert [row["label"] for row in first] == list(SUBSET)
    assert all(row["queries_used"] == DEMO_BUDGET for row in first)
    assert [{k: r[k] for k in STABLE} for r in first] == [{k: r[k] for k in STABLE} for r in second]
    out = tmp_path / "a"
    assert {"results.csv", "results.json", "tradeoff.png", "victim"} <= {p.name for p in out.iterdir()}
    assert len(json.loads((out / "results.json").read_text())) == len(SUBSET)
    none, mad, label_only = first
    assert none["l1_mean"] < 1e-6 and 0.1 < mad["l1_mean"] <= 0.5 + 1e-6
    assert label_only["defender_accuracy"] == none["defender_accuracy"]


def test_demo_defense_list() -> None:
    assert DEMO_DEFENSES[0] == "none"
    names = {spec.partition(":")[0] for spec in DEMO_DEFENSES}
    assert names == {"none", "mad", "mad_argmax", "dcp", "reverse_sigmoid", "random_noise", "label_only"}
