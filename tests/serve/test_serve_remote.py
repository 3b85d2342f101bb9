"""RemoteBlackBox against a scripted transport: retries, backoff, refusals, local checks."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import numpy as np
import pytest
import torch

from stealguard.blackbox import BudgetExceededError
from stealguard.serve import RemoteBlackBox, RemoteError

CARD = {"input_shape": [1, 2, 2], "num_classes": 3, "max_batch": 4, "arch": "mlp", "dataset": "digits"}


def scripted(predict: Callable[[httpx.Request, int], httpx.Response], usage: dict | None = None) -> httpx.MockTransport:
    """A transport answering /v1/model and /v1/usage, and /v1/predict with ``predict(request, call_index)``."""
    calls = {"n": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/model":
            return httpx.Response(200, json=CARD)
        if request.url.path == "/v1/usage":
            return httpx.Response(200, json=usage or {"key": "anonymous", "used": 0, "quota": None, "remaining": None})
        calls["n"] += 1
        return predict(request, calls["n"])

    return httpx.MockTransport(handle)


def uniform(request: httpx.Request) -> httpx.Response:
    batch = np.load(io.BytesIO(request.content)).shape[0]
    return httpx.Response(200, json={"probabilities": [[1 / 3] * 3] * batch, "labels": [0] * batch})


def box(transport: httpx.MockTransport, waits: list[float], **kwargs: object) -> RemoteBlackBox:
    return RemoteBlackBox("http://test", transport=transport, sleep=waits.append, **kwargs)


def test_query_splits_into_server_sized_batches_and_counts() -> None:
    sizes: list[int] = []

    def predict(request: httpx.Request, _: int) -> httpx.Response:
        assert request.headers["content-type"] == "application/x-npy"
        sizes.append(np.load(io.BytesIO(request.content)).shape[0])
        return uniform(request)

    remote = box(scripted(predict), [], batch_size=100, budget=20)
    answers = remote.query(torch.rand(10, 1, 2, 2, dtype=torch.float64))
    assert answers.shape == (10, 3) and answers.dtype == torch.float32
    assert sizes == [4, 4, 2] and remote.queries_used == 10 and remote.remaining == 10


def test_429_and_5xx_are_retried_honouring_retry_after() -> None:
    def predict(request: httpx.Request, call: int) -> httpx.Response:
        if call == 1:
            return httpx.Response(429, json={"detail": "rate"}, headers={"Retry-After": "3"})
        if call == 2:
            return httpx.Response(503, json={"detail": "busy"})
        return uniform(request)

    waits: list[float] = []
    remote = box(scripted(predict), waits, backoff=0.5)
    assert remote.query(torch.rand(2, 1, 2, 2)).shape == (2, 3)
    assert waits[0] == 3.0 and 1.0 <= waits[1] <= 1.1


def test_persistent_failure_raises_after_the_retries() -> None:
    waits: list[float] = []
    remote = box(scripted(lambda request, call: httpx.Response(500, json={"detail": "internal server error"})), waits, retries=2)
    with pytest.raises(RemoteError, match="HTTP 500: internal server error"):
        remote.query(torch.rand(1, 1, 2, 2))
    assert len(waits) == 2 and waits[1] > waits[0]


def test_client_errors_are_not_retried_and_quota_becomes_budget_exceeded() -> None:
    waits: list[float] = []
    refuse = box(scripted(lambda r, c: httpx.Response(422, json={"detail": "inputs must be pixels in [0, 1]"})), waits)
    with pytest.raises(RemoteError, match="HTTP 422: inputs must be pixels"):
        refuse.query(torch.rand(1, 1, 2, 2))
    exhausted = box(scripted(lambda r, c: httpx.Response(403, json={"detail": "query quota exhausted: 0 of 5 left"})), waits)
    with pytest.raises(BudgetExceededError, match="quota"):
        exhausted.query(torch.rand(1, 1, 2, 2))
    assert waits == []


def test_local_checks_send_nothing() -> None:
    def predict(request: httpx.Request, call: int) -> httpx.Response:
        raise AssertionError("nothing should be sent")

    remote = box(scripted(predict), [], budget=3)
    with pytest.raises(ValueError, match=r"shape \(N, 1, 2, 2\)"):
        remote.query(torch.rand(2, 1, 2, 3))
    with pytest.raises(ValueError, match="NaN or Inf"):
        remote.query(torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(TypeError, match="floating-point"):
        remote.query(torch.zeros(1, 1, 2, 2, dtype=torch.int64))
    with pytest.raises(BudgetExceededError, match="budget of 3"):
        remote.query(torch.rand(4, 1, 2, 2))
    with pytest.raises(NotImplementedError, match="defender-side"):
        remote.distortions()


def test_remaining_is_the_smaller_of_local_budget_and_server_quota() -> None:
    usage = {"key": "a", "used": 95, "quota": 100, "remaining": 5}
    assert box(scripted(lambda r, c: uniform(r), usage), [], budget=50).remaining == 5
    assert box(scripted(lambda r, c: uniform(r)), []).remaining is None


def test_unreachable_server_and_bad_url() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    waits: list[float] = []
    with pytest.raises(RemoteError, match="ConnectError"):
        RemoteBlackBox("http://test", transport=httpx.MockTransport(down), retries=1, sleep=waits.append)
    assert len(waits) == 1
    with pytest.raises(ValueError, match="http://"):
        RemoteBlackBox("ftp://x")
