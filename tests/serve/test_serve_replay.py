"""Idempotent retries: a repeated ``Idempotency-Key`` is answered from the store, never charged twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from stealguard.serve import RemoteBlackBox
from stealguard.serve.codec import InputError
from stealguard.serve.replay import ReplayStore, body_digest, check_idempotency_key
from tests.serve._server import Server

SHAPE = (1, 8, 8)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_store_answers_a_repeat_and_refuses_another_body(store_location: str) -> None:
    clock = _Clock()
    store = ReplayStore(store_location, ttl=60.0, clock=clock)
    digest = body_digest(b"body", "application/json")
    assert store.lookup("alice", "k1", digest) is None
    store.store("alice", "k1", digest, b'{"probabilities": [[1.0]]}')
    assert store.lookup("alice", "k1", digest) == b'{"probabilities": [[1.0]]}'
    assert store.lookup("bob", "k1", digest) is None
    with pytest.raises(InputError, match="already used with another request body") as refused:
        store.lookup("alice", "k1", body_digest(b"other", "application/json"))
    assert refused.value.status == 422
    store.store("alice", "k1", digest, b"second")
    assert store.lookup("alice", "k1", digest) == b'{"probabilities": [[1.0]]}'
    clock.now += 61.0
    assert store.lookup("alice", "k1", digest) is None
    store.store("alice", "k2", digest, b"fresh")
    assert store.lookup("alice", "k2", digest) == b"fresh"
    store.close()


def test_digest_depends_on_body_and_content_type() -> None:
    assert body_digest(b"x", "a") == body_digest(b"x", "a")
    assert len({body_digest(b"x", "a"), body_digest(b"y", "a"), body_digest(b"x", "b"), body_digest(b"x", None)}) == 4


@pytest.mark.parametrize("key", ["", "a b", "x" * 129, "ключ", "a/b"])
def test_malformed_keys_are_400(key: str) -> None:
    with pytest.raises(InputError, match="Idempotency-Key") as refused:
        check_idempotency_key(key)
    assert refused.value.status == 400


def test_ttl_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ttl"):
        ReplayStore(tmp_path / "r.sqlite", ttl=0.0)


@pytest.fixture(scope="module")
def server(victim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("replay-server")
    running = Server(victim_dir, root / "data", root / "server.log", "--defense", "reverse_sigmoid", "--quota", "1000")
    yield running
    running.stop()


def _used(client: httpx.Client) -> int:
    return int(client.get("/v1/usage").json()["used"])


def _inputs(n: int, seed: int) -> list:
    return np.random.default_rng(seed).random((n, *SHAPE), dtype=np.float32).tolist()


def test_a_repeat_is_answered_again_without_a_charge(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        before = _used(client)
        body = {"inputs": _inputs(4, 0)}
        first = client.post("/v1/predict", json=body, headers={"Idempotency-Key": "batch-1"})
        again = client.post("/v1/predict", json=body, headers={"Idempotency-Key": "batch-1"})
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        assert _used(client) == before + 4 and again.headers["X-Queries-Used"] == str(before + 4)

        other = client.post("/v1/predict", json={"inputs": _inputs(4, 1)}, headers={"Idempotency-Key": "batch-1"})
        assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
        bad = client.post("/v1/predict", json=body, headers={"Idempotency-Key": "not a key"})
        assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["detail"]
        plain = client.post("/v1/predict", json=body)
        assert plain.status_code == 200 and _used(client) == before + 8
        assert server.alive()


class _LosesFirstResponse(httpx.BaseTransport):
    """Delivers every request, but the caller never sees the first response (a dropped connection)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == "/v1/predict":
            self.keys.append(request.headers.get("Idempotency-Key"))
            if len(self.keys) == 1:
                response.read()
                response.close()
                raise httpx.ReadTimeout("response lost", request=request)
        return response


def test_remote_client_retry_after_a_lost_response_is_charged_once(server: Server) -> None:
    transport = _LosesFirstResponse()
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        before = _used(client)
        x = torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(2))
        with RemoteBlackBox(server.url, transport=transport, sleep=lambda _s: None, batch_size=5) as box:
            answers = box.query(x)
            assert box.queries_used == 5
        assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1] is not None
        assert _used(client) == before + 5
        assert answers.shape == (5, 10) and torch.allclose(answers.sum(dim=1), torch.ones(5), atol=1e-5)
