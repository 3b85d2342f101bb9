"""Result rows for the report tests: :class:`RunResult` values of digits specs with chosen metrics."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from stealguard.runspec import RunResult, RunSpec, VictimSpec

DIGITS = VictimSpec(dataset="digits", arch="mlp")


def result(
    defense: str = "none", *, attack: str = "knockoff:epochs=2", seed: int = 0, victim: VictimSpec = DIGITS, victim_accuracy: float = 0.9,
    **metrics: Any,
) -> RunResult:
    """The ``ok`` result of ``victim`` behind ``defense`` with ``metrics`` (others NaN)."""
    spec = RunSpec(victim=victim, defense=defense, attack=attack, budget=100, seed=seed)
    card = SimpleNamespace(dataset=victim.dataset, arch=victim.arch, test_accuracy=victim_accuracy)
    return RunResult(**RunResult.identity(spec, victim_card=card), code_version="test", **metrics)
