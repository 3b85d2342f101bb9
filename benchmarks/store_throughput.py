"""Cost of the serving store per request: SQLite against PostgreSQL, charge-only against reserve + settle.

A served request costs the store one transaction per charge; since the query log and the replays
are written in the transaction that settles the charge (so that a kill -9 cannot leave an answer
unlogged), an answered request costs two: ``reserve`` before inference and ``settle`` (reservation
closed, one query-log row written) after it. This script times both paths on both back ends:

* ``latency``: microseconds per request from one thread, the paths timed interleaved over rounds
  (median over rounds; :mod:`benchmarks._timing`).
* ``throughput``: requests per second from ``--threads`` threads spread over two store objects
  (two connections or pools, as two server processes would hold), ``--requests`` in all.

PostgreSQL: ``--store postgresql://...`` (an empty database: the tables are created), or by default
a throwaway server on loopback started with ``initdb`` as the test suite does (``tests/_postgres.py``,
which runs it with ``fsync=off`` and ``synchronous_commit=off``: commits do not wait for the disk, so
a production server with durable commits pays more per transaction than these rows show).
Rows go to ``benchmarks/results/store/store_throughput.csv``.

Run:  python benchmarks/store_throughput.py                 (about a minute)
      python benchmarks/store_throughput.py --quick
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stealguard.serve.access import AccessControl, KeyPolicy
from stealguard.serve.stores import Store, open_store

from _timing import time_rounds

OUT = REPO / "benchmarks" / "results" / "store" / "store_throughput.csv"
POLICY = KeyPolicy(name="bench", quota=None)
ROW = ("bench", 0.0, "0" * 64)


def _paths(store: Store) -> dict[str, Callable[[], object]]:
    access = AccessControl(store, anonymous=POLICY)

    def charge() -> None:
        access.charge(POLICY, 1)

    def reserve_settle() -> None:
        spent = access.reserve(POLICY, 1)
        assert spent.reservation is not None
        store.settle(spent.reservation, name=POLICY.name, n=1, log=[ROW])

    return {"charge": charge, "reserve+settle": reserve_settle}


def _throughput(stores: list[Store], path: str, *, threads: int, requests: int) -> float:
    paths = [_paths(store)[path] for store in stores]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda i: paths[i % len(paths)](), range(requests)))
    return requests / (time.perf_counter() - start)


def measure(backend: str, location: str, *, rounds: int, budget_s: float, threads: int, requests: int) -> list[dict[str, object]]:
    """The rows of one back end at ``location``."""
    stores = [open_store(location), open_store(location)]
    try:
        rows: list[dict[str, object]] = []
        samples = time_rounds(_paths(stores[0]), rounds=rounds, budget_s=budget_s)
        for path, values in samples.items():
            rows.append({"backend": backend, "measure": "latency", "path": path, "threads": 1,
                         "value": round(statistics.median(values) * 1e6, 1), "unit": "us/request"})
        for path in ("charge", "reserve+settle"):
            rate = _throughput(stores, path, threads=threads, requests=requests)
            rows.append({"backend": backend, "measure": "throughput", "path": path, "threads": threads,
                         "value": round(rate, 1), "unit": "requests/s"})
        return rows
    finally:
        for store in stores:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="postgresql:// URL of an empty database (default: a throwaway server)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of latency timing per back end")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.requests, args.budget = 3, 400, 3.0
    server = None
    url = args.store
    if url is None:
        from tests._postgres import PostgresServer

        server = PostgresServer()
        url = server.create_database()
    rows: list[dict[str, object]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for backend, location in (("sqlite", str(Path(tmp) / "serve.sqlite")), ("postgresql", url)):
                rows += measure(backend, location, rounds=args.rounds, budget_s=args.budget, threads=args.threads,
                                requests=args.requests)
    finally:
        if server is not None:
            server.stop()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for row in rows:
        row.update({"date": stamp, "machine": f"{platform.machine()} {platform.node()}", "quick": args.quick})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    new = not OUT.exists()
    with OUT.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)
    print("| backend | measure | path | threads | value | unit |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['backend']} | {row['measure']} | {row['path']} | {row['threads']} | {row['value']} | {row['unit']} |")
    print(f"appended {len(rows)} rows to {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
