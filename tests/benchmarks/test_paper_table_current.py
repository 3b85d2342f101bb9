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


def _paper_rows():
    """The paper grid's rows, named by the paper's configs (as benchmarks/reproduce.py reads them): the
    adaptive configs, first in file order, name other attacks of this results file "naive"."""
    names = Names.committed(*(load_grid(BENCHMARKS / "configs" / f"{name}.toml") for name in ("paper-mnist-knockoff", "paper")))
    return read_frame(BENCHMARKS / "results" / "paper" / "results.csv", names)


def _knockoff_rows():
    """The MNIST/Knockoff grid's rows."""
    rows = _paper_rows()
    return rows[(rows["victim"] == "mnist-lenet") & (rows["attack_name"] == "knockoff")]


def _close(printed: str, value: float) -> bool:
    """Whether ``value`` rounds to ``printed`` (half a unit of its last digit)."""
    decimals = len(printed.split(".", 1)[1]) if "." in printed else 0
    return abs(float(printed) - value) <= 0.5 * 10.0**-decimals + 1e-9


def test_the_quoted_table_is_the_committed_rows() -> None:
    rows = _knockoff_rows()
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


def test_the_reading_of_the_table_quotes_the_rows() -> None:
    from opacus.accountants import RDPAccountant

    rows = _knockoff_rows()
    text = " ".join((BENCHMARKS / "README.md").read_text().split())
    by_label = rows.groupby("label")
    spread = by_label["attacker_accuracy"].std(ddof=1).max()
    assert f"the largest seed standard deviation of the grid, {100 * spread:.1f} points" in text
    undefended = by_label["attacker_accuracy"].mean()["none"]
    drops = [100 * (undefended - by_label["attacker_accuracy"].mean()[label]) for label in ("dcp", "dcp:tau=0.95,beta=1.0")]
    assert f"at its defaults costs the attacker {drops[0]:.1f} points; with τ 0.95, β 1.0 it costs {drops[1]:.1f}" in text
    queries = [by_label["query_l1_mean"].mean()[label] for label in ("dcp", "dcp:tau=0.95,beta=1.0")]
    assert f"the attacker's Fashion-MNIST queries by {queries[0]:.2f} and {queries[1]:.2f}" in text
    # The DP victims' epsilon, from the accountant the training used: 5 epochs of 938 Poisson-sampled batches
    # (batch 64 over the 60,000 training images), delta 1e-5.
    epsilons = []
    for noise in (0.5, 1.0, 2.0):
        accountant = RDPAccountant()
        accountant.history = [(noise, 1 / 938, 5 * 938)]
        epsilons.append(accountant.get_epsilon(1e-5))
    assert f"δ 1e-5: ε {epsilons[0]:.1f} / {epsilons[1]:.2f} / {epsilons[2]:.2f})" in text


def test_the_reduced_grid_table_is_the_committed_rows() -> None:
    rows = _paper_rows()
    text = (BENCHMARKS / "README.md").read_text()
    section = text[text.index("### Results: the reduced `paper.toml`") :]
    table = section[section.index("| victim | attack | paper: undefended |") :].split("\n\n", 1)[0].splitlines()
    settings = [cell.strip().strip("`") for cell in table[0].strip("|").split("|")[3:]]
    victims = {"MNIST": "mnist-lenet", "Fashion-MNIST": "fashionmnist-lenet"}
    attacks = {"JBDA": "jbda", "JB-self": "jb_self", "JB-top3": "jb_top3", "Knockoff (seeds 0, 1)": "knockoff"}
    victim = None
    for line in table[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        victim = victims.get(cells[0].split(" (", 1)[0], victim)
        pair = rows[(rows["victim"] == victim) & (rows["attack_name"] == attacks[cells[1]])]
        for setting, quoted in zip(settings, cells[3:], strict=True):
            measured = pair[pair["label"] == setting].sort_values("seed")["attacker_accuracy"].tolist()
            printed = quoted.split(", ")
            assert len(printed) == len(measured), (victim, cells[1], setting)
            assert all(_close(text, 100 * value) for text, value in zip(printed, measured, strict=True)), (victim, cells[1], setting)


def test_the_fashion_mnist_dp_paragraph_quotes_the_rows() -> None:
    from opacus.accountants import RDPAccountant

    rows = _paper_rows()
    pair = rows[(rows["victim"] == "fashionmnist-lenet") & (rows["attack_name"] == "knockoff")]
    dp = pair[pair["defense"] == "dp_sgd"].sort_values("seed")
    float_rows = pair[pair["defense"] != "dp_sgd"]
    text = " ".join((BENCHMARKS / "README.md").read_text().split())
    found = re.search(
        r"δ 1e-5, ε ([\d.]+)\) reaches ([\d.]+)% test accuracy, ([\d.]+) points below the float victim .*? Knockoff against it "
        r"reaches \*\*([\d.]+) and ([\d.]+)% \(([\d.]+) ± ([\d.]+)\)\*\*, more than against the undefended victim \(([\d.]+)%\)",
        text,
    )
    assert found is not None
    epsilon, defended, loss, seed0, seed1, mean, spread, undefended = found.groups()
    accountant = RDPAccountant()
    accountant.history = [(1.0, 1 / 938, 15 * 938)]  # 15 epochs of 938 batches (64 of 60,000 images), as trained
    assert _close(epsilon, accountant.get_epsilon(1e-5))
    assert _close(defended, 100 * dp["defender_accuracy"].iloc[0])
    assert _close(loss, 100 * (dp["victim_accuracy"].iloc[0] - dp["defender_accuracy"].iloc[0]))
    assert _close(seed0, 100 * dp["attacker_accuracy"].iloc[0]) and _close(seed1, 100 * dp["attacker_accuracy"].iloc[1])
    assert _close(mean, 100 * dp["attacker_accuracy"].mean()) and _close(spread, 100 * dp["attacker_accuracy"].std(ddof=1))
    assert _close(undefended, 100 * float_rows.loc[float_rows["defense"] == "none", "attacker_accuracy"].mean())
    twins = f"{100 * dp['victim_accuracy'].iloc[0]:.2f}% against {100 * float_rows['victim_accuracy'].iloc[0]:.2f}%"
    assert twins in text
