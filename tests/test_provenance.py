"""Paths as result rows record them: relative to where the command ran, never this machine's folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from stealguard.provenance import portable_path


def test_a_path_below_the_working_directory_is_recorded_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert portable_path(tmp_path / "benchmarks" / "victims" / "mnist-lenet") == "benchmarks/victims/mnist-lenet"
    assert portable_path("runs/victim") == "runs/victim"


def test_a_path_beside_the_working_directory_climbs_to_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "main").mkdir()
    monkeypatch.chdir(tmp_path / "main")
    assert portable_path(tmp_path / "shared" / "data") == "../shared/data"
    assert portable_path(tmp_path / "shared" / "data", start=tmp_path) == "shared/data"


def test_the_working_directory_itself_is_a_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert portable_path(tmp_path) == "."
