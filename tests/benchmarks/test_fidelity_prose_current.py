"""The numbers that docs/fidelity.md's per-method sections state about the code: computed from the code's constants.

Each claim is a phrase of the page with ``{}`` where a number stands, and the function that computes it (the
before/after section's measured numbers are checked by ``test_fidelity_before_after_current.py``). The test
fills the phrase and looks for it in the page (whitespace and line breaks do not matter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import accumulate
from pathlib import Path

import pytest

from _claims import assert_quoted, claim_ids

DOC = Path(__file__).resolve().parents[2] / "docs" / "fidelity.md"
EVALUATIONS = 1024
"""The reference greedy search's cap on objective evaluations (``oracle_argmax_preserving_approx_gpu``)."""


def exhaustive_sets() -> tuple[str, ...]:
    """The class sets of K = 10 that contain the top class (class 0 here)."""
    from stealguard.defenses.mad import subset_masks

    return (str(int(subset_masks(10)[:, 0].sum())),)


def greedy_cap() -> tuple[str, ...]:
    """Step s of the reference's greedy search over K classes evaluates the K - s classes not yet in the set."""

    def steps(classes: int) -> int:
        spent = list(accumulate(classes - step for step in range(1, classes)))
        return next(step for step, total in enumerate(spent, start=1) if total >= EVALUATIONS)

    exhausted = [classes for classes in range(11, 101) if classes * (classes - 1) // 2 < EVALUATIONS]
    assert exhausted == list(range(11, exhausted[-1] + 1))
    return str(EVALUATIONS), str(steps(100)), str(exhausted[0]), str(exhausted[-1]), str(EVALUATIONS)


def on_simplex() -> tuple[str, ...]:
    from stealguard.defenses.base import ON_SIMPLEX

    return (f"{ON_SIMPLEX:.0e}".replace("e-0", "e-"),)


CLAIMS: list[tuple[str, Callable[[], Sequence[str]]]] = [
    ("the exhaustive search evaluates {} sets per query for K = 10", exhaustive_sets),
    (("never stops at {} evaluations: for K = 100 the reference stops after {} steps (ours keeps the best set seen, so its "
      "objective is at least as high); for {} ≤ K ≤ {} the reference's loop runs out of candidates before {} evaluations"),
     greedy_cap),
    ("The defense boundary passes float32 rows whose sums are all within {} of 1", on_simplex),
]



@pytest.mark.parametrize(("phrase", "numbers"), CLAIMS, ids=claim_ids(CLAIMS))
def test_the_prose_states_what_the_code_gives(phrase: str, numbers: Callable[[], Sequence[str]]) -> None:
    assert_quoted(DOC, phrase, numbers)
