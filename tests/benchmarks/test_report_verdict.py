"""The adaptive verdict's statistics and tables (benchmarks/report/verdict.py) on hand-made cells."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from scipy import stats

from stealguard.harness.run_table import RunTable
from stealguard.runspec import DPVariant

from _rows import DIGITS, result
from report import verdict
from report.names import Names


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"epochs": 10}, ("naive", "")),
        ({"epochs": 10, "train_on": "argmax"}, ("argmax", "")),
        ({"epochs": 10, "repeat": 4}, ("repeat", "")),
        ({"epochs": 10, "repeat": 1}, ("naive", "")),
        ({"invert": "mad"}, ("invert-estimated", "mad")),
        ({"invert": "mad:epsilon=0.5"}, ("invert-known", "mad:epsilon=0.5")),
        ({"invert": "dcp:tau=0.8;beta=0.3"}, ("invert-known", "dcp:tau=0.8;beta=0.3")),
        ({"invert": "reverse_sigmoid:branch=auto"}, ("invert-estimated", "reverse_sigmoid:branch=auto")),
        ({"invert": "dcp:branch=inner;beta=0.3"}, ("invert-known", "dcp:branch=inner;beta=0.3")),
        ({"invert": "mad", "train_on": "argmax"}, ("invert-estimated-argmax", "mad")),
        ({"invert": "mad_keyed:epsilon=1.0", "train_on": "argmax"}, ("invert-known-argmax", "mad_keyed:epsilon=1.0")),
    ],
)
def test_attacker_kind_is_read_from_the_attack_parameters(params: dict, expected: tuple[str, str]) -> None:
    assert verdict.attacker_of(params) == expected


def test_families_split_on_variant_and_space() -> None:
    assert verdict.family_of("dcp", {"variant": "authors", "beta": 0.5}) == "dcp (authors)"
    assert verdict.family_of("random_noise", {"space": "logit", "epsilon": 8.0}) == "random_noise (logit)"
    assert verdict.family_of("mad", {"epsilon": 0.5}) == "mad"


def test_t_interval_is_the_student_t_interval() -> None:
    mean, half = verdict.t_interval([0.80, 0.82, 0.84])
    assert mean == pytest.approx(0.82)
    assert half == pytest.approx(4.302652729911275 * 0.02 / math.sqrt(3))
    assert math.isnan(verdict.t_interval([0.5])[1])
    assert verdict.t_interval([0.5, 0.5, 0.5]) == (0.5, 0.0)


def test_welch_interval_matches_scipys_welch_test() -> None:
    a, b = [0.86, 0.85, 0.87], [0.60, 0.66, 0.71, 0.64]
    diff, half = verdict.welch_interval(a, b)
    low, high = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx((low + high) / 2)
    assert half == pytest.approx((high - low) / 2)
    assert verdict.welch_interval([0.5, 0.5], [0.4, 0.4]) == pytest.approx((0.1, 0.0))
    assert math.isnan(verdict.welch_interval([0.5], [0.4, 0.41])[1])


def cell(defense: str, label: str, attacker: str, seed: int, defender: float, attacker_accuracy: float, family: str | None = None) -> dict:
    return {
        "block": "b", "victim": "v", "attack": "knockoff", "family": family or defense, "defense": defense, "defense_label": label,
        "defense_params": "{}", "attacker": attacker, "inverter": "", "seed": seed, "test_size": 10000,
        "defender_accuracy": defender, "attacker_accuracy": attacker_accuracy, "fidelity": attacker_accuracy, "l1_mean": 0.1, "key": f"{label}{attacker}{seed}",
    }


@pytest.fixture
def cells() -> pd.DataFrame:
    rows = []
    for seed, acc in enumerate([0.86, 0.85, 0.87]):
        rows.append(cell("none", "none", "naive", seed, 0.99, acc))
        # mad:epsilon=0.5 costs nothing; the inverter undoes it.
        rows.append(cell("mad", "mad:epsilon=0.5", "naive", seed, 0.99, acc - 0.20))
        rows.append(cell("mad", "mad:epsilon=0.5", "invert-estimated", seed, 0.99, acc - 0.01))
        # mad:epsilon=0.1 costs nothing, protects a little against both.
        rows.append(cell("mad", "mad:epsilon=0.1", "naive", seed, 0.99, acc - 0.05))
        rows.append(cell("mad", "mad:epsilon=0.1", "invert-estimated", seed, 0.99, acc - 0.04))
        # mad:epsilon=1.0 protects most but costs 90 points.
        rows.append(cell("mad", "mad:epsilon=1.0", "naive", seed, 0.09, acc - 0.6))
        # adaptive misinformation costs 2 points at its cheapest: nothing qualifies.
        rows.append(cell("adaptive_misinformation", "adaptive_misinformation:tau=0.5", "naive", seed, 0.97, acc - 0.3))
        # A randomised defense whose defended accuracy varies with the seed: within 1 point plus its spread.
        rows.append(cell("random_noise", "random_noise:epsilon=1.0", "naive", seed, 0.985 - 0.004 * seed, acc - 0.1))
    return pd.DataFrame(rows)


def test_headline_picks_the_qualifying_setting_that_best_resists_the_best_attacker(cells: pd.DataFrame) -> None:
    rows = {row["family"]: row for row in verdict.headline(cells, "b")}
    mad = rows["mad"]
    assert mad["defense_label"] == "mad:epsilon=0.1"
    assert mad["best"] == "invert-estimated"
    assert mad["best_protection"][0] == pytest.approx(0.04)
    assert not rows["adaptive_misinformation"]["qualifies"]
    noise = rows["random_noise"]
    assert noise["defender_loss"] == pytest.approx(0.99 - 0.981)
    assert noise["tolerance"] == pytest.approx(verdict.t_interval([0.985, 0.981, 0.977])[1])
    assert noise["qualifies"]


def test_headline_intervals_are_simultaneous_over_the_qualifying_settings_chosen_from(cells: pd.DataFrame) -> None:
    rows = {row["family"]: row for row in verdict.headline(cells, "b")}
    mad, noise = rows["mad"], rows["random_noise"]
    assert (mad["chosen_from"], noise["chosen_from"], rows["adaptive_misinformation"]["chosen_from"]) == (2, 1, 0)
    undefended = [0.86, 0.85, 0.87]
    inverted, naive = [a - 0.04 for a in undefended], [a - 0.05 for a in undefended]
    for key, values in (("best_protection", inverted), ("naive_protection", naive)):
        bonferroni = stats.ttest_ind(undefended, values, equal_var=False).confidence_interval(1 - 0.05 / 2)
        assert mad[key] == pytest.approx(((bonferroni.high + bonferroni.low) / 2, (bonferroni.high - bonferroni.low) / 2))
    own = next(s for s in verdict.settings(cells, "b") if s["defense_label"] == "mad:epsilon=0.1")["best_protection"]
    assert mad["setting_protection"] == own and mad["best_protection"][1] > own[1]
    assert noise["best_protection"] == next(
        s for s in verdict.settings(cells, "b") if s["family"] == "random_noise")["best_protection"]


def test_best_attacker_is_the_strongest_run_at_the_setting(cells: pd.DataFrame) -> None:
    setting = next(s for s in verdict.settings(cells, "b") if s["defense_label"] == "mad:epsilon=0.5")
    assert setting["best"] == "invert-estimated"
    undefended = [0.86, 0.85, 0.87]
    welch = stats.ttest_ind(undefended, [a - 0.20 for a in undefended], equal_var=False).confidence_interval(0.95)
    assert setting["naive_protection"] == pytest.approx((0.20, (welch.high - welch.low) / 2))
    assert setting["best_protection"][0] == pytest.approx(0.01)


def test_tables_show_every_setting_and_say_when_nothing_qualifies(cells: pd.DataFrame) -> None:
    headline = verdict.headline_table(cells, "b")
    assert "| mad | `mad:epsilon=0.1` (of 2) | 0.00 | 81.00 ± 2.48 | invert-estimated: 82.00 ± 2.48 | 5.00 ± 2.85 | 4.00 ± 2.85 |" in headline
    assert "| adaptive_misinformation | none qualifies (cheapest: `adaptive_misinformation:tau=0.5`) | 2.00 |" in headline
    table = verdict.settings_table(cells, "b")
    assert "| `mad:epsilon=0.5` | 99.00 | 0.00 | 66.00 ± 2.48 | – | – | 85.00 ± 2.48 | – | – | – | invert-estimated | 1.00 ± 2.27 |" in table
    assert table.count("\n") == 1 + 1 + 5


def test_protection_left_is_measured_from_the_best_attacker_against_the_undefended_victim(cells: pd.DataFrame) -> None:
    assert verdict.baseline_line(cells, "b").endswith("reaches 86.00 ± 2.48% (3 seeds).")
    labels = pd.DataFrame(
        [cell("none", "none", "argmax", seed, 0.99, acc) for seed, acc in enumerate([0.90, 0.92])]
        + [cell("mad", "mad:epsilon=0.5", "argmax", seed, 0.99, acc) for seed, acc in enumerate([0.60, 0.62, 0.61])]
    )
    both = pd.concat([cells, labels])
    line = verdict.baseline_line(both, "b")
    assert "reaches 86.00 ± 2.48% (3 seeds), the argmax-only attacker 91.00 ± 12.71% (2 seeds); protection left is measured" in line
    assert "from the strongest of them, argmax, 5.00 ± " in line and " points ahead of naive (within noise) (" in line
    margin = verdict.runner_up_margin(verdict.undefended_attackers(both, "b"))
    assert margin[:2] == ("argmax", "naive") and margin[2] == pytest.approx(0.05) and margin[3] > margin[2]
    assert verdict.runner_up_margin(verdict.undefended_attackers(cells, "b")) is None
    setting = next(s for s in verdict.settings(both, "b") if s["defense_label"] == "mad:epsilon=0.5")
    assert setting["best"] == "invert-estimated"
    assert setting["best_protection"][0] == pytest.approx(0.91 - 0.85)
    assert setting["naive_protection"][0] == pytest.approx(0.20)
    table = verdict.settings_table(both, "b")
    assert "| `none` | 99.00 | 0.00 | 86.00 ± 2.48 | 91.00 ± 12.71 (n=2) | – | – | – | – | – | argmax | 0 |" in table
    # A setting no label-trained attacker met is measured from the undefended naive attacker, and says so.
    noise = next(s for s in verdict.settings(both, "b") if s["defense_label"] == "random_noise:epsilon=1.0")
    assert noise["baseline"] == "naive" and noise["best_protection"][0] == pytest.approx(0.10)
    assert "| naive | 10.00 ± 2.27 (from undefended naive: no attacker training on labels met it) |" in table
    assert setting["baseline"] == "argmax"


def test_one_seed_is_marked_and_a_missing_baseline_is_an_error(cells: pd.DataFrame) -> None:
    one = cells[cells["seed"] == 0]
    assert "(n=1)" in verdict.headline_table(one, "b")
    with pytest.raises(ValueError, match="no undefended naive cell"):
        verdict.headline(cells[cells["defense"] != "none"], "b")


def test_cell_frame_reads_grid_tables(tmp_path) -> None:
    path = tmp_path / "grid-digits" / "results.csv"
    table = RunTable(path)
    table.append(result("none", seed=1, defender_accuracy=0.9, attacker_accuracy=0.8, fidelity=0.8, l1_mean=0.0, test_size=100))
    table.append(result("none", seed=0, defender_accuracy=0.9, attacker_accuracy=0.7, fidelity=0.7, l1_mean=0.0, test_size=100))
    table.append(result("mad:epsilon=0.5", attack="knockoff:epochs=2,invert=mad", defender_accuracy=0.9, attacker_accuracy=0.75,
                        fidelity=0.7, l1_mean=0.5, test_size=100))
    dp = DIGITS.model_copy(update={"variant": DPVariant(noise_multiplier=1.0)})
    table.append(result("none", victim=dp, defender_accuracy=0.8, attacker_accuracy=0.6, fidelity=0.6, l1_mean=0.1, test_size=100))
    frame = verdict.cell_frame([path], Names())
    assert list(frame.columns) == list(verdict.CELL_COLUMNS)
    assert list(frame["defense"]) == ["none", "none", "mad", "dp_sgd"]
    assert list(frame["seed"][:2]) == [0, 1]
    assert set(frame["block"]) == {"digits"}
    assert frame.loc[2, "attacker"] == "invert-estimated"
    assert json.loads(frame.loc[3, "defense_params"]) == {"max_grad_norm": 1.0, "noise_multiplier": 1.0}
    assert frame.loc[3, "victim"] == frame.loc[0, "victim"]


def test_planned_attackers_without_results_are_marked_pending(cells: pd.DataFrame) -> None:
    planned = {("b", "mad:epsilon=0.1"): {"naive", "invert-estimated", "invert-known"}, ("b", "mad:epsilon=0.5"): {"naive", "argmax"}}
    assert "invert-estimated: 82.00 ± 2.48 (not yet run: invert-known)" in verdict.headline_table(cells, "b", planned)
    table = verdict.settings_table(cells, "b", planned)
    assert "| `mad:epsilon=0.5` | 99.00 | 0.00 | 66.00 ± 2.48 | pending | – | 85.00 ± 2.48 | – |" in table
    assert "pending" not in verdict.settings_table(cells, "b")


def test_planned_attackers_are_read_from_a_grid_config() -> None:
    from stealguard.harness.ray_grid import GridConfig

    config = GridConfig.model_validate({
        "name": "t", "budget": 100, "defenses": ["none", "mad:epsilon=0.5"],
        "victim": [{"name": "v", "dataset": "digits", "arch": "mlp"}],
        "attack": [
            {"name": "naive", "attack": "knockoff", "params": {"epochs": 1}},
            {"name": "inv", "attack": "knockoff", "params": {"epochs": 1, "invert": "mad"}, "defenses": ["mad:epsilon=0.5"]},
        ],
    })
    assert verdict.planned_attackers({"b": config}) == {("b", "none"): {"naive"}, ("b", "mad:epsilon=0.5"): {"naive", "invert-estimated"}}


def test_grid_progress_counts_each_blocks_planned_cells_with_a_result() -> None:
    from stealguard.harness.ray_grid import GridConfig

    config = GridConfig.model_validate({
        "name": "t", "budget": 100, "seeds": [0, 1], "defenses": ["none", "mad:epsilon=0.5"],
        "victim": [{"name": "v", "dataset": "digits", "arch": "mlp"}],
        "attack": [{"name": "naive", "attack": "knockoff", "params": {"epochs": 1}}],
    })
    keys = [spec.key() for spec in config.specs()]
    some = pd.DataFrame({"block": ["b", "b", "other"], "key": [keys[0], "not-planned", keys[1]]})
    assert verdict.grid_progress({"b": config}, some) == (
        "Grid cells with a result: `b` 1 of 4 (not complete: until it is, these tables are not a verdict)."
    )
    every = pd.DataFrame({"block": ["b"] * 4, "key": keys})
    assert verdict.grid_progress({"b": config, "c": config}, every) == "Grid cells with a result: `b` 4 of 4, `c` 0 of 4 (not complete: until it is, these tables are not a verdict)."
    assert verdict.grid_progress({"b": config}, every) == "Grid cells with a result: `b` 4 of 4 (complete)."


def test_readout_sorts_the_headline_by_whether_its_interval_clears_zero(cells: pd.DataFrame) -> None:
    text = verdict.readout(cells, "b")
    lines = text.splitlines()
    assert lines[0] == (
        "- Protection left against the best attacker, its whole interval above zero (95%, simultaneous over the "
        "settings chosen from): mad 4.00 ± 2.85 (`mad:epsilon=0.1`, best attacker invert-estimated); "
        "random_noise 10.00 ± 2.27 (`random_noise:epsilon=1.0`, best attacker naive)."
    )
    assert lines[1] == "- Interval reaching zero or below (no protection shown): none."
    assert lines[2] == "- No setting within one point of defender loss: adaptive_misinformation (2.00 pts at its cheapest)."
    one_seed = verdict.readout(cells[cells["seed"] == 0], "b").splitlines()
    assert one_seed[0].endswith("chosen from): none.") and one_seed[1].endswith("(no protection shown): none.")
    assert one_seed[2].startswith("- No interval yet (one seed of the best attacker or of its undefended baseline): mad 4.00 ± ? (")
    pending = verdict.readout(cells, "b", {("b", "mad:epsilon=0.1"): {"naive", "invert-estimated", "argmax"}})
    assert "(`mad:epsilon=0.1`, best attacker invert-estimated; not yet run: argmax)" in pending


def test_labels_pass_through_where_the_argmax_replica_is_the_undefended_one(cells: pd.DataFrame) -> None:
    labels = []
    for seed, acc in enumerate([0.90, 0.92, 0.91]):
        labels.append(cell("none", "none", "argmax", seed, 0.99, acc))
        labels.append(cell("mad", "mad:epsilon=0.5", "argmax", seed, 0.99, acc - 0.3))
        labels.append(cell("mad_argmax", "mad_argmax:epsilon=0.5", "argmax", seed, 0.99, acc))
        labels.append(cell("mad_argmax", "mad_argmax:epsilon=1.0", "argmax", seed, 0.99, acc if seed else acc - 0.001))
    both = pd.concat([cells, pd.DataFrame(labels)])
    assert verdict.labels_pass_through(both, "b") == {"mad": (0, 1), "mad_argmax": (1, 2)}
    assert verdict.readout(both, "b").splitlines()[-1].endswith("per defense: mad_argmax (1 of 2); at none of mad.")
    assert verdict.labels_pass_through(cells, "b") == {}


def adam_block(cells: pd.DataFrame, *, argmax: bool) -> pd.DataFrame:
    """``cells`` and a block ``a`` (another learner): undefended naive (95 ± 1%) and, with ``argmax``, an
    argmax-only attacker 8 points lower; against ``mad:epsilon=0.5`` the naive 25 and the inverting attacker
    3 points lower."""
    adam = []
    for seed, acc in enumerate([0.95, 0.94, 0.96]):
        adam.append({**cell("none", "none", "naive", seed, 0.99, acc), "block": "a"})
        if argmax:
            adam.append({**cell("none", "none", "argmax", seed, 0.99, acc - 0.08), "block": "a"})
        adam.append({**cell("mad", "mad:epsilon=0.5", "naive", seed, 0.99, acc - 0.25), "block": "a"})
        adam.append({**cell("mad", "mad:epsilon=0.5", "invert-estimated", seed, 0.99, acc - 0.03), "block": "a"})
    return pd.concat([cells, pd.DataFrame(adam)])


def test_across_learners_takes_the_best_attacker_over_every_block(cells: pd.DataFrame) -> None:
    both = adam_block(cells, argmax=True)
    (row,) = verdict.across_learners(both, {"b": "sgd", "a": "adam"})
    assert row["defense_label"] == "mad:epsilon=0.5" and row["qualifies"]
    assert row["baseline"] == "naive@adam" and row["best"] == "invert-estimated@adam"
    assert row["best_protection"] == pytest.approx(verdict.welch_interval([0.95, 0.94, 0.96], [0.92, 0.91, 0.93]))
    table = verdict.across_learners_table(both, {"b": "sgd", "a": "adam"})
    assert ("| mad | `mad:epsilon=0.5` | 0.00 | naive@adam: 95.00 ± 2.48 | invert-estimated@adam: 92.00 ± 2.48 "
            "| 3.00 ± 2.27 |") in table
    pending = verdict.across_learners_table(both, {"b": "sgd", "a": "adam"}, {("a", "mad:epsilon=0.5"): {"naive", "argmax"}})
    assert "invert-estimated@adam: 92.00 ± 2.48 (not yet run: argmax@adam) |" in pending
    assert verdict.across_learners_table(cells, {"b": "sgd", "a": "adam"}).startswith("No defense setting")
    readout = verdict.across_learners_readout(both, {"b": "sgd", "a": "adam"}).splitlines()
    assert readout[0] == ("- Undefended, the strongest attacker over the learners is naive@adam (95.00 ± 2.48%), "
                          "8.00 ± 2.27 points ahead of argmax@adam (beyond noise): the protections are measured from it.")
    assert readout[1].endswith("above zero: mad 3.00 ± 2.27 (`mad:epsilon=0.5`, best attacker invert-estimated@adam).")
    assert readout[2].endswith("(no protection shown): none.") and len(readout) == 3
    waiting = verdict.across_learners_readout(both, {"b": "sgd", "a": "adam"}, {("a", "mad:epsilon=0.5"): {"naive", "argmax"}})
    assert "(`mad:epsilon=0.5`, best attacker invert-estimated@adam; not yet run: argmax@adam)" in waiting
    inverted_back = both[~((both["block"] == "a") & (both["attacker"] == "invert-estimated"))]
    inverted_back = pd.concat([inverted_back, pd.DataFrame(
        [{**cell("mad", "mad:epsilon=0.5", "invert-estimated", seed, 0.99, acc), "block": "a"} for seed, acc in enumerate([0.93, 0.97, 0.95])])])
    assert verdict.across_learners_readout(inverted_back, {"b": "sgd", "a": "adam"}).splitlines()[1].endswith("above zero: none.")
    one_seed = verdict.across_learners_readout(both[both["seed"] == 0], {"b": "sgd", "a": "adam"}).splitlines()
    assert one_seed[0].endswith("8.00 ± ? points ahead of argmax@adam (one seed: no interval): the protections are measured from it.")
    assert one_seed[3].startswith("- No interval yet (one seed of the best attacker or of its undefended baseline): mad 3.00 ± ? (")


def test_across_learners_readout_says_when_the_blocks_victims_differ(cells: pd.DataFrame) -> None:
    both = adam_block(cells, argmax=True)
    assert verdict.victim_accuracies(both, {"b": "sgd", "a": "adam"}) == {"b": 0.99, "a": 0.99}
    other = both.copy()
    other.loc[other["block"] == "a", "defender_accuracy"] = 0.985
    assert verdict.victim_accuracies(other, {"b": "sgd", "a": "adam"}) == {"b": 0.99, "a": 0.985}
    lines = verdict.across_learners_readout(other, {"b": "sgd", "a": "adam"}).splitlines()
    assert lines[1] == ("- The blocks' victims differ: `b` 99.00%, `a` 98.50% test accuracy (each block trained its victim "
                        "from the same spec, and training did not reproduce it bit for bit), so the comparison across "
                        "blocks is between attacks on two victims of one recipe.")
    assert not any("victims differ" in line for line in verdict.across_learners_readout(both, {"b": "sgd", "a": "adam"}).splitlines())


def test_across_learners_measures_from_an_undefended_attacker_that_trains_the_same_way(cells: pd.DataFrame) -> None:
    rows = []
    for seed, acc in enumerate([0.95, 0.94, 0.96]):
        rows.append({**cell("none", "none", "naive", seed, 0.99, acc), "block": "a"})
        rows.append({**cell("none", "none", "argmax", seed, 0.99, acc + 0.02), "block": "a"})
        rows.append({**cell("mad", "mad:epsilon=0.5", "naive", seed, 0.99, acc - 0.25), "block": "a"})
    both = pd.concat([cells, pd.DataFrame(rows)])
    (row,) = verdict.across_learners(both, {"b": "sgd", "a": "adam"})
    # argmax@adam is stronger undefended, but no attacker training on labels met the setting.
    assert row["baseline"] == "naive@adam" and row["best"] == "invert-estimated@sgd"
    tied = pd.concat([cells, pd.DataFrame([{**r, "block": "a"} for r in cells.to_dict("records")
                                           if r["defense_label"] in ("none", "mad:epsilon=0.5")])])
    (row,) = verdict.across_learners(tied, {"b": "sgd", "a": "adam"})
    assert row["baseline"] == "naive@sgd" and row["best"] == "invert-estimated@sgd"


def test_a_view_of_one_block_chooses_as_the_block_headline_does(cells: pd.DataFrame) -> None:
    view = verdict.view_headline(cells, {"b": "sgd"})
    for row in verdict.headline(cells, "b"):
        mine = view[row["family"]]
        assert mine["defense_label"] == row["defense_label"] and mine["chosen_from"] == row["chosen_from"]
        if row["chosen_from"]:
            assert mine["best_protection"] == pytest.approx(row["best_protection"])
    assert view["mad"]["chosen_from"] == 2 and view["mad"]["defense_label"] == "mad:epsilon=0.1"
    assert view["adaptive_misinformation"]["chosen_from"] == 0


def test_the_views_table_puts_every_view_side_by_side(cells: pd.DataFrame) -> None:
    both = adam_block(cells, argmax=False)
    table = verdict.views_table(both, {"both": {"b": "sgd", "a": "adam"}, "b alone": {"b": "sgd"}, "later": {"z": "sgd"}})
    lines = table.splitlines()
    assert lines[0] == "| defense | both | b alone | later |"
    assert lines[2] == "| undefended (best attacker, accuracy %) | naive@adam: 95.00 ± 2.48 | naive@sgd: 86.00 ± 2.48 | pending |"
    alone = verdict.view_headline(both, {"b": "sgd"})["mad"]
    assert lines[3] == (
        f"| mad | 3.00 ± 2.27 (`mad:epsilon=0.5`; invert-estimated@adam) | {verdict.pct(*alone['best_protection'])} "
        "(`mad:epsilon=0.1`, of 2; invert-estimated@sgd) | pending |"
    )
    assert "| adaptive_misinformation | not run | none qualifies (2.00 pts at `adaptive_misinformation:tau=0.5`) | pending |" in lines
