"""Seed aggregation, the Pareto-front comparison at equal cost, and the report pieces."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from report.compare import (
    aggregate,
    best_at_cost,
    compare_at_equal,
    comparison_table,
    pair_table,
    summary_table,
    trainings_note,
    verdict,
    write_plots,
)


def _row(defense, label, seed, attacker, defender=0.99, l1=0.0):
    return {
        "victim": "v", "attack_name": "knockoff", "defense": defense, "label": label, "seed": seed, "defense_params": {},
        "victim_accuracy": 0.99, "defender_accuracy": defender, "attacker_accuracy": attacker, "fidelity": attacker,
        "l1_mean": l1, "queries_used": 100, "elapsed_s": 1.0,
    }


def test_aggregate_means_and_std_over_seeds_latest_row_wins():
    rows = [_row("mad", "m", 0, 0.5), _row("mad", "m", 1, 0.7), _row("mad", "m", 1, 0.9), _row("none", "none", 0, 0.95)]
    by_label = {r["label"]: r for r in aggregate(rows)}
    assert by_label["m"]["seeds"] == [0, 1] and by_label["m"]["n"] == 2
    assert math.isclose(by_label["m"]["attacker_accuracy"], 0.7)
    assert math.isclose(by_label["m"]["attacker_accuracy_std"], math.sqrt(0.08))
    assert math.isnan(by_label["none"]["attacker_accuracy_std"])


def test_best_at_cost_uses_the_pareto_front():
    points = [(0.0, 0.9), (1.0, 0.95), (1.0, 0.6), (2.0, 0.3), (3.0, 0.5)]
    assert best_at_cost(points, -0.1) is None
    assert best_at_cost(points, 0.0) == 0.9
    assert math.isclose(best_at_cost(points, 0.5), 0.75)
    assert math.isclose(best_at_cost(points, 1.5), 0.45)
    assert best_at_cost(points, 10.0) == 0.3


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 2), st.floats(0, 1)), min_size=1, max_size=12),
    st.floats(0, 2),
    st.floats(0, 2),
)
def test_best_at_cost_is_monotone_and_never_beats_a_cheaper_point(points, c1, c2):
    low, high = sorted((c1, c2))
    a_low, a_high = best_at_cost(points, low), best_at_cost(points, high)
    if a_low is not None:
        assert a_high is not None and a_high <= a_low + 1e-12
    if a_high is not None:
        assert a_high >= min(a for _, a in points) - 1e-12
        cheaper = [a for c, a in points if c <= high]
        assert a_high <= min(cheaper) + 1e-12


def test_compare_at_equal_l1_and_defender_accuracy():
    rows = aggregate(
        [
            _row("none", "none", 0, 0.95),
            _row("mad", "mad:epsilon=0.5", 0, 0.6, defender=0.98, l1=0.5),
            _row("reverse_sigmoid", "rs:1", 0, 0.9, defender=0.99, l1=1.0),
            _row("random_noise", "rn:1", 0, 0.8, defender=0.97, l1=1.0),
        ]
    )
    by_l1 = compare_at_equal(rows, reference="mad", rivals=["reverse_sigmoid", "random_noise"], x_key="l1_mean")
    (entry,) = by_l1
    assert math.isclose(entry["reverse_sigmoid"], 0.925) and math.isclose(entry["random_noise"], 0.875)
    by_acc = compare_at_equal(rows, reference="mad", rivals=["reverse_sigmoid", "random_noise"], x_key="defender_accuracy")
    (entry,) = by_acc
    assert entry["reverse_sigmoid"] == 0.9 and math.isclose(entry["random_noise"], 0.875)
    assert verdict(by_l1, "reverse_sigmoid") == (1, 0, 0)
    assert verdict(by_l1, "reverse_sigmoid", margin=0.5) == (0, 0, 1)
    table = comparison_table(by_l1, x_key="l1_mean", reference="mad", rivals=["reverse_sigmoid", "random_noise"])
    assert "| `mad:epsilon=0.5` | 0.500 | 60.0 | 92.5 | 87.5 |" in table
    assert "| v | knockoff | `rs:1` | 1 | 99.0 | 90.0 | 90.0 | 1.000 |" in summary_table(rows)
    two_seeds = aggregate([_row("mad", "m", 0, 0.5, l1=0.5), _row("mad", "m", 1, 0.7, l1=0.5)])
    assert "| v | knockoff | `m` | 2 | 99.0 | 60.0 ± 14.1 | 60.0 | 0.500 |" in summary_table(two_seeds)


def test_pair_table_shares_of_the_undefended_attacker_and_seed_spread():
    rows = aggregate(
        [_row("none", "none", 0, 0.8), _row("mad", "m", 0, 0.5, l1=0.5), _row("mad", "m", 1, 0.7, l1=0.5)]
        + [dict(_row("rs", "r", 0, 0.4, l1=1.0), query_l1_mean=0.9, elapsed_s=600.0)]
    )
    table = pair_table(rows).splitlines()
    assert table[0].startswith("| defense setting | seeds | victim acc | defender acc | attacker acc | attacker / undefended |")
    assert "| `none` | 1 | 99.00% | 99.00% | 80.00% | 100.0% | 80.00% | 0.000 | – | 100 | 0 min |" in table
    assert "| `m` | 2 | 99.00% | 99.00% | 60.00% ± 14.14 | 75.0% | 60.00% | 0.500 | – | 100 | 0 min |" in table
    assert "| `r` | 1 | 99.00% | 99.00% | 40.00% | 50.0% | 40.00% | 1.000 | 0.900 | 100 | 10 min |" in table
    without_none = pair_table([r for r in rows if r["defense"] != "none"])
    assert "| `r` | 1 | 99.00% | 99.00% | 40.00% | – |" in without_none


def test_write_plots_one_png_per_victim_attack(tmp_path):
    rows = aggregate([_row("none", "none", 0, 0.95), _row("mad", "m", 0, 0.5, l1=0.5)])
    rows += [dict(r, attack_name="jbda") for r in rows]
    paths = write_plots(rows, tmp_path)
    assert sorted(p.name for p in paths) == ["v-jbda.png", "v-knockoff.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_equal_defender_accuracy_compares_losses_across_two_trainings_of_a_victim():
    """A rival measured against a victim of 99.30% and a reference against a retrained one of 99.33%
    compare by what each defense costs its own victim, not by the raw defended accuracy."""
    old = {"victim_accuracy": 0.9929999709129333}
    new = {"victim_accuracy": 0.9933000206947327}
    rows = aggregate(
        [
            dict(_row("none", "none", 0, 0.98, defender=0.993), **old),
            dict(_row("reverse_sigmoid", "rs:1", 0, 0.83, defender=0.993, l1=1.7), **old),
            dict(_row("mad_argmax", "ma:1.5", 0, 0.44, defender=0.9933, l1=1.5), **new),
        ]
    )
    assert [r["defender_loss"] for r in rows] == [0.0, 0.0, 0.0]
    (entry,) = compare_at_equal(rows, reference="mad_argmax", rivals=["reverse_sigmoid"], x_key="defender_accuracy")
    assert entry["reverse_sigmoid"] == 0.83


def test_without_victim_accuracy_the_cost_is_minus_the_defender_accuracy():
    rows = aggregate(
        [
            {k: v for k, v in _row("none", "none", 0, 0.95).items() if k != "victim_accuracy"},
            {k: v for k, v in _row("mad", "m", 0, 0.6, defender=0.98).items() if k != "victim_accuracy"},
            {k: v for k, v in _row("reverse_sigmoid", "rs", 0, 0.9, defender=0.985).items() if k != "victim_accuracy"},
        ]
    )
    assert all(math.isnan(r["defender_loss"]) for r in rows)
    (entry,) = compare_at_equal(rows, reference="mad", rivals=["reverse_sigmoid"], x_key="defender_accuracy")
    assert entry["reverse_sigmoid"] == 0.9


def test_trainings_note_only_when_a_pair_mixes_trainings_of_its_victim():
    one = aggregate([_row("none", "none", 0, 0.8), _row("mad", "m", 0, 0.5, l1=0.5)])
    assert trainings_note(one) is None
    mixed = aggregate(
        [
            dict(_row("none", "none", 0, 0.8), victim_accuracy=0.861),
            dict(_row("mad", "m", 0, 0.5, l1=0.5), victim_accuracy=0.8572),
            dict(_row("rs", "r", 0, 0.4, l1=1.0), victim_accuracy=0.8572),
        ]
    )
    note = trainings_note(mixed)
    assert note.startswith("These rows attack 2 trainings of the victim (victim acc 86.10% (1 setting), 85.72% (2 settings)).")
    assert "own defender loss" in note
