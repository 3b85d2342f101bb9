"""API keys, per-key query quotas and rate limits, kept in a store (SQLite or PostgreSQL).

Keys live in a JSON file that holds only their SHA-256 digests (keys are 256-bit random
tokens, so a fast digest suffices; the plain key is shown once, by :func:`add_key`)::

    {"keys": [{"name": "alice", "sha256": "<hex>", "quota": 10000, "rate": 100.0, "burst": 1000}]}

``quota`` is the most queries (inputs) the key may ever spend, ``rate`` the sustained
queries per second and ``burst`` the token bucket's capacity (default ``max(rate, 1)``);
``null`` or absent means unlimited. When no key file is given every caller is the key
``anonymous`` with the server's own quota and rate.

:class:`AccessControl` charges a request's queries before inference in one transaction of
its :class:`~stealguard.serve.stores.Store` (the key's row locked), so several server processes,
on one machine (SQLite) or several (PostgreSQL), spend one quota and the counts survive a
restart. :meth:`AccessControl.reserve` charges the same way and remembers the charge as in
flight until the store settles it (answered) or releases it (not answered, or its server process
died). Refusals are :class:`AccessDenied` with the HTTP status (401 unknown key, 403 quota
exhausted, 413 batch above the burst, 429 rate limit with the seconds to wait).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stealguard._checks import check_int, check_number
from stealguard.serve.stores import Store, UsageRow, open_store

ANONYMOUS = "anonymous"
KEY_PREFIX = "sg_"


class AccessDenied(Exception):
    """A request refused by access control.

    Args:
        status: HTTP status (401, 403, 413 or 429).
        message: one line saying why.
        retry_after: seconds to wait before the request can succeed (429 only), else None.
    """

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True)
class KeyPolicy:
    """One API key's identity and limits.

    Args:
        name: non-empty label, unique in the key file; used in logs and the usage table.
        sha256: hex SHA-256 digest of the key ("" for the anonymous policy).
        quota: most queries ever, >= 0, or None for unlimited.
        rate: sustained queries per second, > 0, or None for unlimited.
        burst: token-bucket capacity in queries, >= 1 (default ``max(rate, 1)``); ignored without ``rate``.

    Raises:
        TypeError, ValueError: a field of the wrong type or out of range.
    """

    name: str
    sha256: str = ""
    quota: int | None = None
    rate: float | None = None
    burst: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"key name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.sha256, str):
            raise TypeError(f"key {self.name!r}: sha256 must be a hex string, got {type(self.sha256).__name__}")
        if self.quota is not None:
            check_int(f"key {self.name!r}: quota", self.quota, low=0)
        if self.rate is not None:
            object.__setattr__(self, "rate", check_number(f"key {self.name!r}: rate", self.rate, low=0.0, low_inclusive=False))
        if self.burst is not None:
            object.__setattr__(self, "burst", check_number(f"key {self.name!r}: burst", self.burst, low=1.0))
        elif self.rate is not None:
            object.__setattr__(self, "burst", max(self.rate, 1.0))


@dataclasses.dataclass(frozen=True)
class Usage:
    """Queries a key has spent and what is left (``remaining`` None when unlimited).

    ``reservation`` is the store's id of the charge when it came from :meth:`AccessControl.reserve`.
    """

    name: str
    used: int
    quota: int | None
    reservation: str | None = dataclasses.field(default=None, compare=False)

    @property
    def remaining(self) -> int | None:
        """``quota - used`` (never negative), or None without a quota."""
        return None if self.quota is None else max(self.quota - self.used, 0)


def hash_key(key: str) -> str:
    """Hex SHA-256 digest of an API key (what the key file stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (``sg_`` + 43 URL-safe characters, 256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def load_keys(path: str | os.PathLike[str]) -> list[KeyPolicy]:
    """Read a key file (format in the module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, wrong layout, duplicate names or digests, a bad field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"key file {str(path)!r} does not exist; create one with `stealguard keygen --keys {path} --name NAME`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"key file {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError(f"key file {path} must be a JSON object {{'keys': [...]}}")
    policies = []
    allowed = {f.name for f in dataclasses.fields(KeyPolicy)}
    for entry in data["keys"]:
        if not isinstance(entry, dict) or set(entry) - allowed or "sha256" not in entry or "name" not in entry:
            raise ValueError(f"key file {path}: every entry needs 'name' and 'sha256' and may hold only {sorted(allowed)}, got {entry!r}")
        try:
            policy = KeyPolicy(**entry)
        except (TypeError, ValueError) as err:
            raise ValueError(f"key file {path}: {err}") from None
        if len(policy.sha256) != 64 or any(c not in "0123456789abcdef" for c in policy.sha256):
            raise ValueError(f"key file {path}: key {policy.name!r} sha256 must be 64 lower-case hex digits")
        policies.append(policy)
    for field in ("name", "sha256"):
        values = [getattr(p, field) for p in policies]
        if len(set(values)) != len(values):
            raise ValueError(f"key file {path}: duplicate {field} among the keys")
    return policies


def add_key(
    path: str | os.PathLike[str], *, name: str, quota: int | None = None, rate: float | None = None, burst: float | None = None
) -> str:
    """Create a key, append its digest and limits to the key file (created if absent), return the key.

    The plain key is returned once and stored nowhere.

    Raises:
        ValueError: ``name`` already in the file, a limit out of range, or a malformed file.
    """
    path = Path(path)
    existing = load_keys(path) if path.exists() else []
    if any(p.name == name for p in existing):
        raise ValueError(f"key file {path} already holds a key named {name!r}")
    key = new_key()
    policy = KeyPolicy(name=name, sha256=hash_key(key), quota=quota, rate=rate, burst=burst)
    entries = [dataclasses.asdict(p) for p in [*existing, policy]]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"keys": entries}, indent=2) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return key


class AccessControl:
    """Authenticate API keys and charge queries against quotas and rate limits.

    Args:
        store: the store, or where to open one (a ``postgresql://`` URL or a SQLite file path,
            created if absent); a store passed in is not closed by :meth:`close`.
        keys: the key policies; None means no keys: every caller is ``anonymous``.
        anonymous: the anonymous caller's limits when ``keys`` is None (default unlimited).
        clock: wall-clock seconds (``time.time``), replaceable in tests.

    Raises:
        ValueError: an empty ``keys`` list.
        StoreError: the store cannot be opened.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str],
        *,
        keys: Sequence[KeyPolicy] | None = None,
        anonymous: KeyPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if keys is not None and not keys:
            raise ValueError("keys must hold at least one key, or be None for an open server")
        self._by_digest = None if keys is None else {p.sha256: p for p in keys}
        self._anonymous = anonymous if anonymous is not None else KeyPolicy(name=ANONYMOUS)
        self._clock = clock
        self._owned = not isinstance(store, Store)
        self.store = open_store(store) if not isinstance(store, Store) else store

    @property
    def keys_required(self) -> bool:
        """Whether callers must present a key."""
        return self._by_digest is not None

    def authenticate(self, api_key: str | None) -> KeyPolicy:
        """The policy of ``api_key`` (the anonymous one when no keys are configured).

        Raises:
            AccessDenied: 401 when keys are required and ``api_key`` is missing or unknown.
        """
        if self._by_digest is None:
            return self._anonymous
        if not api_key:
            raise AccessDenied(401, "an API key is required: send it in the X-API-Key header")
        digest = hash_key(api_key)
        for known, policy in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return policy
        raise AccessDenied(401, "unknown API key")

    def _decide(self, policy: KeyPolicy, n: int, now: float) -> Any:
        def decide(row: UsageRow) -> UsageRow:
            if policy.quota is not None and row.used + n > policy.quota:
                left = max(policy.quota - row.used, 0)
                raise AccessDenied(403, f"query quota exhausted: {left} of {policy.quota} queries left, this request needs {n}")
            tokens = row.tokens
            if policy.rate is not None:
                burst = float(policy.burst or 1.0)
                if n > burst:
                    raise AccessDenied(413, f"the batch of {n} inputs exceeds this key's burst of {burst:g} queries; send smaller batches")
                tokens = min(burst, tokens + max(now - row.stamp, 0.0) * policy.rate)
                if tokens < n:
                    wait = (n - tokens) / policy.rate
                    raise AccessDenied(429, f"rate limit of {policy.rate:g} queries/s exceeded; retry in {wait:.2f} s", retry_after=wait)
                tokens -= n
            return UsageRow(row.used + n, tokens, now)

        return decide

    def _charge(self, policy: KeyPolicy, n: int, *, reserve: bool) -> Usage:
        check_int("n", n, low=1)
        now = self._clock()
        fresh = UsageRow(0, float(policy.burst or 0.0), now)
        row, reservation = self.store.charge(policy.name, n, fresh=fresh, decide=self._decide(policy, n, now), reserve=reserve)
        return Usage(policy.name, row.used, policy.quota, reservation)

    def charge(self, policy: KeyPolicy, n: int) -> Usage:
        """Spend ``n`` queries of ``policy``'s quota and rate, atomically, or refuse all of them.

        Raises:
            AccessDenied: 403 quota exhausted (the message says how many remain), 413 ``n``
                above the key's burst (never satisfiable), 429 rate limit (``retry_after``
                seconds until the bucket holds ``n`` tokens).
            StoreError: the store failed.
        """
        return self._charge(policy, n, reserve=False)

    def reserve(self, policy: KeyPolicy, n: int) -> Usage:
        """:meth:`charge`, kept as in flight (``Usage.reservation``) until the store settles or releases it.

        A reservation whose server process dies before settling it is given back by the next
        sweep of any live process sharing the store.

        Raises:
            AccessDenied, StoreError: as :meth:`charge`.
        """
        return self._charge(policy, n, reserve=True)

    def release(self, spent: Usage) -> None:
        """Give back a reservation from :meth:`reserve` whose request was not answered (once)."""
        if spent.reservation is None:
            raise ValueError("release needs the Usage returned by reserve()")
        self.store.release(spent.reservation, name=spent.name)

    def refund(self, policy: KeyPolicy, n: int) -> None:
        """Give back ``n`` queries charged for a request that was not answered."""
        self.store.refund(policy.name, int(n))

    def usage(self, policy: KeyPolicy) -> Usage:
        """Queries ``policy`` has spent so far (reserved ones included)."""
        row = self.store.usage(policy.name)
        return Usage(policy.name, 0 if row is None else row.used, policy.quota)

    def close(self) -> None:
        """Close the store when this object opened it."""
        if self._owned:
            self.store.close()


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def describe(policy: KeyPolicy) -> dict[str, Any]:
    """The public part of a policy (no digest)."""
    return {"name": policy.name, "quota": policy.quota, "rate": policy.rate, "burst": policy.burst}
