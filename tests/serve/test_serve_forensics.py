"""The query log: one hashed row per input, per key, durable when written, atomic with the charge."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import torch

from stealguard.serve.forensics import QueryLog, input_hashes, summarize
from stealguard.serve.stores import StoreError, UsageRow, is_url, open_store


def test_log_counts_inputs_per_key_and_recognises_repeats(store_location: str) -> None:
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    log = QueryLog(store_location)
    log.record("alice", x)
    log.record("alice", x[:2])
    log.record("bob", x[3:])
    summary = summarize(store_location)
    log.close()
    assert summary["alice"]["count"] == 6 and summary["alice"]["distinct"] == 4
    assert summary["bob"]["count"] == 1 and summary["bob"]["first"] <= summary["bob"]["last"]


def test_hashes_depend_on_the_pixels_only() -> None:
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    assert input_hashes(x) == input_hashes(x.double())
    changed = x.clone()
    changed[1, 0, 0, 0] += 1e-3
    assert [a == b for a, b in zip(input_hashes(x), input_hashes(changed))] == [True, False, True]


def test_summarize_a_missing_log_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="none.sqlite"):
        summarize(tmp_path / "none.sqlite")


def _drop_log_table(location: str) -> None:
    if is_url(location):
        import psycopg

        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute("DROP TABLE queries")
    else:
        with sqlite3.connect(location) as conn:
            conn.execute("DROP TABLE queries")


def test_a_settle_that_cannot_write_its_log_rows_changes_nothing(store_location: str) -> None:
    """Reservation, log rows and replay go in one transaction: a failed log write leaves the
    reservation in flight (to be released), never an answer charged but unlogged."""
    store = open_store(store_location)
    _, reservation = store.charge(
        "eve", 2, fresh=UsageRow(0, 0.0, 0.0), decide=lambda row: UsageRow(row.used + 2, row.tokens, row.stamp), reserve=True
    )
    assert reservation is not None
    _drop_log_table(store_location)
    with pytest.raises(StoreError, match="queries"):
        store.settle(reservation, name="eve", n=2, log=[("eve", 1.0, "a" * 64)] * 2)
    assert store.pending() == 2 and store.usage("eve").used == 2
    store.release(reservation, name="eve")
    assert store.pending() == 0 and store.usage("eve").used == 0
    store.close()

