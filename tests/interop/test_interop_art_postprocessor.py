"""Posterior-only stealguard defenses as ART postprocessors; the rest refused with a pointer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.defences.postprocessor import ClassLabels, Postprocessor, Rounded
from art.estimators.classification import BlackBoxClassifier
from hypothesis import given, settings
from hypothesis import strategies as st

from stealguard import defenses
from stealguard.interop.art import DefendedClassifier, DefensePostprocessor, uses_input
from tests.defenses.conftest import INPUT_DIM, defense_names, make_queries, posterior_batches
from tests.defenses.conftest import make_defense as conftest_defense
from tests.interop._art import make_defense

POSTERIOR_ONLY = [
    "none",
    "reverse_sigmoid:beta=0.3,gamma=0.2",
    "dcp:tau=0.8,beta=0.3,epsilon=0.5",
    "topk:k=3",
    "rounding:decimals=2",
    "label_only",
    "random_noise:epsilon=0.2,seed=3",
]
NEEDS_X = ["mad:epsilon=0.5", "mad_argmax:epsilon=0.5", "adaptive_misinformation:tau=0.8", "random_noise:consistent=true"]
FAST = settings(max_examples=40, deadline=None)


def _deterministic(spec: str) -> bool:
    return not spec.startswith("random_noise")


@pytest.mark.parametrize("spec", POSTERIOR_ONLY)
@FAST
@given(data=st.data())
def test_postprocessor_equals_the_defense_and_stays_on_the_simplex(spec, data) -> None:
    probs = data.draw(posterior_batches(max_classes=200))
    rows = probs.shape[0]
    x = torch.rand(rows, 1, 8, 8, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 99))))
    post = DefensePostprocessor(make_defense(spec))
    reference = make_defense(spec)(x, probs.double())
    out = post(probs.numpy())
    assert isinstance(out, np.ndarray) and out.shape == tuple(probs.shape)
    assert out.dtype == (np.float64 if probs.dtype == torch.float64 else np.float32)
    assert np.all(out >= 0) and np.all(np.abs(out.astype(np.float64).sum(axis=1) - 1) <= 1e-6)
    np.testing.assert_allclose(out, reference.numpy(), atol=1e-6)


@pytest.mark.parametrize("spec", [s for s in POSTERIOR_ONLY if _deterministic(s)])
@FAST
@given(probs=posterior_batches(min_rows=1, max_rows=8, max_classes=50))
def test_declared_posterior_only_defenses_ignore_x(spec, probs) -> None:
    defense = make_defense(spec)
    assert not uses_input(defense)
    first = defense(torch.zeros(probs.shape[0], 1, 8, 8), probs)
    second = defense(torch.rand(probs.shape[0], 1, 8, 8), probs)
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_logits_go_through_a_softmax_first() -> None:
    logits = np.random.default_rng(0).normal(size=(6, 10)).astype(np.float32) * 4
    out = DefensePostprocessor("topk:k=2", preds="logits")(logits)
    expected = defenses.create("topk", k=2)(torch.zeros(6, 1), torch.softmax(torch.from_numpy(logits).double(), 1))
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("spec", NEEDS_X)
def test_defenses_that_read_x_are_refused_with_a_pointer(spec) -> None:
    defense = make_defense(spec)
    assert uses_input(defense)
    with pytest.raises(TypeError, match="reads the query x.*DefendedClassifier"):
        DefensePostprocessor(defense)


@pytest.mark.parametrize("name", defense_names())
def test_every_registered_defense_runs_inside_art(name) -> None:
    """Posterior-only defenses as postprocessors, the others through DefendedClassifier; both equal defense(x, probs)."""
    weights = np.random.default_rng(1).normal(size=(INPUT_DIM, 5)).astype(np.float32)

    def victim(x: np.ndarray) -> np.ndarray:
        return torch.softmax(torch.from_numpy(x @ weights), dim=1).numpy()

    x = make_queries(6).numpy()
    expected = conftest_defense(name, 5)(torch.from_numpy(x), torch.from_numpy(victim(x))).numpy()
    inner = BlackBoxClassifier(victim, input_shape=(INPUT_DIM,), nb_classes=5)
    defense = conftest_defense(name, 5)
    if uses_input(defense):
        with pytest.raises(TypeError, match="DefendedClassifier"):
            DefensePostprocessor(defense)
        answers = DefendedClassifier(inner, defense, preds="probs").predict(x, batch_size=4)
    else:
        answers = BlackBoxClassifier(
            victim, input_shape=(INPUT_DIM,), nb_classes=5, postprocessing_defences=[DefensePostprocessor(defense)]
        ).predict(x, batch_size=4)
    np.testing.assert_allclose(answers, expected, atol=1e-5)


def test_is_an_art_postprocessor_applied_at_predict_time() -> None:
    post = DefensePostprocessor("label_only")
    assert isinstance(post, Postprocessor) and post.apply_predict and post.is_fitted
    answers = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], dtype=np.float32)
    classifier = BlackBoxClassifier(lambda x: answers[: len(x)], input_shape=(2,), nb_classes=3, postprocessing_defences=[post])
    np.testing.assert_array_equal(classifier.predict(np.zeros((2, 2), dtype=np.float32)), [[1, 0, 0], [0, 0, 1]])


def test_art_class_labels_marks_every_row_with_the_batch_argmaxes_label_only_does_not() -> None:
    preds = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32)
    art_rows = ClassLabels()(preds)
    ours = DefensePostprocessor("label_only")(preds)
    assert (art_rows.sum(axis=1) == 2).all()
    np.testing.assert_array_equal(ours, [[1, 0, 0], [0, 0, 1]])


def test_art_rounded_rows_stop_summing_to_one_rounding_keeps_them() -> None:
    preds = torch.softmax(torch.randn(8, 1000, generator=torch.Generator().manual_seed(0)), dim=1).numpy()
    art_error = np.abs(Rounded(decimals=2)(preds).astype(np.float64).sum(axis=1) - 1).max()
    ours = DefensePostprocessor("rounding:decimals=2")(preds)
    assert art_error > 0.1
    assert np.abs(ours.astype(np.float64).sum(axis=1) - 1).max() <= 1e-6
    assert np.abs(ours - preds).max() < 0.01
    uniform = np.full((1, 1000), 1e-3, dtype=np.float32)
    assert Rounded(decimals=2)(uniform).sum() == 0
    assert abs(float(DefensePostprocessor("rounding:decimals=2")(uniform).astype(np.float64).sum()) - 1) <= 1e-6


def test_bad_predictions_and_parameters_are_refused() -> None:
    post = DefensePostprocessor("none")
    with pytest.raises(ValueError, match="rows must sum to 1"):
        post(np.array([[0.5, 0.6]], dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(N, K\)"):
        post(np.array([0.5, 0.5], dtype=np.float32))
    with pytest.raises(TypeError, match="floating-point"):
        post(np.array([[1, 0]]))
    with pytest.raises(ValueError, match="finite"):
        DefensePostprocessor("none", preds="logits")(np.array([[np.nan, 0.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="preds"):
        DefensePostprocessor("none", preds="scores")
    with pytest.raises(ValueError, match="unknown defense 'nope'"):
        DefensePostprocessor("nope")
    with pytest.raises(TypeError, match="unknown parameter.*decimals"):
        post.set_params(decimals=2)
    post.set_params(defense="rounding:decimals=1")
    np.testing.assert_allclose(post(np.array([[0.26, 0.74]], dtype=np.float32)), [[0.3, 0.7]], atol=1e-7)
    assert post(np.zeros((0, 3), dtype=np.float32)).shape == (0, 3)
