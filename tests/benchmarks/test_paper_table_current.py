"""The MNIST/Knockoff table that benchmarks/README.md quotes from the Prediction Poisoning grid is what the
committed rows (benchmarks/results/paper/results.csv) give, to the digits it prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stealguard.harness.ray_grid import load_grid

from report.names import Names, read_frame

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _quoted() -> list[list[str]]:
    text = (BENCHMARKS / "README.md").read_text()
    section = text[text.index("### Results: MNIST `lenet`, Knockoff, 50,000 queries") :]
    table = section[section.index("| defense setting | defender acc |") :].split("\n\n", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def _close(printed: str, value: float) -> bool:
    """Whether ``value`` rounds to ``printed`` (half a unit of its last digit)."""
    decimals = len(printed.split(".", 1)[1]) if "." in printed else 0
    return abs(float(printed) - value) <= 0.5 * 10.0**-decimals + 1e-9


def test_the_quoted_table_is_the_committed_rows() -> None:
    # The names the paper's configs give (as benchmarks/reproduce.py reads them): the adaptive configs,
    # first in file order, name other attacks of the same results file "naive".
    names = Names.committed(*(load_grid(BENCHMARKS / "configs" / f"{name}.toml") for name in ("paper-mnist-knockoff", "paper")))
    rows = read_frame(BENCHMARKS / "results" / "paper" / "results.csv", names)
    rows = rows[(rows["victim"] == "mnist-lenet") & (rows["attack_name"] == "knockoff")]
    quoted = _quoted()
    assert len(quoted) == 17
    for setting, defender, attacker, l1 in quoted:
        label = setting.strip("`")
        cells = rows[rows["label"] == label]
        assert sorted(cells["seed"]) == [0, 1], label
        mean, spread = (float(v) for v in re.fullmatch(r"([\d.]+) ± ([\d.]+)", attacker).groups())
        assert _close(defender, 100 * cells["defender_accuracy"].mean()), (label, defender)
        assert _close(attacker.split(" ± ")[0], 100 * cells["attacker_accuracy"].mean()), (label, mean)
        assert _close(attacker.split(" ± ")[1], 100 * cells["attacker_accuracy"].std(ddof=1)), (label, spread)
        assert _close(l1, cells["l1_mean"].mean()), (label, l1)


@pytest.mark.parametrize(("printed", "value", "expected"), [("98.1", 98.149, True), ("98.1", 98.16, False), ("0", 0.4, True)])
def test_close_reads_the_printed_precision(printed: str, value: float, expected: bool) -> None:
    assert _close(printed, value) is expected
