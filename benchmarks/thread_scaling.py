"""Training and inference speed at each torch intra-op thread count, to choose ``--threads``' default.

For each thread count from 1 to the number of usable cores (``torch.set_num_threads``), times
interleaved rounds of: ``train``: one SGD step of ``lenet`` on a batch of 64 MNIST-shaped
images (forward, cross-entropy, backward, step); ``infer``: ``softmax(lenet(x))`` of one image
under ``no_grad``, the serving path. Reports the median over rounds of the time per call and
its ratio to one thread in the same round. On a machine shared with other work, threads
beyond the free cores make each step slower, not faster (oversubscription).

Run:  python benchmarks/thread_scaling.py [--rounds 9] [--seconds 6] [--csv FILE]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from stealguard.models import create as create_model

from _timing import markdown


def threaded(threads: int, fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run with ``threads`` intra-op threads."""

    def call() -> object:
        torch.set_num_threads(threads)
        return fn()

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=6.0, help="time budget per path")
    parser.add_argument("--csv", type=Path, default=None, help="append the raw rows to this CSV file")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.manual_seed(0)
    model = create_model("lenet", input_shape=(1, 28, 28), num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    images, labels = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    one = torch.rand(1, 1, 28, 28)
    loss_fn = nn.CrossEntropyLoss()

    def train_step() -> None:
        model.train()
        optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            torch.softmax(model(one), dim=1)

    counts = list(range(1, cores + 1))
    paths = {(job, n): threaded(n, fn) for job, fn in (("train", train_step), ("infer", infer)) for n in counts}
    inner = {}
    for key, fn in paths.items():
        for _ in range(3):
            fn()
        start = time.perf_counter()
        fn()
        inner[key] = max(1, int(args.seconds / args.rounds / max(time.perf_counter() - start, 1e-6)))
    samples: dict[tuple[str, int], list[float]] = {key: [] for key in paths}
    for _ in range(args.rounds):
        for key, fn in paths.items():
            start = time.perf_counter()
            for _ in range(inner[key]):
                fn()
            samples[key].append((time.perf_counter() - start) / inner[key])
    rows = []
    for (job, n), values in samples.items():
        ratios = [v / b for v, b in zip(values, samples[(job, 1)])]
        rows.append({"job": job, "threads": n, "ms_per_call": 1e3 * statistics.median(values),
                     "vs_1_thread": statistics.median(ratios)})
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    print(f"torch {torch.__version__}, {cores} usable cores, load average {os.getloadavg()[0]:.2f}\n")
    print(markdown(rows, ["job", "threads", "ms_per_call", "vs_1_thread"]))
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        new = not args.csv.exists()
        stamp = {"run": time.strftime("%Y-%m-%dT%H:%M:%S"), "cores": cores, "load1": round(os.getloadavg()[0], 2)}
        with args.csv.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*stamp, *rows[0]])
            if new:
                writer.writeheader()
            writer.writerows({**stamp, **row} for row in rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
