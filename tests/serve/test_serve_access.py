"""Keys, quotas and rate limits: refusals, atomic charging and persistence across restarts."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from stealguard.serve.access import AccessControl, AccessDenied, KeyPolicy, add_key, hash_key, load_keys
from stealguard.serve.stores import Store, open_store
from stealguard.serve.stores.sqlite import SqliteStore


class Clock:
    """A settable wall clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_key_file_stores_only_digests_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key = add_key(path, name="alice", quota=10)
    add_key(path, name="bob", rate=5.0)
    assert key not in path.read_text() and hash_key(key) in path.read_text()
    policies = {p.name: p for p in load_keys(path)}
    assert policies["alice"].quota == 10 and policies["bob"].burst == 5.0
    with pytest.raises(ValueError, match="already holds a key named 'alice'"):
        add_key(path, name="alice")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{", "not valid JSON"),
        ('{"keys": 3}', "must be a JSON object"),
        ('{"keys": [{"name": "a"}]}', "needs 'name' and 'sha256'"),
        ('{"keys": [{"name": "a", "sha256": "xyz"}]}', "64 lower-case hex"),
        (json.dumps({"keys": [{"name": "a", "sha256": "0" * 64, "quota": -1}]}), "quota must be an integer in"),
        (json.dumps({"keys": [{"name": "a", "sha256": "0" * 64}, {"name": "a", "sha256": "1" * 64}]}), "duplicate name"),
    ],
)
def test_bad_key_files_are_refused_with_the_reason(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_keys(path)


def test_missing_key_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_keys(tmp_path / "nope.json")


def test_unknown_or_missing_key_is_401(store_location: str) -> None:
    access = AccessControl(store_location, keys=[KeyPolicy(name="a", sha256=hash_key("secret"))])
    assert access.authenticate("secret").name == "a"
    for given, match in ((None, "X-API-Key"), ("", "X-API-Key"), ("wrong", "unknown API key")):
        with pytest.raises(AccessDenied, match=match) as caught:
            access.authenticate(given)
        assert caught.value.status == 401
    access.close()


def test_quota_refuses_whole_batches_and_survives_a_restart(store_location: str) -> None:
    policy = KeyPolicy(name="a", sha256=hash_key("k"), quota=10)
    access = AccessControl(store_location, keys=[policy])
    assert access.charge(policy, 6).remaining == 4
    with pytest.raises(AccessDenied, match="4 of 10 queries left, this request needs 5") as caught:
        access.charge(policy, 5)
    assert caught.value.status == 403
    access.close()
    reopened = AccessControl(store_location, keys=[policy])
    assert reopened.usage(policy).used == 6
    assert reopened.charge(policy, 4).remaining == 0
    reopened.refund(policy, 2)
    assert reopened.usage(policy).remaining == 2
    reopened.close()


def test_rate_limit_is_a_token_bucket_with_retry_after(store_location: str) -> None:
    clock = Clock()
    policy = KeyPolicy(name="anonymous", rate=10.0, burst=20.0)
    access = AccessControl(store_location, anonymous=policy, clock=clock)
    access.charge(policy, 20)
    with pytest.raises(AccessDenied, match="rate limit of 10 queries/s") as caught:
        access.charge(policy, 5)
    assert caught.value.status == 429 and caught.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    assert access.charge(policy, 5).used == 25
    with pytest.raises(AccessDenied, match="exceeds this key's burst of 20") as caught:
        access.charge(policy, 21)
    assert caught.value.status == 413
    access.close()


def test_refused_charges_spend_nothing(store_location: str) -> None:
    clock = Clock()
    policy = KeyPolicy(name="anonymous", quota=100, rate=1.0, burst=3.0)
    access = AccessControl(store_location, anonymous=policy, clock=clock)
    access.charge(policy, 3)
    with pytest.raises(AccessDenied):
        access.charge(policy, 1)
    assert access.usage(policy).used == 3
    access.close()


def test_a_reservation_is_given_back_once_and_a_plain_charge_is_kept(store_location: str) -> None:
    policy = KeyPolicy(name="anonymous", quota=10)
    access = AccessControl(store_location, anonymous=policy)
    spent = access.reserve(policy, 4)
    assert spent.used == 4 and spent.reservation is not None and access.store.pending() == 4
    access.release(spent)
    access.release(spent)
    assert access.usage(policy).used == 0 and access.store.pending() == 0
    access.charge(policy, 3)
    assert access.store.pending() == 0 and access.usage(policy).used == 3
    with pytest.raises(ValueError, match="reserve"):
        access.release(access.charge(policy, 1))
    access.close()


def test_settling_writes_the_log_rows_and_recharges_a_swept_reservation(store_location: str) -> None:
    policy = KeyPolicy(name="anonymous")
    access = AccessControl(store_location, anonymous=policy)
    spent = access.reserve(policy, 2)
    assert spent.reservation is not None
    access.store.settle(spent.reservation, name="anonymous", n=2, log=[("anonymous", 1.0, "a" * 64), ("anonymous", 1.0, "b" * 64)])
    access.store.settle("never-reserved", name="anonymous", n=1, log=[("anonymous", 2.0, "c" * 64)])
    [summary] = access.store.log_summary()
    assert (summary.key, summary.count) == ("anonymous", 3) and access.usage(policy).used == 3
    assert access.store.pending() == 0
    access.close()


def test_concurrent_charges_from_two_stores_spend_a_quota_exactly_once(store_location: str) -> None:
    policy = KeyPolicy(name="anonymous", quota=20)
    first = AccessControl(store_location, anonymous=policy)
    second = AccessControl(store_location, anonymous=policy)

    def attempt(i: int) -> int:
        try:
            (first if i % 2 else second).reserve(policy, 1)
        except AccessDenied as err:
            return err.status
        return 200

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(attempt, range(50)))
    assert statuses == [200] * 20 + [403] * 30
    assert first.usage(policy).used == 20 and second.store.pending() == 20
    first.close()
    second.close()


def _sweep_until_given(store: Store, deadline_s: float = 60.0) -> int:
    """Sweep until something is given back: the server notices a killed client's connection
    asynchronously (PostgreSQL ends its session, and the advisory lock, a moment after the kill)."""
    deadline = time.monotonic() + deadline_s
    while (given := store.sweep()) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return given


_KILLED = """
import os, signal, sys
from stealguard.serve.access import AccessControl, KeyPolicy
policy = KeyPolicy(name="anonymous", quota=100)
access = AccessControl(sys.argv[1], anonymous=policy)
access.reserve(policy, 7)
access.charge(policy, 2)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_reservations_of_a_killed_process_are_swept_and_a_live_ones_are_not(store_location: str) -> None:
    policy = KeyPolicy(name="anonymous", quota=100)
    access = AccessControl(open_store(store_location, sweep_interval=3600.0), anonymous=policy)
    live = access.reserve(policy, 5)
    done = subprocess.run([sys.executable, "-c", _KILLED, store_location], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert access.usage(policy).used == 14 and access.store.pending() == 12
    assert _sweep_until_given(access.store) == 7 and access.store.sweep() == 0
    assert access.usage(policy).used == 7 and access.store.pending() == 5
    access.release(live)
    assert access.usage(policy).used == 2
    access.store.close()


def test_the_files_of_earlier_versions_are_imported_once(tmp_path: Path) -> None:
    legacy = tmp_path / "usage.sqlite"
    with closing(sqlite3.connect(legacy)) as db, db:
        db.execute("CREATE TABLE usage (name TEXT PRIMARY KEY, used INTEGER NOT NULL, tokens REAL NOT NULL, stamp REAL NOT NULL)")
        db.execute("INSERT INTO usage VALUES ('alice', 7, 0.0, 1.0)")
    policy = KeyPolicy(name="alice", sha256=hash_key("k"), quota=10)
    for _ in range(2):
        store = SqliteStore(tmp_path / "serve.sqlite")
        store.import_legacy(usage=legacy, queries=tmp_path / "queries.sqlite", replays=tmp_path / "replays.sqlite")
        access = AccessControl(store, keys=[policy])
        assert access.usage(policy).used == 7
        store.close()


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_the_sweep_interval_is_checked(tmp_path: Path, interval: float) -> None:
    with pytest.raises(ValueError, match="sweep_interval"):
        open_store(tmp_path / "s.sqlite", sweep_interval=interval)
