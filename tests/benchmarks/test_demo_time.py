"""``benchmarks/demo_time.py``: its rows and how the README reads them (the timing itself is not tested)."""

from __future__ import annotations

from pathlib import Path

import pytest

import demo_time


def test_the_latest_run_is_read_and_its_median_taken(tmp_path: Path) -> None:
    path = tmp_path / "time.csv"
    path.write_text(
        "run,torch,cpus,load_1min_at_start,index,wall_s\n"
        "2026-01-01T00:00:00,2.13.0,2,0.1,0,50.0\n"
        "2026-01-02T00:00:00,2.13.0,2,0.2,0,9.0\n"
        "2026-01-02T00:00:00,2.13.0,2,0.3,1,12.0\n"
        "2026-01-02T00:00:00,2.13.0,2,0.4,2,10.0\n"
    )
    latest = demo_time.latest_run(demo_time.read_rows(path))
    assert [row["index"] for row in latest] == ["0", "1", "2"]
    assert demo_time.median_seconds(latest) == 10.0


def test_committed_rows_have_the_fields_the_script_writes() -> None:
    rows = demo_time.read_rows(Path(demo_time.__file__).parent / "results/demo/time.csv")
    assert rows and all(list(row) == demo_time.FIELDS for row in rows)


def test_fewer_than_one_run_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        demo_time.main(["--runs", "0", "--out", str(tmp_path / "t.csv")])
    assert stop.value.code == 2 and "--runs must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()
