"""End to end: a real ``stealguard serve`` (MAD) on a loopback port, driven over HTTP.

Bad inputs get their 4xx and the server keeps serving; answers equal the library's; no
response, header or log line carries the clean posteriors; Knockoff through HTTP steals the
same replica as in-process.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from stealguard.blackbox import BlackBox
from stealguard.harness import build_defense, load_victim, run_attack
from stealguard.harness.experiment import run_remote_attack
from stealguard.serve import RemoteBlackBox
from tests.serve._server import Server

DEFENSE = "mad:epsilon=0.5"
MAX_BATCH = 300
MAX_BODY = 200_000
SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def server(victim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("mad-server")
    running = Server(
        victim_dir, root / "data", root / "server.log", "--defense", DEFENSE, "--seed", "0",
        "--max-batch", str(MAX_BATCH), "--max-body-bytes", str(MAX_BODY),
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def library(victim_dir: Path) -> BlackBox:
    """The same victim behind the same defense, in-process."""
    model, card = load_victim(victim_dir)
    defense, _ = build_defense(DEFENSE, card=card, seed=0)
    return BlackBox(model, defense, device="cpu")


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def post_json(client: httpx.Client, payload: object) -> httpx.Response:
    return client.post("/v1/predict", content=json.dumps(payload), headers={"Content-Type": "application/json"})


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_model_card_is_public_and_says_nothing_of_the_defense(client: httpx.Client) -> None:
    card = client.get("/v1/model").json()
    assert card["input_shape"] == list(SHAPE) and card["num_classes"] == 10 and len(card["classes"]) == 10
    assert card["max_batch"] == MAX_BATCH and card["value_range"] == [0.0, 1.0]
    limits = card["max_body_bytes_by_format"]
    assert set(limits) == {"application/json", "application/x-npy"}
    assert 0 < limits["application/x-npy"] <= limits["application/json"] <= card["max_body_bytes"]
    text = json.dumps(card).lower()
    assert all(word not in text for word in ("mad", "epsilon", "surrogate", "defense", "mean", "std"))
    assert client.get("/healthz").json() == {"status": "ok"}
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


def test_answers_are_defended_probabilities_and_top1_labels(client: httpx.Client, library: BlackBox) -> None:
    x = images(5)
    reply = post_json(client, {"inputs": x.tolist()})
    assert reply.status_code == 200 and set(reply.json()) == {"probabilities", "labels"}
    probs = torch.tensor(reply.json()["probabilities"])
    assert torch.allclose(probs, library.query(x), atol=1e-6, rtol=0)
    assert reply.json()["labels"] == probs.argmax(dim=1).tolist()
    assert torch.allclose(probs.sum(dim=1), torch.ones(5), atol=1e-5)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=arrays(np.float32, st.tuples(st.integers(1, 6), st.just(1), st.just(8), st.just(8)), elements=st.floats(0, 1, width=32)))
def test_http_answers_equal_the_library_for_any_batch(client: httpx.Client, library: BlackBox, batch: np.ndarray) -> None:
    x = torch.from_numpy(batch)
    reply = client.post("/v1/predict", content=npy(batch), headers={"Content-Type": "application/x-npy"})
    assert reply.status_code == 200
    assert torch.allclose(torch.tensor(reply.json()["probabilities"]), library.query(x), atol=1e-6, rtol=0)


def _bad_requests() -> list[tuple[str, dict[str, str], bytes, int, str]]:
    good = images(1).numpy()
    json_type = {"Content-Type": "application/json"}
    npy_type = {"Content-Type": "application/x-npy"}

    def body(payload: object) -> bytes:
        return json.dumps(payload).encode()

    b64 = base64.b64encode(good.astype("<f4").tobytes()).decode()
    return [
        ("wrong shape", json_type, body({"inputs": np.zeros((1, 1, 8, 7)).tolist()}), 422, r"shape \(B, 1, 8, 8\), got \(1, 1, 8, 7\)"),
        ("wrong rank", json_type, body({"inputs": np.zeros((8, 8)).tolist()}), 422, "shape"),
        ("strings", json_type, body({"inputs": [[["a"] * 8] * 8]}), 422, "string"),
        ("booleans", json_type, body({"inputs": [[[[True] * 8] * 8]]}), 422, "boolean"),
        ("npy int dtype", npy_type, npy(np.zeros((1, *SHAPE), dtype=np.int64)), 422, "float32 or float64"),
        ("NaN", json_type, body({"inputs": np.zeros((1, *SHAPE)).tolist()}).replace(b"0.0", b"NaN", 1), 422, "NaN"),
        ("Inf in npy", npy_type, npy(np.full((1, *SHAPE), np.inf, dtype=np.float32)), 422, "NaN or Inf"),
        ("above range", json_type, body({"inputs": np.full((1, *SHAPE), 1.5).tolist()}), 422, r"\[0, 1\]"),
        ("below range", npy_type, npy(np.full((1, *SHAPE), -0.5, dtype=np.float32)), 422, r"\[0, 1\]"),
        ("empty batch", json_type, body({"inputs": []}), 422, "empty"),
        ("batch over limit", npy_type, npy(np.zeros((MAX_BATCH + 1, *SHAPE), dtype=np.float32)), 413, f"limit of {MAX_BATCH}"),
        ("body over limit", json_type, body({"inputs": np.zeros((MAX_BATCH, *SHAPE)).tolist()}) + b" " * MAX_BODY, 413, f"limit of {MAX_BODY} bytes"),
        ("malformed JSON", json_type, b'{"inputs": [[', 400, "malformed JSON"),
        ("malformed npy", npy_type, b"\x93NUMPY garbage", 400, "malformed .npy"),
        ("truncated npy", npy_type, npy(good)[:-8], 400, "data bytes"),
        ("bad base64", json_type, body({"inputs_b64": "%%%", "shape": [1, *SHAPE]}), 400, "base64"),
        ("short base64", json_type, body({"inputs_b64": b64[:-8], "shape": [1, *SHAPE]}), 422, "bytes"),
        ("unknown keys", json_type, body({"inputs": good.tolist(), "extra": 1}), 422, "exactly"),
        ("unsupported type", {"Content-Type": "text/csv"}, b"0,1", 415, "text/csv"),
    ]


BAD = _bad_requests()


@pytest.mark.parametrize(("headers", "content", "status", "match"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input_gets_its_4xx_and_the_next_request_succeeds(
    client: httpx.Client, server: Server, headers: dict[str, str], content: bytes, status: int, match: str
) -> None:
    reply = client.post("/v1/predict", content=content, headers=headers)
    assert reply.status_code == status, reply.text
    assert set(reply.json()) == {"detail"}
    assert re.search(match, reply.json()["detail"]), reply.json()["detail"]
    assert post_json(client, {"inputs": images(2).tolist()}).status_code == 200
    assert server.alive()


def test_no_response_header_or_log_line_carries_the_clean_posteriors(
    client: httpx.Client, server: Server, victim_dir: Path
) -> None:
    x = images(8, seed=5)
    model, _ = load_victim(victim_dir)
    with torch.no_grad():
        clean = torch.softmax(model(x).float(), dim=1)
    replies = [
        post_json(client, {"inputs": x.tolist()}),
        post_json(client, {"inputs": (x + 1.0).tolist()}),
        post_json(client, {"inputs": x[:, :, :4].tolist()}),
        client.post("/v1/predict", content=npy(x.numpy()), headers={"Content-Type": "application/x-npy"}),
    ]
    defended = torch.tensor(replies[0].json()["probabilities"])
    assert (defended - clean).abs().sum(dim=1).min() > 1e-3
    seen = "".join(reply.text + json.dumps(dict(reply.headers)) for reply in replies) + server.log.read_text()
    for value in clean.flatten().tolist():
        for text in (repr(value), f"{value:.6f}", f"{value:.6g}"):
            if len(text) >= 7:
                assert text not in seen, f"clean probability {text} leaked"


def test_knockoff_through_http_steals_the_same_replica_as_in_process(server: Server, victim_dir: Path) -> None:
    settings_ = {"attack": "knockoff", "attack_params": {"epochs": 2}, "queryset": "digits", "budget": 400, "seed": 0}
    # The server's --seed (0 here) is the defender's seed; the attacker's seed is the client's.
    local = run_attack(victim=victim_dir, defense=DEFENSE, defense_seed=0, device="cpu", progress=False, **settings_)
    remote = run_remote_attack(target=server.url, device="cpu", progress=False, **settings_)
    assert remote["attacker_accuracy"] == local["attacker_accuracy"]
    assert remote["queries_used"] == local["queries_used"] == 400
    assert remote["fidelity"] is not None and 0.0 <= remote["fidelity"] <= 1.0
    assert remote["fidelity_queries"] == remote["test_size"] and "defender_accuracy" not in remote


def test_remote_black_box_reports_the_victims_shape(server: Server) -> None:
    with RemoteBlackBox(server.url, budget=10) as remote:
        assert remote.input_shape == SHAPE and remote.num_classes == 10 and remote.remaining == 10
        assert remote.query(images(3)).shape == (3, 10)
        assert remote.queries_used == 3 and remote.remaining == 7


def test_adaptive_misinformation_is_served_with_the_model_saved_beside_the_victim(
    victim_dir: Path, tmp_path: Path
) -> None:
    import shutil

    victim = tmp_path / "victim"
    shutil.copytree(victim_dir, victim)
    running = Server(victim, tmp_path / "data", tmp_path / "server.log", "--defense", "adaptive_misinformation",
                     "--data-root", str(tmp_path / "no-data-needed-for-digits"))
    try:
        x = images(5, seed=3)
        reply = httpx.post(f"{running.url}/v1/predict", json={"inputs": x.tolist()}, timeout=30.0)
        assert reply.status_code == 200
        model, card = load_victim(victim)
        defense, _ = build_defense("adaptive_misinformation", card=card, seed=0, victim_dir=victim)
        expected = BlackBox(model, defense, device="cpu").query(x)
        assert np.allclose(reply.json()["probabilities"], expected.numpy(), atol=1e-6)
    finally:
        running.stop()
    assert (victim / "misinformation" / "card.json").is_file()
