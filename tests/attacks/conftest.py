"""Shared test settings for tests/attacks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Run torch on one thread: the test models are tiny, and on a shared 2-core machine
    intra-op threads fight over the cores (a step of the digits mlp takes 10x longer)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
