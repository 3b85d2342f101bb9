"""The query log records one hashed row per input, per key, off the request path."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest
import torch

from stealguard.serve.forensics import QueryLog, input_hashes, summarize


def test_log_counts_inputs_per_key_and_recognises_repeats(tmp_path: Path) -> None:
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    log = QueryLog(tmp_path / "q.sqlite")
    log.record("alice", x)
    log.record("alice", x[:2])
    log.record("bob", x[3:])
    log.flush()
    log.close()
    summary = summarize(tmp_path / "q.sqlite")
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


class _BlockedLog(QueryLog):
    """A log whose writer, once inside a write, waits for ``release`` (a stalled disk)."""

    def __init__(self, *args, **kwargs) -> None:
        self.writing = threading.Event()
        self.release = threading.Event()
        super().__init__(*args, **kwargs)

    def _write(self, db, rows) -> None:
        self.writing.set()
        self.release.wait(timeout=30)
        super()._write(db, rows)


def test_a_stalled_writer_bounds_the_queue_and_counts_what_it_drops(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    log = _BlockedLog(tmp_path / "q.sqlite", max_pending=2)
    log.record("eve", x)
    assert log.writing.wait(timeout=30)
    with caplog.at_level(logging.WARNING, logger="stealguard.serve"):
        for _ in range(10):
            log.record("eve", x)
    assert log.dropped == 3 * 8 and "3 input(s) not logged so far" in caplog.text
    log.release.set()
    log.flush()
    log.close()
    assert summarize(tmp_path / "q.sqlite")["eve"]["count"] == 3 * 3


class _FailingOnceLog(QueryLog):
    def __init__(self, *args, **kwargs) -> None:
        self.failures = 1
        super().__init__(*args, **kwargs)

    def _write(self, db, rows) -> None:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        super()._write(db, rows)


def test_a_failed_write_is_counted_and_the_writer_keeps_going(tmp_path: Path) -> None:
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    log = _FailingOnceLog(tmp_path / "q.sqlite")
    log.record("mallory", x)
    log.flush()
    log.record("mallory", x[:1])
    log.flush()
    log.close()
    assert log.dropped == 2
    assert summarize(tmp_path / "q.sqlite")["mallory"]["count"] == 1


def test_max_pending_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_pending"):
        QueryLog(tmp_path / "q.sqlite", max_pending=0)
