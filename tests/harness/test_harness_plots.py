"""Trade-off plot axes: near-equal defender accuracies keep a readable window."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from stealguard.harness.plots import nudges, plot_tradeoff, point_note, strength, x_limits


def test_points_one_test_image_apart_get_a_five_point_window():
    low, high = x_limits([0.9932, 0.9933, math.nan], 0.05)
    assert math.isclose(high - low, 0.05) and math.isclose(high, 0.9933 + 0.0025)


def test_a_spread_just_under_the_span_stays_inside():
    low, high = x_limits([0.0, 0.049], 0.05)
    assert low < 0.0 and high > 0.049


def test_spread_points_keep_matplotlibs_limits():
    assert x_limits([0.0, 0.5, 0.99], 0.05) is None
    assert x_limits([], 0.05) is None and x_limits([math.nan], 0.05) is None


@given(st.lists(st.floats(0, 1), min_size=1, max_size=20), st.floats(0.001, 0.5))
def test_every_point_lies_inside_the_window(values, span):
    limits = x_limits(values, span)
    if limits is None:
        assert max(values) - min(values) >= span
    else:
        assert limits[0] < min(values) and max(values) < limits[1] and limits[1] - limits[0] >= span * (1 - 1e-9)


def test_settings_are_ordered_by_strength_and_labelled_with_their_parameters():
    rows = [{"defense": "mad", "label": f"mad:epsilon={e}"} for e in (1.5, 0.1, 0.5)]
    assert [r["label"] for r in sorted(rows, key=strength)] == ["mad:epsilon=0.1", "mad:epsilon=0.5", "mad:epsilon=1.5"]
    assert point_note({"defense": "dcp", "defense_label": "dcp:tau=0.99,beta=1.0"}) == "τ=0.99 β=1.0"
    assert point_note({"defense": "label_only"}) == "" and strength({"defense": "dcp", "label": "dcp"}) == ()


def test_markers_at_one_x_are_spread_around_it():
    assert nudges([0.9, 0.9, 0.8, 0.90001]) == [-4.0, 0.0, 0.0, 4.0]
    assert nudges([0.1, math.nan]) == [0.0, 0.0]


def test_the_plot_takes_report_and_sweep_rows(tmp_path):
    rows = [
        {"defense": "none", "label": "none", "defender_accuracy": 0.9, "attacker_accuracy": 0.8, "l1_mean": 0.0},
        {"defense": "mad", "defense_label": "mad:epsilon=1.0", "defender_accuracy": 0.9, "attacker_accuracy": 0.5, "l1_mean": 1.0},
        {"defense": "mad", "defense_label": "mad:epsilon=0.5", "defender_accuracy": 0.9, "attacker_accuracy": 0.6, "l1_mean": 0.5},
    ]
    assert plot_tradeoff(rows, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
