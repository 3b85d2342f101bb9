"""Answer inversion (stealguard.attacks.inversion): exactness where the defense is invertible, honesty where not."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from stealguard import defenses, models
from stealguard.attacks import invert
from stealguard.attacks.inversion import inverter_from_spec, names
from stealguard.attacks.inversion.estimate import densest_cluster, lowest_cluster
from stealguard.attacks.inversion.mad import MADKeyedInversion, invert_vertex_mixture
from stealguard.attacks.inversion.mad_argmax import (
    CONSISTENCY_MARGIN,
    sets_with_top,
    uniform_surrogate_choice,
)

K = 10
EXACT = 1e-3


def lenet_surrogate(seed: int) -> models.Classifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return models.create("lenet", input_shape=(1, 28, 28), num_classes=K).eval()


def peaked_posteriors(n: int, seed: int = 0) -> Tensor:
    """MNIST-like clean posteriors: mostly confident rows, some uncertain ones (float64)."""
    gen = torch.Generator().manual_seed(seed)
    scale = 4 + 16 * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    return torch.softmax(scale * torch.randn(n, K, generator=gen, dtype=torch.float64), dim=1)


def queries(n: int, seed: int = 1) -> Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def l1(a: Tensor, b: Tensor) -> Tensor:
    return (a.double() - b.double()).abs().sum(dim=1)


@pytest.fixture(scope="module")
def mad_setup() -> tuple[Tensor, Tensor]:
    y = peaked_posteriors(400)
    answers = defenses.create("mad", epsilon=0.5, surrogate=lenet_surrogate(11))(queries(400), y)
    return y, answers


def test_mad_known_budget_recovers_clean_posteriors(mad_setup: tuple[Tensor, Tensor]) -> None:
    y, answers = mad_setup
    recovered = invert(answers, "mad:epsilon=0.5")
    errors = l1(recovered, y)
    assert float((errors < EXACT).double().mean()) >= 0.95
    assert float(errors.median()) < 1e-9
    assert float(errors.mean()) < 0.1 * float(l1(answers, y).mean())


def test_mad_estimated_budget_matches_the_true_one(mad_setup: tuple[Tensor, Tensor]) -> None:
    y, answers = mad_setup
    inverter = inverter_from_spec("mad")
    recovered = inverter(answers)
    assert inverter.estimated_epsilon == pytest.approx(0.5, abs=1e-3)
    assert float((l1(recovered, y) < EXACT).double().mean()) >= 0.9


def test_mad_average_selection_is_worse_than_angle(mad_setup: tuple[Tensor, Tensor]) -> None:
    y, answers = mad_setup
    angle = l1(invert(answers, "mad:epsilon=0.5"), y).mean()
    average = l1(invert(answers, "mad:epsilon=0.5,select=average"), y).mean()
    assert angle <= average


@pytest.mark.parametrize("norm, epsilon", [("l1", 0.2), ("l2", 0.3)])
def test_mad_both_norms(norm: str, epsilon: float) -> None:
    y = peaked_posteriors(200, seed=3)
    answers = defenses.create("mad", epsilon=epsilon, norm=norm, surrogate=lenet_surrogate(5))(queries(200), y)
    errors = l1(invert(answers, f"mad:epsilon={epsilon},norm={norm}"), y)
    assert float(errors.mean()) < 0.5 * float(l1(answers, y).mean())


def test_mad_argmax_known_budget_beats_the_naive_answer() -> None:
    y = peaked_posteriors(300, seed=4)
    answers = defenses.create("mad_argmax", epsilon=0.5, surrogate=lenet_surrogate(6))(queries(300), y)
    errors = l1(invert(answers, "mad_argmax:epsilon=0.5"), y)
    assert float(errors.mean()) < float(l1(answers, y).mean())
    assert float((errors < EXACT).double().mean()) > float((l1(answers, y) < EXACT).double().mean())


def test_keyed_mad_resists_the_inversion_that_undoes_mad() -> None:
    y, x = peaked_posteriors(300, seed=8), queries(300)
    surrogate = lenet_surrogate(9)
    plain = defenses.create("mad", epsilon=0.5, surrogate=surrogate)(x, y)
    keyed = defenses.create("mad_keyed", epsilon=0.5, mix=0.5, seed=123, surrogate=surrogate)(x, y)
    plain_exact = (l1(invert(plain, "mad:epsilon=0.5"), y) < EXACT).double().mean()
    for spec in ("mad_keyed:epsilon=0.5,mix=0.5", "mad:epsilon=0.5"):
        keyed_exact = (l1(invert(keyed, spec), y) < EXACT).double().mean()
        assert keyed_exact < 0.5 * plain_exact


@pytest.mark.parametrize("epsilon", [0.5, 1.0])
def test_keyed_mad_projection_fallback_recovers_most_of_the_answer_the_mean_alone_cannot(epsilon: float) -> None:
    """No candidate is valid once the keyed point replaces the mean: the least inconsistent one, projected, is close."""
    y, x = peaked_posteriors(300, seed=8), queries(300)
    keyed = defenses.create("mad_keyed", epsilon=epsilon, mix=0.5, seed=123, surrogate=lenet_surrogate(9))(x, y)
    naive = float(l1(keyed, y).mean())
    kept = invert(keyed, f"mad_keyed:epsilon={epsilon},fallback=keep")
    projected = invert(keyed, f"mad_keyed:epsilon={epsilon}")
    assert float(l1(kept, y).mean()) > 0.8 * naive
    assert float(l1(projected, y).mean()) < 0.4 * naive
    agree = lambda estimate: float((estimate.argmax(dim=1) == y.argmax(dim=1)).double().mean())
    assert agree(projected) >= agree(keyed) - 0.01


def test_keyed_mad_budget_is_read_from_the_top_entries_of_confident_rows() -> None:
    y, x = peaked_posteriors(400, seed=3), queries(400)
    for epsilon in (0.1, 0.5, 1.0):
        keyed = defenses.create("mad_keyed", epsilon=epsilon, seed=7, surrogate=lenet_surrogate(2))(x, y)
        inverter = MADKeyedInversion()
        inverter(keyed)
        assert inverter.estimated_epsilon == pytest.approx(epsilon, rel=1e-2)


def test_projection_fallback_leaves_valid_and_one_hot_rows_alone() -> None:
    y = peaked_posteriors(200, seed=5)
    answers = defenses.create("mad", epsilon=0.5, surrogate=lenet_surrogate(4))(queries(200), y).double()
    answers = torch.cat([answers, torch.eye(K, dtype=torch.float64)[:3]])
    options = {"epsilon": 0.5, "mix": 0.0, "norm": "l1", "select": "angle", "tol": 1e-3}
    torch.testing.assert_close(invert_vertex_mixture(answers, fallback="project", **options), invert_vertex_mixture(answers, **options))
    torch.testing.assert_close(invert_vertex_mixture(answers, fallback="project", **options)[-3:], answers[-3:])


def test_keyed_mad_answers_depend_only_on_the_query_and_the_key() -> None:
    y, x = peaked_posteriors(20, seed=2), queries(20)
    make = lambda seed: defenses.create("mad_keyed", epsilon=0.5, seed=seed, surrogate=lenet_surrogate(1))
    first, again, other_key = make(5)(x, y), make(5)(x.flip(0), y.flip(0)).flip(0), make(6)(x, y)
    torch.testing.assert_close(first, again, rtol=0, atol=1e-12)
    assert float(l1(first, other_key).max()) > 1e-3


def test_reverse_sigmoid_monotone_map_is_inverted_exactly() -> None:
    y = peaked_posteriors(200, seed=5)
    answers = defenses.create("reverse_sigmoid", beta=0.5, gamma=1.0)(torch.zeros(200, 1), y)
    errors = l1(invert(answers, "reverse_sigmoid:beta=0.5,gamma=1.0"), y)
    assert float((errors < EXACT).double().mean()) >= 0.995


def test_rows_with_entries_below_the_clamp_are_inverted_exactly() -> None:
    """Their normaliser sits at the edge of the feasible range (every tiny entry maps to f's minimum)."""
    y = torch.tensor([[1e-20, 1e-25, 0.3, 0.7 - 2e-7, 1e-7, 1e-7], [1e-30] * 5 + [1 - 5e-30]], dtype=torch.float64)
    answers = defenses.create("reverse_sigmoid", beta=0.5, gamma=1.0)(torch.zeros(2, 1), y)
    assert float(l1(invert(answers, "reverse_sigmoid:beta=0.5,gamma=1.0"), y).max()) < 1e-6


def confident_posteriors(n: int, seed: int) -> Tensor:
    """Clean float32 posteriors of which about a third are one-hot up to 1e-7 (as a trained victim on its own data)."""
    y = peaked_posteriors(n, seed=seed)
    y[: n // 3] = torch.softmax(40 * torch.eye(K, dtype=torch.float64)[torch.arange(n // 3) % K], dim=1)
    return y.float()


@pytest.mark.parametrize("beta", [0.1, 0.3, 0.6])
def test_reverse_sigmoid_beta_is_estimated_from_the_answers(beta: float) -> None:
    y = confident_posteriors(400, seed=7)
    answers = defenses.create("reverse_sigmoid", beta=beta, gamma=0.2)(torch.zeros(400, 1), y)
    inverter = inverter_from_spec("reverse_sigmoid")
    estimated = inverter(answers)
    assert inverter.estimated_beta == pytest.approx(beta, rel=1e-6)
    known = invert(answers, f"reverse_sigmoid:beta={beta}")
    assert float(l1(estimated, y).mean()) <= 1.02 * float(l1(known, y).mean()) + 1e-3


def test_reverse_sigmoid_estimate_pools_the_answers_seen_so_far() -> None:
    y = confident_posteriors(400, seed=8)[torch.randperm(400, generator=torch.Generator().manual_seed(0))]
    answers = defenses.create("reverse_sigmoid", beta=0.45, gamma=0.2)(torch.zeros(400, 1), y)
    inverter = inverter_from_spec("reverse_sigmoid:memory=1000")
    for chunk in answers.split(25):
        inverter(chunk)
    assert inverter.estimated_beta == pytest.approx(0.45, rel=1e-6)


def test_reverse_sigmoid_without_confident_answers_assumes_the_default_beta() -> None:
    y = torch.softmax(torch.randn(300, K, generator=torch.Generator().manual_seed(9)), dim=1)
    answers = defenses.create("reverse_sigmoid", beta=0.6, gamma=0.2)(torch.zeros(300, 1), y)
    inverter = inverter_from_spec("reverse_sigmoid")
    recovered = inverter(answers)
    assert inverter.estimated_beta is None
    torch.testing.assert_close(recovered, invert(answers, "reverse_sigmoid:beta=0.3"))


def test_reverse_sigmoid_folded_map_is_inverted_better_than_naive() -> None:
    y = peaked_posteriors(200, seed=6)
    answers = defenses.create("reverse_sigmoid", beta=0.3, gamma=0.2)(torch.zeros(200, 1), y)
    errors = l1(invert(answers, "reverse_sigmoid:beta=0.3,gamma=0.2"), y)
    assert float(errors.mean()) < 0.5 * float(l1(answers, y).mean())


def test_dcp_keeps_unchanged_rows_and_undoes_perturbed_ones() -> None:
    y = peaked_posteriors(300, seed=7)
    answers = defenses.create("dcp", tau=0.8)(torch.zeros(300, 1), y)
    recovered = invert(answers, "dcp:tau=0.8")
    confident = y.amax(dim=1) > 0.85
    assert confident.any() and (~confident).any()
    assert float(l1(recovered, y)[confident].max()) < 1e-6
    assert float(l1(recovered, y)[~confident].mean()) < 0.5 * float(l1(answers, y)[~confident].mean())


@pytest.mark.parametrize(
    "name, beta, branch, diffuse",
    [("reverse_sigmoid", 1.0, "outer", False), ("reverse_sigmoid", 2.0, "outer", False), ("dcp", 1.0, "inner", True)],
)
def test_maps_with_beta_above_one_are_inverted_while_no_entry_is_clamped(name: str, beta: float, branch: str, diffuse: bool) -> None:
    """Up to positive_map_beta_bound(gamma) (2.16 for gamma 0.2) the per-entry map clamps nothing and is undone
    (DCP perturbs the uncertain rows, whose entries lie between the folds: the inner preimage)."""
    y = diffuse_posteriors(300, seed=22) if diffuse else peaked_posteriors(300, seed=22)
    answers = defenses.create(name, beta=beta)(torch.zeros(300, 1), y)
    errors = l1(invert(answers, f"{name}:beta={beta},branch={branch}"), y)
    assert float(errors.mean()) < 0.5 * float(l1(answers, y).mean())


@pytest.mark.parametrize("spec", ["reverse_sigmoid:beta=2.2", "dcp:beta=2.2", "reverse_sigmoid_keyed:beta=2.2"])
def test_inverters_refuse_a_beta_whose_map_clamps_entries(spec: str) -> None:
    with pytest.raises(ValueError, match="beta"):
        inverter_from_spec(spec)


def diffuse_posteriors(n: int, seed: int) -> Tensor:
    """Uncertain clean posteriors (float64), as a victim gives queries far from its data."""
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(0.7 * torch.randn(n, K, generator=gen, dtype=torch.float64), dim=1)


@pytest.mark.parametrize("beta", [0.3, 0.5])
def test_dcp_authors_variant_keeps_rows_above_beta_and_undoes_the_others(beta: float) -> None:
    y = torch.cat([diffuse_posteriors(300, seed=12), peaked_posteriors(100, seed=13)])
    answers = defenses.create("dcp", variant="authors", beta=beta)(torch.zeros(400, 1), y)
    recovered = invert(answers, f"dcp:variant=authors,beta={beta},branch=inner")
    kept = y.amax(dim=1) > beta + 0.02
    perturbed = y.amax(dim=1) < beta - 0.02
    assert kept.any() and perturbed.any()
    assert float(l1(recovered, y)[kept].max()) < 1e-6
    errors = l1(recovered, y)[perturbed]
    assert float(errors.mean()) < 0.5 * float(l1(answers, y)[perturbed].mean())
    assert float((errors < EXACT).double().mean()) >= 0.5


@pytest.mark.parametrize("spec", ["dcp:tau=0.8,beta=0.3", "reverse_sigmoid:beta=0.3"])
def test_inner_branch_suits_diffuse_posteriors_and_outer_confident_ones(spec: str) -> None:
    diffuse, confident = diffuse_posteriors(300, seed=14), confident_posteriors(300, seed=15).double()
    name, params = spec.split(":")
    defense = defenses.create(name, **{k: float(v) for k, v in (kv.split("=") for kv in params.split(","))})

    def error(y: Tensor, branch: str) -> float:
        return float(l1(invert(defense(torch.zeros(len(y), 1), y), f"{spec},branch={branch}"), y).mean())

    assert error(diffuse, "inner") < 0.5 * error(diffuse, "outer")
    if name == "reverse_sigmoid":  # DCP leaves confident rows unchanged: nothing to compare there
        assert error(confident, "outer") < 0.5 * error(confident, "inner")


def test_dcp_authors_inversion_refuses_tau() -> None:
    with pytest.raises(ValueError, match="tau must be None"):
        inverter_from_spec("dcp:variant=authors,tau=0.8")


def test_mad_argmax_inverter_assumes_the_defenses_default_top_weight() -> None:
    from stealguard.attacks.inversion.mad_argmax import default_top_weight
    from stealguard.defenses.mad import REFERENCE_TOP_CLASS_WEIGHT, TOP_CLASS_WEIGHT

    assert default_top_weight(10) == REFERENCE_TOP_CLASS_WEIGHT  # K <= 10: the reference's exhaustive search
    assert default_top_weight(11) == TOP_CLASS_WEIGHT
    y = peaked_posteriors(300, seed=16)
    answers = defenses.create("mad_argmax", epsilon=0.5, surrogate=lenet_surrogate(17))(queries(300, seed=18), y)
    assumed, wrong = invert(answers, "mad_argmax:epsilon=0.5"), invert(answers, "mad_argmax:epsilon=0.5,top_weight=0.001")
    # rows whose set is identified come back to float64 round-off with the right weight, not with the wrong one
    assert float(l1(assumed, y).median()) < 1e-12 < float(l1(wrong, y).median())


def uniform_posterior_surrogate(seed: int) -> models.Classifier:
    """A LeNet whose last layer is zero: its posterior is exactly uniform at every input (features stay nonzero)."""
    surrogate = lenet_surrogate(seed)
    last = [module for module in surrogate.modules() if isinstance(module, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return surrogate


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.integers(3, 6))
def test_uniform_surrogate_choice_matches_a_brute_force_over_every_set(seed: int, k: int) -> None:
    """Transcription: cos(t_S - u, y^ - u) against every set with the top class, one by one."""
    gen = torch.Generator().manual_seed(seed)
    candidates = torch.softmax(3 * torch.randn(4, 2 ** (k - 1), k, generator=gen, dtype=torch.float64), dim=2)
    top = torch.randint(k, (4,), generator=gen)
    members = sets_with_top(top, k)
    weight = 1e-3
    fast = uniform_surrogate_choice(candidates, members, top, weight)

    def cosine(mask: Tensor, row: int, candidate: Tensor) -> float:
        target = mask.double() + weight * torch.nn.functional.one_hot(top[row], k).double()
        target = target / target.sum() - 1 / k
        v = candidate - 1 / k
        return float(target @ v / (target.norm() * v.norm()))

    for row in range(4):
        for index in range(members.shape[1]):
            candidate = candidates[row, index]
            best = min(cosine(mask, row, candidate) for mask in members[row])
            own = cosine(members[row, index], row, candidate)
            if abs(own - best - CONSISTENCY_MARGIN) > 1e-9:  # away from the margin's edge
                assert bool(fast[row, index]) == (own <= best + CONSISTENCY_MARGIN)


@pytest.mark.parametrize("epsilon", [0.1, 0.5, 1.0])
def test_mad_argmax_consistent_selection_finds_a_uniform_surrogates_sets(epsilon: float) -> None:
    """With a surrogate whose posterior is uniform, the consistent rule reads the sets the nested rule misses."""
    y = peaked_posteriors(300, seed=4)
    answers = defenses.create("mad_argmax", epsilon=epsilon, surrogate=uniform_posterior_surrogate(6))(queries(300), y)
    consistent = (l1(invert(answers, f"mad_argmax:epsilon={epsilon},select=consistent"), y) < EXACT).double().mean()
    largest = (l1(invert(answers, f"mad_argmax:epsilon={epsilon},select=largest"), y) < EXACT).double().mean()
    assert float(consistent) >= 0.85 and float(consistent) > float(largest) + 0.1


@pytest.mark.parametrize("epsilon", [0.1, 0.5, 1.0])
def test_mad_argmax_auto_selection_beats_the_nested_rule_with_a_random_surrogate(epsilon: float) -> None:
    y = peaked_posteriors(300, seed=4)
    answers = defenses.create("mad_argmax", epsilon=epsilon, surrogate=lenet_surrogate(6))(queries(300), y)
    auto = l1(invert(answers, f"mad_argmax:epsilon={epsilon}"), y)
    largest = l1(invert(answers, f"mad_argmax:epsilon={epsilon},select=largest"), y)
    assert float((auto < EXACT).double().mean()) > float((largest < EXACT).double().mean())
    assert float(auto.mean()) < float(largest.mean())


def test_mad_argmax_consistent_selection_above_ten_classes_uses_the_nested_sets() -> None:
    """K > 10: the defense searches greedily; the inverter checks the nested sets (no 2^(K-1) enumeration)."""
    k = 12
    gen = torch.Generator().manual_seed(21)
    y = torch.softmax(3 * torch.randn(200, k, generator=gen, dtype=torch.float64), dim=1)
    surrogate = models.create("lenet", input_shape=(1, 28, 28), num_classes=k).eval()
    answers = defenses.create("mad_argmax", epsilon=0.5, surrogate=surrogate)(queries(200), y)
    for select in ("auto", "consistent", "largest"):
        recovered = invert(answers, f"mad_argmax:epsilon=0.5,select={select}")
        assert recovered.shape == (200, k) and bool(torch.isfinite(recovered).all())
        assert float(l1(recovered, y).mean()) < float(l1(answers, y).mean())


def test_mad_argmax_inverter_refuses_an_unknown_selection() -> None:
    with pytest.raises(ValueError, match="select"):
        inverter_from_spec("mad_argmax:select=best")


@pytest.mark.parametrize("spec", ["rounding:decimals=1", "topk:k=2", "label_only", "random_noise:epsilon=0.3",
                                  "random_noise:space=logit,epsilon=17.5", "adaptive_misinformation:tau=0.9", "none"])
def test_information_destroying_defenses_return_the_answer(spec: str) -> None:
    answers = peaked_posteriors(30, seed=9)
    torch.testing.assert_close(invert(answers, spec), answers, rtol=0, atol=1e-12)
    assert inverter_from_spec(spec).exact is (spec == "none")


@st.composite
def answer_batches(draw: st.DrawFn) -> Tensor:
    rows, classes = draw(st.integers(0, 12)), draw(st.integers(2, 12))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.sampled_from([0.0, 0.1, 1.0, 10.0, 60.0]))
    batch = torch.softmax(scale * torch.randn(rows, classes, generator=gen, dtype=torch.float64), dim=1)
    return batch.to(draw(st.sampled_from([torch.float32, torch.float64])))


@pytest.mark.parametrize("name", names())
@settings(max_examples=12, deadline=None)
@given(answers=answer_batches())
def test_every_inverter_returns_rows_on_the_simplex(name: str, answers: Tensor) -> None:
    recovered = inverter_from_spec(name)(answers)
    assert recovered.shape == answers.shape and recovered.dtype == answers.dtype
    assert torch.isfinite(recovered).all() and (recovered >= 0).all()
    assert ((recovered.double().sum(dim=1) - 1).abs() <= 1e-6).all()


def test_densest_cluster_finds_the_spike_not_the_crowd_near_zero() -> None:
    gen = torch.Generator().manual_seed(0)
    background = 0.2 * torch.rand(5000, generator=gen, dtype=torch.float64)
    spike = 0.5 * (1 + 1e-5 * torch.rand(300, generator=gen, dtype=torch.float64))
    assert densest_cluster(torch.cat([background, spike]), width=1e-3) == pytest.approx(0.5, rel=2e-5)
    assert densest_cluster(torch.tensor([0.0, -1.0, float("nan")]), width=1e-3) is None


def test_lowest_cluster_finds_the_lower_edge_spike_below_a_denser_crowd() -> None:
    gen = torch.Generator().manual_seed(0)
    crowd = 1.2 + 0.1 * torch.rand(5000, generator=gen, dtype=torch.float64)
    spike = 0.5 * (1 + 1e-3 * torch.rand(30, generator=gen, dtype=torch.float64))
    stray = torch.tensor([0.1, 0.3], dtype=torch.float64)
    values = torch.cat([crowd, spike, stray])
    assert lowest_cluster(values, width=1e-2, support=10) == pytest.approx(0.5, rel=1e-3)
    assert densest_cluster(values, width=1e-2) > 1.2
    assert lowest_cluster(values, width=1e-2, support=40) > 1.2
    assert lowest_cluster(stray, width=1e-2, support=3) is None
    assert lowest_cluster(torch.tensor([0.0, -1.0, float("nan")]), width=1e-2, support=1) is None


def test_bad_specs_and_answers_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown inverter 'nope'; available: .*mad"):
        inverter_from_spec("nope")
    with pytest.raises(TypeError, match="unknown parameter.*surrogate"):
        inverter_from_spec("mad:surrogate=victim")
    with pytest.raises(ValueError, match="epsilon must be in"):
        inverter_from_spec("mad:epsilon=3")
    with pytest.raises(ValueError, match=r"shape \(N, K\)"):
        invert(torch.ones(3), "mad")
    with pytest.raises(ValueError, match="simplex"):
        invert(torch.full((2, 3), 0.5), "mad")
    with pytest.raises(TypeError, match="float32 or float64"):
        invert(torch.ones(2, 3, dtype=torch.long), "mad")


def test_keyed_reverse_sigmoid_resists_the_inversion_that_undoes_reverse_sigmoid() -> None:
    y = peaked_posteriors(200, seed=12)
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(3))
    plain = defenses.create("reverse_sigmoid", beta=0.5, gamma=1.0)(x, y)
    keyed_defense = defenses.create("reverse_sigmoid_keyed", beta=0.5, gamma=1.0, spread=1.0, seed=77)
    keyed = keyed_defense(x, y)
    torch.testing.assert_close(keyed_defense(x.flip(0), y.flip(0)).flip(0), keyed, rtol=0, atol=1e-12)
    plain_exact = (l1(invert(plain, "reverse_sigmoid:beta=0.5,gamma=1.0"), y) < EXACT).double().mean()
    keyed_exact = (l1(invert(keyed, "reverse_sigmoid_keyed:beta=0.5,gamma=1.0,spread=1.0"), y) < EXACT).double().mean()
    assert plain_exact >= 0.95 and keyed_exact < 0.5 * plain_exact
