"""What the checked CIFAR pickle loader costs, and how fast it refuses a flood.

A synthetic CIFAR batch (``--n`` images of 3072 uint8, integer labels, file names, as the
official batches hold) is pickled at protocols 2, 4 and 5 and read back, round after round,
by ``pickle.loads`` (unchecked: never use it on files from others) and by
``stealguard.data.safepickle.safe_loads``; both results are compared. ``ratio`` is the median
over rounds of safe_loads' time divided by pickle.loads' in the same round. The ``flood`` row
times the refusal of a 4 MB pickle that would run 2.1 million opcodes (a list of zeros) under
the default limit of 2 million.

    OMP_NUM_THREADS=1 python benchmarks/hostile_files.py [--n 10000] [--rounds 5] [--out FILE.csv]
"""

from __future__ import annotations

import argparse
import csv
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stealguard.data.safepickle import UnsafePickleError, safe_loads


def _batch(n: int) -> dict[str, object]:
    rng = np.random.default_rng(0)
    return {
        "batch_label": "synthetic batch",
        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        "labels": rng.integers(0, 100, n).tolist(),
        "filenames": [f"image_{k:06d}.png" for k in range(n)],
    }


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="images in the batch (default 10000, one CIFAR-10 batch)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="CSV file for the rows")
    args = parser.parse_args(argv)
    entry = _batch(args.n)
    rows = []
    for protocol in (2, 4, 5):
        blob = pickle.dumps(entry, protocol=protocol)
        plain, checked, ratios = [], [], []
        for _ in range(args.rounds):
            a = _seconds(lambda blob=blob: pickle.loads(blob, encoding="latin1"))
            b = _seconds(lambda blob=blob: safe_loads(blob))
            plain.append(a)
            checked.append(b)
            ratios.append(b / a)
        back = safe_loads(blob)
        assert np.array_equal(back["data"], entry["data"]) and back["labels"] == entry["labels"] and back["filenames"] == entry["filenames"]
        rows.append({
            "case": f"protocol {protocol}", "n": args.n, "mbytes": round(len(blob) / 1e6, 1),
            "pickle_loads_s": round(statistics.median(plain), 4), "safe_loads_s": round(statistics.median(checked), 4),
            "ratio": round(statistics.median(ratios), 2),
        })
    flood = b"\x80\x02](" + b"K\x00" * 2_100_000 + b"e."
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        try:
            safe_loads(flood)
        except UnsafePickleError:
            times.append(time.perf_counter() - start)
    assert len(times) == args.rounds
    rows.append({"case": "flood refused", "n": 2_100_000, "mbytes": round(len(flood) / 1e6, 1), "pickle_loads_s": "",
                 "safe_loads_s": round(statistics.median(times), 4), "ratio": ""})
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    if args.out is not None:
        with args.out.open("w", newline="") as file:
            out = csv.DictWriter(file, fieldnames=list(rows[0]))
            out.writeheader()
            out.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
