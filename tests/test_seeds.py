"""Seed streams: the defender's seed is derived from, never equal to, the attacker's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stealguard.seeds import SEED_BITS, defense_seed_for, derive_seed


@given(st.integers(min_value=0, max_value=2**40))
def test_derived_seed_is_stable_in_range_and_not_the_seed(seed: int) -> None:
    derived = derive_seed(seed, "defense")
    assert derived == derive_seed(seed, "defense")
    assert 0 <= derived < 2**SEED_BITS
    assert derived != seed or seed >= 2**SEED_BITS
    assert derived != derive_seed(seed, "attack")


def test_derived_seeds_of_small_run_seeds_do_not_collide_with_run_seeds() -> None:
    run_seeds = set(range(1000))
    assert not run_seeds & {derive_seed(seed, "defense") for seed in run_seeds}


def test_defense_seed_for_prefers_the_given_seed() -> None:
    assert defense_seed_for(3, 3) == 3
    assert defense_seed_for(3) == derive_seed(3, "defense")


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: derive_seed(-1, "defense"), ValueError, "seed"),
        (lambda: derive_seed(1.5, "defense"), TypeError, "seed"),
        (lambda: derive_seed(1, ""), TypeError, "stream"),
        (lambda: defense_seed_for(0, -2), ValueError, "defense_seed"),
    ],
)
def test_bad_seeds_are_refused(call, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()
