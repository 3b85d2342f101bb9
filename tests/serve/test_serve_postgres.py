"""Serving on more than one host: server processes sharing one PostgreSQL store.

The store's behaviour (quotas, rate limits, refunds, replays, the query log) is tested on both
back ends by the parametrized tests beside this file; here: two ``stealguard serve`` processes on
one database (and, for comparison, on one SQLite data directory), a kill -9 in the middle of the
load, and the PostgreSQL-specific connection handling.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import httpx
import numpy as np
import pytest

from stealguard.cli import main
from stealguard.serve.access import AccessControl, KeyPolicy, add_key
from stealguard.serve.app import STORE_DB
from stealguard.serve.stores import StoreError, is_url, open_store
from stealguard.serve.stores.postgres import PostgresStore, redact
from tests._postgres import PostgresServer
from tests.serve._server import Server, free_port

SHAPE = (1, 8, 8)
BODY = {"inputs": np.full((1, *SHAPE), 0.25).tolist()}


def _post(url: str, key: str, idempotency_key: str | None = None) -> httpx.Response:
    headers = {"X-API-Key": key, **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
    return httpx.post(f"{url}/v1/predict", json=BODY, headers=headers, timeout=120.0)


def _scalar(location: str, sql: str, *params: object) -> int:
    """One number from the store at ``location`` (a PostgreSQL URL or a SQLite file), read directly; ``?`` placeholders."""
    if is_url(location):
        import psycopg

        with psycopg.connect(location) as conn:
            (value,) = conn.execute(sql.replace("?", "%s"), params).fetchone()
    else:
        with closing(sqlite3.connect(location, timeout=30.0)) as conn:
            (value,) = conn.execute(sql, params).fetchone()
    return int(value or 0)


def _wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 120.0) -> None:
    """Poll ``condition`` until it holds (the store's sweepers run every few seconds)."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {deadline_s} s")
        time.sleep(0.1)


def _kill_holding_reservations(server: Server, location: str, deadline_s: float = 120.0) -> int:
    """SIGSTOP ``server`` until it is caught holding reservations (requests charged, not yet
    answered), then SIGKILL it; the queries it held. Polls with a deadline, never a fixed wait."""
    owner = re.search(r"reserves as ([0-9a-f]{32})", server.output())
    assert owner is not None, server.output()[-2000:]
    deadline = time.monotonic() + deadline_s
    while True:
        os.kill(server.process.pid, signal.SIGSTOP)
        held = _scalar(location, "SELECT SUM(n) FROM reservations WHERE owner = ?", owner.group(1))
        if held or time.monotonic() > deadline:
            server.kill()
            return held
        os.kill(server.process.pid, signal.SIGCONT)
        time.sleep(0.005)


class _Load:
    """Requests with idempotency keys over two servers; a request whose server dies is sent again,
    same key, to the other one, until it is answered. Counts answers per request and transport errors."""

    def __init__(self, servers: list[Server], key: str) -> None:
        self.servers, self.key = servers, key
        self.answered: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.transport_errors = 0
        self.done = 0
        self._lock = threading.Lock()
        self.progress = threading.Condition(self._lock)

    def one(self, i: int) -> None:
        request_id = uuid.uuid4().hex
        target = i % 2
        while True:
            try:
                reply = _post(self.servers[target].url, self.key, request_id)
            except httpx.TransportError:
                with self._lock:
                    self.transport_errors += 1
                target = 1 - target
                continue
            with self.progress:
                self.statuses[reply.status_code] += 1
                if reply.status_code == 200:
                    self.answered[request_id] += 1
                self.done += 1
                self.progress.notify_all()
            return


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_two_servers_share_one_quota_and_a_kill_9_loses_nothing(
    backend: str, victim_dir: Path, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two ``serve`` processes on one store (PostgreSQL: as on two hosts; SQLite: one machine, one
    --data-dir): one quota, and a kill -9 mid-load leaves used = answered = logged."""
    keys = tmp_path / "keys.json"
    dave = add_key(keys, name="dave", quota=20)
    erin = add_key(keys, name="erin", quota=1000)
    if backend == "postgresql":
        location = request.getfixturevalue("postgres").create_database()
        store_args: tuple[str, ...] = ("--store", location)
        data_dirs = {"a": tmp_path / "a", "b": tmp_path / "b"}
    else:
        location = str(tmp_path / "shared" / STORE_DB)
        store_args = ()
        data_dirs = {"a": tmp_path / "shared", "b": tmp_path / "shared"}
    args = ("--keys", str(keys), *store_args)
    with ThreadPoolExecutor(max_workers=2) as pool:
        servers = list(pool.map(lambda name: Server(victim_dir, data_dirs[name], tmp_path / f"{name}.log", *args), ["a", "b"]))
    try:
        # 50 concurrent requests, alternating between the two servers, on a quota of 20.
        with ThreadPoolExecutor(max_workers=10) as pool:
            replies = list(pool.map(lambda i: _post(servers[i % 2].url, dave), range(50)))
        assert Counter(r.status_code for r in replies) == {200: 20, 403: 30}
        assert sorted(int(r.headers["X-Quota-Remaining"]) for r in replies if r.status_code == 200) == list(range(20))
        assert {r.status_code for r in replies[0::2]} == {r.status_code for r in replies[1::2]} == {200, 403}

        # Load on both servers; server a is killed (SIGKILL) while it holds charged, unanswered
        # requests, restarted on its port, and the load goes on.
        load = _Load(servers, erin)
        killed = threading.Event()

        def client(w: int) -> None:
            """Requests until the kill, then three more (clients 0, 2, 4 send to a first, 1, 3, 5 to b)."""
            i, after = w, 0
            while after < 3:
                load.one(i)
                i += 6
                if killed.is_set():
                    after += 1

        with ThreadPoolExecutor(max_workers=6) as pool:
            clients = [pool.submit(client, w) for w in range(6)]
            with load.progress:
                load.progress.wait_for(lambda: load.done >= 10)
            held = _kill_holding_reservations(servers[0], location)
            killed.set()
            for future in clients:
                future.result()
        servers[0] = Server(victim_dir, data_dirs["a"], tmp_path / "a.log", *args, port=servers[0].port)
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(load.one, range(10_000, 10_040)))

        def pending() -> int:
            return _scalar(location, "SELECT SUM(n) FROM reservations")

        _wait_for(lambda: pending() == 0, "reservations of the killed server given back")
        used = _scalar(location, "SELECT used FROM usage WHERE name = ?", "erin")
        logged = _scalar(location, "SELECT COUNT(*) FROM queries WHERE key = ?", "erin")
        answered = sum(load.answered.values())
        assert held > 0 and load.statuses == {200: load.done} and set(load.answered.values()) == {1}
        assert used == answered == logged == load.done
        assert _scalar(location, "SELECT used FROM usage WHERE name = ?", "dave") == 20
        assert _scalar(location, "SELECT COUNT(*) FROM queries WHERE key = ?", "dave") == 20
        for server in servers:
            reply = httpx.get(f"{server.url}/v1/usage", headers={"X-API-Key": erin}, timeout=30.0)
            assert reply.json()["used"] == used
        given_back = sum(s.output().count("gave back") for s in servers)
        assert given_back >= 1
        with capsys.disabled():
            print(
                f"\n[{backend} acceptance] quota 20: {dict(Counter(r.status_code for r in replies))}; after kill -9 + restart: "
                f"answered={answered} used={used} log rows={logged}; queries reserved by the killed server={held}, "
                f"transport errors (retried)={load.transport_errors}, sweeps that gave back={given_back}"
            )
    finally:
        for server in servers:
            server.stop()
    logs = "".join((tmp_path / f"{name}.log").read_text() for name in ("a", "b"))
    assert dave not in logs and erin not in logs


def test_an_unreachable_store_is_one_line_and_exit_2_before_serving(victim_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://alice:s3cret-pw@127.0.0.1:{free_port()}/quotas"
    assert main(["serve", "--victim", str(victim_dir), "--store", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the PostgreSQL store postgresql://alice:***@127.0.0.1" in err
    assert "s3cret-pw" not in err


def test_a_store_url_must_be_postgresql(victim_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--victim", str(victim_dir), "--store", "mysql://bob:pw@host/db"]) == 2
    err = capsys.readouterr().err
    assert "store must be a postgresql://" in err and "pw" not in err
    with pytest.raises(StoreError, match="unsupported store 'mysql'"):
        open_store("mysql://bob:pw@host/db")


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://u:p%40ss@db.example:5433/q?sslmode=require") == "postgresql://u:***@db.example:5433/q?sslmode=require"
    assert redact("postgresql://u@h/q") == "postgresql://u@h/q"


def test_a_dropped_connection_is_replaced(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    policy = KeyPolicy(name="anonymous", quota=10)
    access = AccessControl(url, anonymous=policy)
    assert isinstance(access.store, PostgresStore)
    access.charge(policy, 2)
    database = url.rsplit("/", 1)[1]
    killed = _scalar(
        postgres.url(), "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        database,
    )
    assert killed >= 2
    assert access.charge(policy, 3).used == 5
    assert access.store.sweep() == 0 and access.usage(policy).used == 5
    access.close()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_a_failing_store_gets_503_and_no_answer_goes_out_unrecorded(
    backend: str, victim_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from fastapi.testclient import TestClient

    from stealguard.serve.app import ServeConfig, create_app

    if backend == "postgresql":
        location = request.getfixturevalue("postgres").create_database()
        config = ServeConfig(victim=str(victim_dir), data_dir=str(tmp_path), store=location, quota=100)
    else:
        location = str(tmp_path / STORE_DB)
        config = ServeConfig(victim=str(victim_dir), data_dir=str(tmp_path), quota=100)
    with TestClient(create_app(config)) as client:
        assert client.post("/v1/predict", json=BODY).status_code == 200
        _execute(location, "DROP TABLE queries")
        refused = client.post("/v1/predict", json=BODY)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert refused.json() == {"detail": "the quota store is unavailable; retry later"}
        assert client.get("/v1/usage").json()["used"] == 1
        _execute(location, "DROP TABLE usage")
        assert client.post("/v1/predict", json=BODY).status_code == 503
        usage = client.get("/v1/usage")
        assert usage.status_code == 503 and usage.headers["Retry-After"] == "1"
        _execute(location, "DROP TABLE replays")
        replay = client.post("/v1/predict", json=BODY, headers={"Idempotency-Key": "k-1"})
        assert replay.status_code == 503 and replay.json() == {"detail": "the quota store is unavailable; retry later"}
        assert client.get("/healthz").status_code == 200


def _execute(location: str, sql: str) -> None:
    if is_url(location):
        import psycopg

        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute(sql)
    else:
        with closing(sqlite3.connect(location, timeout=30.0)) as conn:
            conn.execute(sql)
