"""random_noise: budget in both norms and modes, consistent answers, averaging, the input hash."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import stealguard.defenses as D
from stealguard.defenses.random_noise import hashed_normal, input_keys
from stealguard.defenses.simplex import MAX_DISTANCE, distance

from .conftest import make_queries, posterior_batches


def interior_rows(rows: int, num_classes: int, seed: int = 0) -> torch.Tensor:
    """float64 rows with every entry >= 0.5 / K (far enough from the boundary for small budgets)."""
    gen = torch.Generator().manual_seed(seed)
    raw = 1 + torch.rand(rows, num_classes, generator=gen, dtype=torch.float64)
    return raw / raw.sum(dim=1, keepdim=True)


@settings(max_examples=60, deadline=None)
@given(
    probs=posterior_batches(min_rows=1),
    norm=st.sampled_from(["l1", "l2"]),
    fraction=st.floats(1e-3, 1.0),
    consistent=st.booleans(),
    seed=st.integers(0, 2**63 - 1),
)
def test_within_budget_on_simplex(probs, norm, fraction, consistent, seed):
    epsilon = fraction * MAX_DISTANCE[norm]
    defense = D.create("random_noise", epsilon=epsilon, norm=norm, consistent=consistent, seed=seed)
    out = defense(make_queries(probs.shape[0]), probs)
    assert (out >= 0).all() and torch.isfinite(out).all()
    assert ((out.double().sum(dim=1) - 1).abs() <= 1e-6).all()
    assert (distance(out.double(), probs.double(), norm) <= epsilon + 1e-6).all()
    assert defense.budget() == (norm, epsilon)


@settings(max_examples=50, deadline=None)
@given(
    probs=posterior_batches(min_rows=1, dtypes=(torch.float64,)),
    norm=st.sampled_from(["l1", "l2"]),
    fraction=st.floats(1e-3, 0.99),
    consistent=st.booleans(),
)
def test_whole_budget_spent_on_every_kind_of_row(probs, norm, fraction, consistent):
    """The path along +z or -z ends on disjoint faces, so one of them reaches 1 (l1) or sqrt(2)/2 (l2)."""
    epsilon = fraction * {"l1": 1.0, "l2": 0.5**0.5}[norm]
    out = D.create("random_noise", epsilon=epsilon, norm=norm, consistent=consistent)(make_queries(len(probs)), probs)
    torch.testing.assert_close(distance(out, probs, norm), torch.full((len(probs),), epsilon, dtype=torch.float64))


@pytest.mark.parametrize("consistent", [False, True])
@pytest.mark.parametrize("norm,epsilon", [("l1", 0.02), ("l2", 0.01)])
def test_interior_rows_spend_the_whole_budget(norm, epsilon, consistent):
    probs = interior_rows(20, 10)
    out = D.create("random_noise", epsilon=epsilon, norm=norm, consistent=consistent)(make_queries(20), probs)
    torch.testing.assert_close(distance(out, probs, norm), torch.full((20,), epsilon, dtype=torch.float64))


@pytest.mark.parametrize("consistent", [False, True])
def test_one_hot_rows_get_the_whole_budget(consistent):
    probs = torch.eye(6, dtype=torch.float64).repeat(3, 1)
    out = D.create("random_noise", epsilon=0.3, consistent=consistent)(make_queries(18), probs)
    change = (out - probs).abs().sum(dim=1)
    torch.testing.assert_close(change, torch.full_like(change, 0.3))
    assert (out.argmax(dim=1) == probs.argmax(dim=1)).all()


def test_consistent_mode_repeats_answers_so_averaging_gains_nothing():
    probs = interior_rows(3, 10)
    x = make_queries(3)
    defense = D.create("random_noise", epsilon=0.1, consistent=True, seed=7)
    first = defense(x, probs)
    repeats = torch.stack([defense(x, probs) for _ in range(50)])
    assert torch.equal(repeats, first.expand_as(repeats))
    torch.testing.assert_close(repeats.mean(dim=0), first, rtol=0, atol=1e-15)
    # the same row answered inside another batch, at another position, by a fresh instance
    shuffled = D.create("random_noise", epsilon=0.1, consistent=True, seed=7)(
        torch.cat([make_queries(4, seed=9), x[2:3]]), torch.cat([interior_rows(4, 10, seed=5), probs[2:3]])
    )
    assert torch.equal(shuffled[4], first[2])


def test_consistent_mode_noise_depends_on_input_and_seed():
    probs = interior_rows(1, 10).expand(4, 10)
    x = make_queries(4)
    out = D.create("random_noise", epsilon=0.1, consistent=True, seed=7)(x, probs)
    assert len({tuple(row.tolist()) for row in out}) == 4
    same_x = D.create("random_noise", epsilon=0.1, consistent=True, seed=7)(x[:1].expand(4, -1), probs)
    assert torch.equal(same_x, out[:1].expand(4, -1))
    other_seed = D.create("random_noise", epsilon=0.1, consistent=True, seed=8)(x, probs)
    assert not torch.equal(other_seed, out)


def test_independent_mode_averaging_converges_toward_clean():
    probs = interior_rows(1, 10)
    x = make_queries(1)
    defense = D.create("random_noise", epsilon=0.05, consistent=False, seed=1)
    answers = torch.cat([defense(x, probs) for _ in range(400)])
    single_error = float((answers[0] - probs[0]).abs().sum())
    mean_error = float((answers.mean(dim=0) - probs[0]).abs().sum())
    assert mean_error < single_error / 5


def test_independent_mode_same_seed_same_sequence():
    probs = interior_rows(3, 5)
    x = make_queries(3)
    first, second = (D.create("random_noise", epsilon=0.1, seed=4) for _ in range(2))
    a1, a2 = first(x, probs), first(x, probs)
    assert not torch.equal(a1, a2)
    assert torch.equal(second(x, probs), a1) and torch.equal(second(x, probs), a2)


@pytest.mark.parametrize(
    "x",
    [
        torch.rand(5, 3, 4, 4),
        torch.rand(5, 7, dtype=torch.float64),
        torch.randint(0, 256, (5, 1, 3, 3), dtype=torch.uint8),
        torch.randint(0, 2, (5, 3), dtype=torch.bool),
        torch.rand(5),
    ],
    ids=["images", "float64", "uint8", "bool", "scalars"],
)
def test_input_keys_row_wise_and_layout_independent(x):
    keys = input_keys(x, seed=3)
    assert keys.shape == (5, 2) and keys.dtype == torch.int64
    assert ((keys >= 0) & (keys < 2**32)).all()
    assert torch.equal(torch.cat([input_keys(x[i : i + 1], seed=3) for i in range(5)]), keys)
    assert len({tuple(row.tolist()) for row in keys}) == 5 or x.dtype == torch.bool
    if x.dim() > 1:
        transposed = x.transpose(0, -1).contiguous().transpose(0, -1)
        assert not transposed.is_contiguous() or x.dim() == 2 and x.shape[1] == 1
        assert torch.equal(input_keys(transposed, seed=3), keys)
    assert not torch.equal(input_keys(x, seed=4), keys)


def test_input_keys_see_every_byte():
    x = torch.zeros(1, 10)
    base = input_keys(x, seed=0)
    for position in range(10):
        changed = x.clone()
        changed[0, position] = 1e-30
        assert not torch.equal(input_keys(changed, seed=0), base)
    assert not torch.equal(input_keys(torch.zeros(1, 11), seed=0), base)


def test_hashed_normal_is_standard_normal():
    keys = input_keys(torch.arange(2000, dtype=torch.float32).unsqueeze(1), seed=0)
    draws = hashed_normal(keys, 100)
    assert torch.equal(hashed_normal(keys[:7], 100), draws[:7])
    assert torch.equal(hashed_normal(keys, 50), draws[:, :50])
    flat = draws.flatten()
    assert abs(float(flat.mean())) < 0.01 and abs(float(flat.std()) - 1) < 0.01
    assert abs(float((flat > 1.96).double().mean()) - 0.025) < 0.003
    assert abs(float(torch.corrcoef(torch.stack([draws[:, 0], draws[:, 1]]))[0, 1])) < 0.1


def reference_path_point(clean: torch.Tensor, noise: torch.Tensor, epsilon: float, norm: str) -> torch.Tensor:
    """Slow reference: 200 bisection steps on s for ||P(y + s z) - y|| = epsilon, one row at a time."""
    from stealguard.defenses.simplex import project_to_simplex

    def reach(s: float) -> float:
        return float(distance(project_to_simplex(clean + s * noise), clean, norm)[0])

    low, high = 0.0, 2.0**20
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if reach(middle) < epsilon else (low, middle)
    return project_to_simplex(clean + high * noise)


@settings(max_examples=40, deadline=None)
@given(
    probs=posterior_batches(min_rows=1, max_rows=1, max_classes=12, dtypes=(torch.float64,)),
    norm=st.sampled_from(["l1", "l2"]),
    fraction=st.floats(0.05, 0.5),
    seed=st.integers(0, 2**31),
)
def test_newton_path_point_matches_bisection_reference(probs, norm, fraction, seed):
    """Where the distance grows monotonically along the path, the fast point is the reference crossing."""
    from stealguard.defenses.random_noise import along_projected_path
    from stealguard.defenses.simplex import project_to_simplex

    epsilon = fraction * MAX_DISTANCE[norm]
    gaussian = torch.randn(1, probs.shape[1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    direction = gaussian - gaussian.mean()
    length = distance(direction, torch.zeros_like(direction), norm)
    noise = direction * (epsilon / length)
    steps = torch.logspace(-6, 6, 400, dtype=torch.float64)
    reaches = torch.stack([distance(project_to_simplex(probs + s * noise), probs, norm)[0] for s in steps])
    if not bool((reaches.diff() >= -1e-12).all()) or float(reaches[-1]) < epsilon * 1.01:
        return  # non-monotone or out-of-reach paths: several crossings or the -z rule apply
    fast = along_projected_path(probs, noise, epsilon=epsilon, norm=norm)
    torch.testing.assert_close(fast, reference_path_point(probs, noise, epsilon, norm), rtol=0, atol=1e-7)


@pytest.mark.parametrize("iterations", [1, 2, 3])
@pytest.mark.parametrize("rows", [8, 40])
def test_rows_cut_short_of_converging_stay_on_simplex_and_budget(iterations, rows, monkeypatch):
    """With too few Newton steps, unconverged rows fall back on their bracket's upper end, pulled onto the budget."""
    import stealguard.defenses.random_noise as module

    monkeypatch.setattr(module, "PATH_ITERATIONS", iterations)
    probs = torch.softmax(4 * torch.randn(rows, 300, generator=torch.Generator().manual_seed(rows), dtype=torch.float64), dim=1)
    out = D.create("random_noise", epsilon=0.3, consistent=True, seed=1)(make_queries(rows), probs)
    assert (out >= 0).all() and ((out.sum(dim=1) - 1).abs() <= 1e-9).all()
    assert (distance(out, probs, "l1") <= 0.3 + 1e-9).all()
    full = D.create("random_noise", epsilon=0.3, consistent=True, seed=1)
    monkeypatch.setattr(module, "PATH_ITERATIONS", 40)
    reached = distance(full(make_queries(rows), probs), probs, "l1")
    assert (distance(out, probs, "l1") <= reached + 1e-9).all()  # cut short: never farther than converged
