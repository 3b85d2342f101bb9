"""``benchmarks/demo_time.py``: its rows, and the README and ``demo --help`` against them (the timing itself is not tested)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from stealguard.cli import main

import demo_time
from latency_table import latest_run

REPO = Path(__file__).resolve().parents[2]


def test_the_latest_run_is_read_and_its_median_taken(tmp_path: Path) -> None:
    path = tmp_path / "time.csv"
    path.write_text(
        "run,torch,cpus,load_1min_at_start,index,wall_s\n"
        "2026-01-01T00:00:00,2.13.0,2,0.1,0,50.0\n"
        "2026-01-02T00:00:00,2.13.0,2,0.2,0,9.0\n"
        "2026-01-02T00:00:00,2.13.0,2,0.3,1,12.0\n"
        "2026-01-02T00:00:00,2.13.0,2,0.4,2,10.0\n"
    )
    latest = latest_run(path)
    assert [row["index"] for row in latest] == ["0", "1", "2"]
    assert demo_time.median_seconds(latest) == 10.0


def test_committed_rows_have_the_fields_the_script_writes() -> None:
    with demo_time.ROWS.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(list(row) == demo_time.FIELDS for row in rows)


def test_demo_help_and_readme_time_are_the_committed_timing_rows(capsys: pytest.CaptureFixture[str]) -> None:
    latest = latest_run(demo_time.ROWS)
    seconds = [float(row["wall_s"]) for row in latest]
    loads = sorted(float(row["load_1min_at_start"]) for row in latest)
    assert {row["cpus"] for row in latest} == {"2"}
    assert main(["--help"]) == 0
    assert "under a minute on 2 cores" in " ".join(capsys.readouterr().out.split()) and max(seconds) < 60
    readme = " ".join((REPO / "README.md").read_text().split())
    assert (f"on 2 CPU cores it took {demo_time.median_seconds(latest):.1f} s from start to exit (median of {len(latest)} runs "
            f"with a 1-minute load of {loads[0]:.2f} to {loads[-1]:.2f} from other work;") in readme


def test_fewer_than_one_run_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        demo_time.main(["--runs", "0", "--out", str(tmp_path / "t.csv")])
    assert stop.value.code == 2 and "--runs must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()
