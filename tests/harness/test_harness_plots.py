"""Trade-off plot axes: near-equal defender accuracies keep a readable window."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from stealguard.harness.plots import x_limits


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
