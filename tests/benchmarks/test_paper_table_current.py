"""The tables that benchmarks/README.md quotes from the Prediction Poisoning grid, and the numbers and counts of
the readings under them, are what the committed rows (benchmarks/results/paper/results.csv) give, to the digits
they print; comparisons "beyond noise" are recomputed with the report's equal-cost comparison."""

from __future__ import annotations

import functools
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
    """The paper grid's rows, named by the configs that write them (``paper``, ``paper-mnist-knockoff``), as
    benchmarks/reproduce.py reads them."""
    return read_frame(BENCHMARKS / "results" / "paper" / "results.csv")


def test_results_are_named_by_the_configs_that_write_them() -> None:
    """The adaptive configs call Knockoff without evasion ``naive``: the paper grid's file is still read as ``knockoff``."""
    paper = read_frame(BENCHMARKS / "results" / "paper" / "results.csv")
    by_name = Names.committed(*(load_grid(BENCHMARKS / "configs" / f"{name}.toml") for name in ("paper-mnist-knockoff", "paper")))
    assert paper.equals(read_frame(BENCHMARKS / "results" / "paper" / "results.csv", by_name))
    assert set(paper["attack_name"]) == {"knockoff", "jbda", "jb_self", "jb_top3"}


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


def _text() -> str:
    return " ".join((BENCHMARKS / "README.md").read_text().split())


@functools.cache
def _seed_means() -> tuple[dict, ...]:
    """The paper grid's seed means per (victim, attack, setting) (:func:`report.compare.aggregate`), computed once."""
    from report import compare

    return tuple(compare.aggregate(_paper_rows()))


def _pair(victim: str, attack: str) -> dict[str, dict]:
    """The seed means of one (victim, attack) pair of the paper grid, by setting."""
    from report import compare

    return {row["label"]: row for row in compare.pair_rows(list(_seed_means()), victim, attack)}


def _pct(fraction: float, decimals: int = 1) -> str:
    return f"{100 * fraction:.{decimals}f}"


def test_the_comparisons_under_the_mnist_table_quote_the_rows() -> None:
    from report import compare
    from report.summary import PAPER_MAD, PAPER_UNDEFENDED, PAPER_VICTIMS

    text = _text()
    pair = _pair("mnist-lenet", "knockoff")
    members = list(pair.values())
    noise = max(row["attacker_accuracy_std"] for row in members)
    rivals = ["reverse_sigmoid", "random_noise", "dp_sgd"]

    def at_equal(reference: str, x_key: str) -> dict[str, dict]:
        return {entry["label"]: entry for entry in compare.compare_at_equal(members, reference=reference, rivals=rivals, x_key=x_key)}

    def beats(entry: dict, rival: str) -> bool:
        return entry["attacker_accuracy"] < entry[rival] - noise

    def tied(entry: dict, rival: str) -> bool:
        return abs(entry["attacker_accuracy"] - entry[rival]) <= noise

    # At equal mean L1: MAD below both rivals beyond noise at every setting from 0.5 up, within noise of both at 0.1.
    mad_l1 = at_equal("mad", "l1_mean")
    ahead = [label for label, entry in mad_l1.items() if beats(entry, "reverse_sigmoid") and beats(entry, "random_noise")]
    assert ahead == [f"mad:epsilon={eps}" for eps in ("0.5", "0.7", "0.9", "1.0", "1.5")]
    assert tied(mad_l1["mad:epsilon=0.1"], "reverse_sigmoid") and tied(mad_l1["mad:epsilon=0.1"], "random_noise")
    assert f"At {len(ahead)} of its {len(mad_l1)} settings (ε 0.5 to 1.5) it leaves the attacker a lower accuracy" in text
    assert "at ε 0.1 all three are within noise" in text
    argmax_l1 = at_equal("mad_argmax", "l1_mean")
    assert compare.verdict(list(argmax_l1.values()), "reverse_sigmoid", margin=noise) == (3, 0, 0)
    assert compare.verdict(list(argmax_l1.values()), "random_noise", margin=noise) == (2, 0, 1)
    last = argmax_l1["mad_argmax:epsilon=1.5"]
    assert tied(last, "random_noise") and all(abs(100 * value - 45) < 2 for value in (last["attacker_accuracy"], last["random_noise"]))
    assert "MAD-argmax beats reverse sigmoid at all 3 of its settings, and random noise at 2 (at ε 1.5 both are near 45%" in text

    # At equal defender accuracy.
    argmax, strong_rs = pair["mad_argmax:epsilon=1.5"], pair["reverse_sigmoid:beta=1.0"]
    assert argmax["defender_loss"] == 0 and strong_rs["defender_loss"] == pytest.approx(1 / 20_000)
    cheap_rivals = [row for row in members if row["defense"] in rivals and row["defender_loss"] <= strong_rs["defender_loss"]]
    assert min(cheap_rivals, key=lambda row: row["attacker_accuracy"])["label"] == "reverse_sigmoid:beta=1.0"
    assert (f"at ε 1.5 leaves the attacker {_pct(argmax['attacker_accuracy'])}%, far below anything a rival reaches without losing "
            f"accuracy (reverse sigmoid β 1.0: {_pct(strong_rs['attacker_accuracy'])}%, at a loss of one test image in 20,000)") in text
    mad_loss = at_equal("mad", "defender_accuracy")
    assert not beats(mad_loss["mad:epsilon=0.5"], "reverse_sigmoid") and not tied(mad_loss["mad:epsilon=0.5"], "reverse_sigmoid")
    assert tied(mad_loss["mad:epsilon=0.7"], "reverse_sigmoid") and beats(mad_loss["mad:epsilon=0.9"], "reverse_sigmoid")
    eps = {value: pair[f"mad:epsilon={value}"] for value in ("0.5", "0.7", "0.9", "1.0")}
    assert (f"at ε 0.5 ({_pct(eps['0.5']['attacker_accuracy'])}%) reverse sigmoid β 1.0 does better ({_pct(strong_rs['attacker_accuracy'])}%). "
            f"MAD matches it at ε 0.7 ({_pct(eps['0.7']['attacker_accuracy'])}% at a {_pct(eps['0.7']['defender_loss'])}-point loss, within "
            f"noise) and beats it at ε 0.9 ({_pct(eps['0.9']['attacker_accuracy'])}% at a {_pct(eps['0.9']['defender_loss'], 2)}-point loss)") in text
    assert f"most answers flip (defender accuracy {_pct(eps['1.0']['defender_accuracy'])}%)" in text

    # Beside the paper.
    paper_mad, spread = PAPER_MAD["mnist-lenet", "knockoff"], eps["0.9"]["attacker_accuracy_std"]
    assert abs(100 * eps["0.9"]["attacker_accuracy"] - paper_mad) < 100 * spread
    assert f"(MAD at < 1 point of defender loss: Knockoff {PAPER_VICTIMS['mnist-lenet']} → {paper_mad})" in text
    assert (f"plain MAD at ε 0.9 gives {_pct(eps['0.9']['attacker_accuracy'])} ± {_pct(spread)} at a {_pct(eps['0.9']['defender_loss'], 2)}-point "
            f"loss, matching; MAD-argmax at ε 1.5 gives {_pct(argmax['attacker_accuracy'])} ± {_pct(argmax['attacker_accuracy_std'])} at no loss. "
            f"Our undefended Knockoff attacker reaches {_pct(pair['none']['attacker_accuracy'])} (paper {PAPER_UNDEFENDED['mnist-lenet', 'knockoff']})") in text

    # DP-SGD.
    dp = [pair[f"dp_sgd:noise_multiplier={noise_multiplier},max_grad_norm=1.0"] for noise_multiplier in ("0.5", "1.0", "2.0")]
    assert (f"reach {' / '.join(_pct(row['defender_accuracy']) for row in dp)}% test accuracy, and the Knockoff attacker follows them down "
            f"({' / '.join(_pct(row['attacker_accuracy']) for row in dp)}%)") in text
    mad_vs_dp = compare.verdict(list(mad_loss.values()), "dp_sgd", margin=noise)
    argmax_vs_dp = compare.verdict(list(at_equal("mad_argmax", "defender_accuracy").values()), "dp_sgd", margin=noise)
    assert mad_vs_dp[1] == 0 and argmax_vs_dp == (3, 0, 0)
    assert (f"At equal lost defender accuracy MAD beats DP-SGD at {mad_vs_dp[0]} of its {len(mad_loss)} settings (the other {mad_vs_dp[2]} "
            f"within noise) and MAD-argmax at all {argmax_vs_dp[0]}: at zero loss MAD-argmax ε 1.5 leaves the attacker "
            f"{_pct(argmax['attacker_accuracy'])}%, while DP-SGD already costs {_pct(min(row['defender_loss'] for row in dp))} points") in text
    dp_ahead_l1 = compare.verdict(list(mad_l1.values()), "dp_sgd", margin=noise)[1]
    assert f'At "equal mean L1" DP-SGD looks better than MAD at {dp_ahead_l1} settings' in text


def test_the_victim_trainings_of_the_mnist_grid_are_counted_from_the_rows() -> None:
    rows = _knockoff_rows()
    accuracies = rows["victim_accuracy"].tolist()
    first = accuracies[0]
    leading = next(index for index, value in enumerate(accuracies) if value != first)
    assert set(accuracies[leading:]) == {accuracies[leading]}
    assert (f"({100 * first:.2f}% for the first {leading} cells, {100 * accuracies[leading]:.2f}% for the rest; each row stores its "
            "victim's accuracy)") in _text()


def test_the_reading_of_the_reduced_grid_quotes_the_rows() -> None:
    from report.summary import PAPER_MAD, PAPER_UNDEFENDED

    text = _text()
    jacobian = [("mnist-lenet", "jbda"), ("mnist-lenet", "jb_self"), ("mnist-lenet", "jb_top3"),
                ("fashionmnist-lenet", "jbda"), ("fashionmnist-lenet", "jb_self"), ("fashionmnist-lenet", "jb_top3")]
    pairs = {key: _pair(*key) for key in jacobian}
    rivals = ("mad:epsilon=0.5", "mad_argmax:epsilon=1.5")
    strong = "reverse_sigmoid:beta=1.0"

    # The defender keeps its accuracy: at most 2 test images lost, none by MAD-argmax.
    lost = {label: round(10_000 * row["defender_loss"]) for pair in pairs.values() for label, row in pair.items()}
    assert max(lost.values()) == 2 and all(round(10_000 * pair["mad_argmax:epsilon=1.5"]["defender_loss"]) == 0 for pair in pairs.values())
    assert "(MAD ε 0.5 and reverse sigmoid lose at most 2 test images of 10,000)" in text

    # Reverse sigmoid lowest in all pairs but one; its margins over the MAD settings there; the exception.
    margins, exceptions = [], []
    for key, pair in pairs.items():
        others = [pair[label]["attacker_accuracy"] - pair[strong]["attacker_accuracy"] for label in rivals]
        (margins if min(others) > 0 else exceptions).append((key, others))
    assert [key for key, _ in exceptions] == [("fashionmnist-lenet", "jb_self")]
    spread = [value for _, others in margins for value in others]
    below = -min(exceptions[0][1])
    assert (f"in {len(margins)} of the {len(pairs)} (victim, attack) pairs, by {100 * min(spread):.0f} to {100 * max(spread):.0f} points over MAD "
            f"ε 0.5 and MAD-argmax ε 1.5; on Fashion-MNIST JB-self MAD-argmax is {_pct(below)} points lower (within noise)") in text
    l1 = [pair[strong]["l1_mean"] for pair in pairs.values()]
    assert f"(mean L1 {min(l1):.2f}-{max(l1):.2f} against 0.5 and 1.5)" in text

    # Fashion-MNIST Knockoff, two seeds.
    fashion = _pair("fashionmnist-lenet", "knockoff")
    settings = ("mad_argmax:epsilon=1.5", strong, "mad:epsilon=0.5")
    assert max(round(10_000 * fashion[label]["defender_loss"]) for label in settings) == 2
    means = [f"{_pct(fashion[label]['attacker_accuracy'])} ± {_pct(fashion[label]['attacker_accuracy_std'])}%" for label in settings]
    assert (f"MAD-argmax ε 1.5 leaves the attacker {means[0]}, reverse sigmoid β 1.0 {means[1]}, MAD ε 0.5 {means[2]}, "
            f"undefended {_pct(fashion['none']['attacker_accuracy'])}%") in text

    # MAD-argmax against the Jacobian attacks on MNIST, and against Knockoff.
    argmax_jb = [pairs["mnist-lenet", attack]["mad_argmax:epsilon=1.5"]["attacker_accuracy"] for attack in ("jbda", "jb_self", "jb_top3")]
    knockoff = _pair("mnist-lenet", "knockoff")
    assert (f"MAD-argmax is the weakest of the three against JB attacks on MNIST** ({_pct(min(argmax_jb))}-{_pct(max(argmax_jb))}%), unlike "
            f"against Knockoff ({_pct(knockoff['mad_argmax:epsilon=1.5']['attacker_accuracy'])}%)") in text

    # Beside the paper, undefended.
    def ahead(victim: str) -> list[float]:
        return [100 * pairs[victim, attack]["none"]["attacker_accuracy"] - PAPER_UNDEFENDED[victim, attack] for attack in ("jbda", "jb_self", "jb_top3")]

    mnist, fashion_ahead = ahead("mnist-lenet"), ahead("fashionmnist-lenet")
    assert (f"by {min(mnist):.1f}-{max(mnist):.1f} points on MNIST and {min(fashion_ahead):.1f}-{max(fashion_ahead):.1f} on Fashion-MNIST") in text
    assert (f"The Fashion-MNIST Knockoff attacker is weaker ({_pct(fashion['none']['attacker_accuracy'])} against "
            f"{PAPER_UNDEFENDED['fashionmnist-lenet', 'knockoff']})") in text

    # MAD on JB-top3 beside the paper.
    top3 = pairs["mnist-lenet", "jb_top3"]["mad:epsilon=0.5"]
    assert round(10_000 * top3["defender_loss"]) == 1
    assert (f"MAD on JB-top3 (MNIST): {PAPER_MAD['mnist-lenet', 'jb_top3']} there, {_pct(top3['attacker_accuracy'])} here** (ε 0.5, one test "
            "image of defender loss)") in text
    assert f"(defender accuracy {_pct(knockoff['mad:epsilon=1.0']['defender_accuracy'])}% under Knockoff)" in text
