"""The query log records one hashed row per input, per key, off the request path."""

from __future__ import annotations

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
