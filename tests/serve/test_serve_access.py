"""Keys, quotas and rate limits: refusals, atomic charging and persistence across restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stealguard.serve.access import AccessControl, AccessDenied, KeyPolicy, add_key, hash_key, load_keys


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


def test_unknown_or_missing_key_is_401(tmp_path: Path) -> None:
    access = AccessControl(tmp_path / "u.sqlite", keys=[KeyPolicy(name="a", sha256=hash_key("secret"))])
    assert access.authenticate("secret").name == "a"
    for given, match in ((None, "X-API-Key"), ("", "X-API-Key"), ("wrong", "unknown API key")):
        with pytest.raises(AccessDenied, match=match) as caught:
            access.authenticate(given)
        assert caught.value.status == 401


def test_quota_refuses_whole_batches_and_survives_a_restart(tmp_path: Path) -> None:
    policy = KeyPolicy(name="a", sha256=hash_key("k"), quota=10)
    access = AccessControl(tmp_path / "u.sqlite", keys=[policy])
    assert access.charge(policy, 6).remaining == 4
    with pytest.raises(AccessDenied, match="4 of 10 queries left, this request needs 5") as caught:
        access.charge(policy, 5)
    assert caught.value.status == 403
    access.close()
    reopened = AccessControl(tmp_path / "u.sqlite", keys=[policy])
    assert reopened.usage(policy).used == 6
    assert reopened.charge(policy, 4).remaining == 0
    reopened.refund(policy, 2)
    assert reopened.usage(policy).remaining == 2


def test_rate_limit_is_a_token_bucket_with_retry_after(tmp_path: Path) -> None:
    clock = Clock()
    policy = KeyPolicy(name="anonymous", rate=10.0, burst=20.0)
    access = AccessControl(tmp_path / "u.sqlite", anonymous=policy, clock=clock)
    access.charge(policy, 20)
    with pytest.raises(AccessDenied, match="rate limit of 10 queries/s") as caught:
        access.charge(policy, 5)
    assert caught.value.status == 429 and caught.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    assert access.charge(policy, 5).used == 25
    with pytest.raises(AccessDenied, match="exceeds this key's burst of 20") as caught:
        access.charge(policy, 21)
    assert caught.value.status == 413


def test_refused_charges_spend_nothing(tmp_path: Path) -> None:
    clock = Clock()
    policy = KeyPolicy(name="anonymous", quota=100, rate=1.0, burst=3.0)
    access = AccessControl(tmp_path / "u.sqlite", anonymous=policy, clock=clock)
    access.charge(policy, 3)
    with pytest.raises(AccessDenied):
        access.charge(policy, 1)
    assert access.usage(policy).used == 3
