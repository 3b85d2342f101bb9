"""ART's own extraction attacks against stealguard black boxes, through ``ArtBlackBox``."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import torch
from art.attacks.extraction import CopycatCNN, FunctionallyEquivalentExtraction, KnockoffNets

from stealguard import models
from stealguard.blackbox import BlackBox, BudgetExceededError
from stealguard.interop.art import ArtBlackBox, DefendedClassifier, pytorch_classifier
from stealguard.serve import RemoteBlackBox
from tests.interop._art import SHAPE, K, digits_split, make_defense, trained_victim

BUDGET = 120


@pytest.fixture(scope="module")
def victim() -> models.Classifier:
    return trained_victim()


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    _, query_part = digits_split()
    return query_part.tensors()[0].numpy()


def _thief(seed: int = 3):
    torch.manual_seed(seed)
    replica = models.create("mlp", input_shape=SHAPE, num_classes=K)
    return replica, pytorch_classifier(replica, input_shape=SHAPE, num_classes=K, lr=1e-2, device="cpu")


def _agreement(a: torch.nn.Module, b: torch.nn.Module, x: np.ndarray) -> float:
    with torch.no_grad():
        batch = torch.from_numpy(x)
        return float((a(batch).argmax(1) == b(batch).argmax(1)).float().mean())


@pytest.mark.parametrize("spec", ["none", "mad:epsilon=0.5", "dcp"])
@pytest.mark.parametrize("attack_class", [KnockoffNets, CopycatCNN])
def test_art_attacks_spend_exactly_what_the_black_box_counts(spec, attack_class, victim, pool) -> None:
    box = BlackBox(victim, make_defense(spec), budget=BUDGET, device="cpu")
    classifier = ArtBlackBox(box)
    replica, thief = _thief()
    untrained = [p.detach().clone() for p in replica.parameters()]
    attack = attack_class(
        classifier=classifier, batch_size_fit=32, batch_size_query=25, nb_epochs=3, nb_stolen=BUDGET, use_probability=True
    )
    np.random.seed(0)
    stolen = attack.extract(pool, thieved_classifier=thief)
    assert box.queries_used == classifier.queries_used == attack.nb_stolen == BUDGET
    assert box.distortions().shape == (BUDGET,)
    assert stolen.model is replica
    assert any(not torch.equal(before, after) for before, after in zip(untrained, replica.parameters()))
    if spec == "none":
        assert float(box.distortions().max()) < 1e-5
    else:
        assert float(box.distortions().mean()) > 1e-3


def test_a_replica_stolen_through_the_adapter_beats_chance(victim, pool) -> None:
    box = BlackBox(victim, budget=400, device="cpu")
    replica, thief = _thief()
    np.random.seed(0)
    KnockoffNets(classifier=ArtBlackBox(box), batch_size_fit=32, batch_size_query=100, nb_epochs=20, nb_stolen=400,
                 use_probability=True).extract(pool, thieved_classifier=thief)
    replica.eval()
    assert box.queries_used == 400
    assert _agreement(replica, victim, pool) > 3 / K


def test_the_black_box_budget_stops_art(victim, pool) -> None:
    box = BlackBox(victim, budget=50, device="cpu")
    _, thief = _thief()
    attack = CopycatCNN(classifier=ArtBlackBox(box), batch_size_query=20, nb_epochs=1, nb_stolen=80)
    with pytest.raises(BudgetExceededError, match="budget of 50"):
        attack.extract(pool, thieved_classifier=thief)
    assert box.queries_used == 40


def test_the_adapter_answers_what_the_black_box_answers(victim, pool) -> None:
    defense = make_defense("mad:epsilon=0.5")
    box = BlackBox(victim, defense, device="cpu")
    answers = ArtBlackBox(box).predict(pool[:30], batch_size=7)
    assert answers.dtype == np.float32 and answers.shape == (30, K)
    reference = BlackBox(victim, defense, device="cpu").query(torch.from_numpy(pool[:30]))
    np.testing.assert_allclose(answers, reference.numpy(), atol=1e-6)
    assert box.queries_used == 30


def test_defended_classifier_applies_a_defense_that_sees_x(victim, pool) -> None:
    defense = make_defense("mad:epsilon=0.5")
    inner = pytorch_classifier(victim, input_shape=SHAPE, num_classes=K, device="cpu")
    defended = DefendedClassifier(inner, defense)
    answers = defended.predict(pool[:40], batch_size=16)
    reference = BlackBox(victim, defense, device="cpu").query(torch.from_numpy(pool[:40]))
    np.testing.assert_allclose(answers, reference.numpy(), atol=1e-5)
    assert defended.queries_used == 40
    np.testing.assert_allclose(answers.sum(axis=1), 1.0, atol=1e-5)
    _, thief = _thief()
    np.random.seed(1)
    KnockoffNets(classifier=defended, batch_size_query=10, nb_epochs=1, nb_stolen=30).extract(pool, thieved_classifier=thief)
    assert defended.queries_used == 70


def test_defended_classifier_with_probability_outputs(victim, pool) -> None:
    box = ArtBlackBox(BlackBox(victim, device="cpu"))
    defended = DefendedClassifier(box, "label_only", preds="probs")
    answers = defended.predict(pool[:5])
    np.testing.assert_array_equal(answers, np.eye(K, dtype=np.float32)[box.predict(pool[:5]).argmax(1)])


def test_bad_inputs_are_refused_by_name(victim) -> None:
    with pytest.raises(TypeError, match="lacks query"):
        ArtBlackBox(victim)
    with pytest.raises(TypeError, match="lacks predict"):
        DefendedClassifier(victim, "none")
    classifier = ArtBlackBox(BlackBox(victim, device="cpu"))
    with pytest.raises(ValueError, match="shape"):
        classifier.predict(np.zeros((2, 8, 8, 1), dtype=np.float32))
    with pytest.raises(ValueError, match=r"clip_values \[0, 1\].*got values in \[255, 255\]"):
        classifier.predict(np.full((2, 1, 8, 8), 255, dtype=np.int64))
    with pytest.raises(ValueError, match="optimizer"):
        pytorch_classifier(victim, input_shape=SHAPE, num_classes=K, optimizer="rmsprop")


def test_remote_black_box_through_the_adapter(victim, pool) -> None:
    """A RemoteBlackBox (scripted transport serving a local defended black box) counts ART's queries."""
    server = BlackBox(victim, make_defense("dcp"), device="cpu")
    card = {"input_shape": list(SHAPE), "num_classes": K, "max_batch": 16, "arch": "mlp", "dataset": "digits"}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/model":
            return httpx.Response(200, json=card)
        if request.url.path == "/v1/usage":
            return httpx.Response(200, json={"key": "anonymous", "used": server.queries_used, "quota": None, "remaining": None})
        batch = torch.from_numpy(np.load(io.BytesIO(request.content)))
        probs = server.query(batch)
        return httpx.Response(200, json={"probabilities": probs.tolist(), "labels": probs.argmax(1).tolist()})

    with RemoteBlackBox("http://test", transport=httpx.MockTransport(handle), budget=60) as remote:
        _, thief = _thief()
        np.random.seed(2)
        CopycatCNN(classifier=ArtBlackBox(remote), batch_size_query=25, nb_epochs=1, nb_stolen=60).extract(
            pool, thieved_classifier=thief
        )
        assert remote.queries_used == server.queries_used == 60


def test_functionally_equivalent_extraction_is_refused_before_any_query(victim) -> None:
    """FEE probes points far outside [0, 1] for logits of a two-layer net: the adapter refuses, nothing is spent."""
    box = BlackBox(victim, device="cpu")
    np.random.seed(0)
    attack = FunctionallyEquivalentExtraction(ArtBlackBox(box), num_neurons=256)
    with pytest.raises(ValueError, match="clip_values"):
        attack.extract(np.random.rand(5, 64).astype(np.float32))
    assert box.queries_used == 0
