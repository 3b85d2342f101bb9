"""End to end with API keys: 401 without a key, quotas (403) that survive a restart, rate
limits (429 + Retry-After) that RemoteBlackBox rides out, and the forensic query log."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from stealguard.blackbox import BudgetExceededError
from stealguard.serve import RemoteBlackBox, RemoteError
from stealguard.serve.access import add_key
from stealguard.serve.app import STORE_DB
from stealguard.serve.forensics import summarize
from tests.serve._server import Server

SHAPE = (1, 8, 8)


def batch(n: int) -> bytes:
    return json.dumps({"inputs": np.full((n, *SHAPE), 0.25).tolist()}).encode()


def predict(url: str, key: str | None, n: int) -> httpx.Response:
    headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key is not None else {})}
    return httpx.post(f"{url}/v1/predict", content=batch(n), headers=headers, timeout=30.0)


def test_keys_quotas_rate_limits_and_restart(victim_dir: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    alice = add_key(keys, name="alice", quota=300)
    bob = add_key(keys, name="bob", rate=100.0, burst=100.0)
    data, log = tmp_path / "data", tmp_path / "server.log"
    server = Server(victim_dir, data, log, "--keys", str(keys))
    try:
        assert httpx.get(f"{server.url}/v1/model").json()["keys_required"] is True
        for key, match in ((None, "X-API-Key"), ("sg_wrong", "unknown API key")):
            reply = predict(server.url, key, 1)
            assert reply.status_code == 401 and match in reply.json()["detail"]
        with pytest.raises(RemoteError, match="HTTP 401"):
            RemoteBlackBox(server.url, "sg_wrong").server_usage()

        first = predict(server.url, alice, 200)
        assert first.status_code == 200 and first.headers["X-Quota-Remaining"] == "100"
        refused = predict(server.url, alice, 150)
        assert refused.status_code == 403 and "100 of 300 queries left, this request needs 150" in refused.json()["detail"]

        assert predict(server.url, bob, 100).status_code == 200
        limited = predict(server.url, bob, 100)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        with RemoteBlackBox(server.url, bob, backoff=0.1) as remote:
            assert remote.query(torch.full((100, *SHAPE), 0.5)).shape == (100, 10)
    finally:
        server.stop()

    restarted = Server(victim_dir, data, log, "--keys", str(keys))
    try:
        with RemoteBlackBox(restarted.url, alice) as remote:
            assert remote.server_usage()["used"] == 200 and remote.remaining == 100
            remote.query(torch.full((100, *SHAPE), 0.5))
            assert remote.remaining == 0
            with pytest.raises(BudgetExceededError, match="quota"):
                remote.query(torch.full((1, *SHAPE), 0.5))
    finally:
        restarted.stop()

    summary = summarize(data / STORE_DB)
    assert summary["alice"]["count"] == 300 and summary["alice"]["distinct"] == 2
    assert summary["bob"]["count"] == 200
    assert alice not in log.read_text() and bob not in log.read_text()


def test_two_workers_share_one_quota_under_concurrent_requests(victim_dir: Path, tmp_path: Path) -> None:
    """``--workers 2``: concurrent requests on fresh connections, whichever process accepts each,
    spend the key's quota exactly once (the SQLite charge is one transaction across processes);
    start-up waits until both worker processes report ready."""
    from concurrent.futures import ThreadPoolExecutor

    keys = tmp_path / "keys.json"
    carol = add_key(keys, name="carol", quota=100)
    data, log = tmp_path / "data", tmp_path / "server.log"
    server = Server(victim_dir, data, log, "--keys", str(keys), "--workers", "2")
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            replies = list(pool.map(lambda _: predict(server.url, carol, 5), range(32)))
    finally:
        server.stop()
    statuses = sorted(reply.status_code for reply in replies)
    assert statuses == [200] * 20 + [403] * 12
    remaining = sorted(int(reply.headers["X-Quota-Remaining"]) for reply in replies if reply.status_code == 200)
    assert remaining == list(range(0, 100, 5))
    assert log.read_text().count("Started server process") == 2
    assert summarize(data / STORE_DB)["carol"]["count"] == 100
