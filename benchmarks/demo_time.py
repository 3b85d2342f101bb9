"""Time ``stealguard demo`` end to end, as a user meets it: a fresh process per run, imports included.

Usage (from the repository root)::

    python benchmarks/demo_time.py --runs 3 --out benchmarks/results/demo/time.csv

Each run appends one row to ``--out``: when it started, the torch version, the machine's CPU count,
the 1-minute load average at the start of the run (other work on the machine slows the demo), and
the wall-clock seconds from process start to exit. The README's timing sentence quotes the
median of the latest run's rows (``tests/benchmarks/test_demo_time.py`` checks it).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from latency_table import latest_run

FIELDS = ["run", "torch", "cpus", "load_1min_at_start", "index", "wall_s"]
ROWS = Path(__file__).resolve().parent / "results" / "demo" / "time.csv"
"""The committed rows the README quotes."""


def time_demo(out_dir: Path) -> float:
    """Wall-clock seconds of one ``stealguard demo --quiet`` in a fresh interpreter writing to ``out_dir``.

    Raises:
        RuntimeError: the demo exited with a non-zero status (its stderr is in the message).
    """
    command = [sys.executable, "-m", "stealguard", "demo", "--quiet", "--out", str(out_dir)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"demo exited with {done.returncode}: {done.stderr.strip()}")
    return seconds


def median_seconds(rows: list[dict[str, str]]) -> float:
    """Median wall-clock seconds of ``rows``."""
    return statistics.median(float(row["wall_s"]) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="demo runs, one after another (default 3)")
    parser.add_argument("--out", type=Path, required=True, help="CSV file the rows are appended to")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    stamp = {"run": time.strftime("%Y-%m-%dT%H:%M:%S"), "torch": torch.__version__, "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    new_file = not args.out.exists()
    scratch = Path(tempfile.mkdtemp(prefix="demo-time-"))
    try:
        with args.out.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            if new_file:
                writer.writeheader()
            for index in range(args.runs):
                load = round(os.getloadavg()[0], 2)
                seconds = time_demo(scratch / str(index))
                writer.writerow({**stamp, "load_1min_at_start": load, "index": index, "wall_s": round(seconds, 2)})
                handle.flush()
                print(f"run {index}: {seconds:.2f} s (1-minute load at start {load})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"median: {median_seconds(latest_run(args.out)):.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
