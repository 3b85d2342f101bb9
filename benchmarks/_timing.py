"""Timing and energy helpers shared by the latency benchmarks (``python benchmarks/<script>.py``).

Paths (zero-argument callables) are timed interleaved, round after round, and summarised by
their median, so that drift of the machine affects all of them alike. Energy comes from the
Linux powercap interface (Intel RAPL, ``/sys/class/powercap/intel-rapl:*/energy_uj``) when the
machine exposes it; otherwise it is reported as not available, never estimated.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")


def median_seconds(fn: Callable[[], object], rounds: list[list[float]], index: int, inner: int) -> None:
    """Time ``inner`` calls of ``fn`` and append the per-call time to ``rounds[index]``."""
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    rounds[index].append((time.perf_counter() - start) / inner)


def calls_per_round(fn: Callable[[], object], *, rounds: int, budget_s: float, warmup: int = 3) -> int:
    """How many calls of ``fn`` fit in one round's share of ``budget_s``, after up to ``warmup``
    calls (one only when a call takes longer than 0.1 s: slow paths need no further warming)."""
    once = 0.0
    for _ in range(max(warmup, 1)):
        start = time.perf_counter()
        fn()
        once = max(time.perf_counter() - start, 1e-6)
        if once > 0.1:
            break
    return max(1, int(budget_s / rounds / once))


def time_rounds(paths: dict[str, Callable[[], object]], *, rounds: int, budget_s: float) -> dict[str, list[float]]:
    """Seconds per call of each path in each of ``rounds`` interleaved rounds (round r of every
    path ran back to back, so per-round ratios between paths cancel slow drift of the machine)."""
    names = list(paths)
    inner = {name: calls_per_round(paths[name], rounds=rounds, budget_s=budget_s) for name in names}
    samples: list[list[float]] = [[] for _ in names]
    for _ in range(rounds):
        for i, name in enumerate(names):
            median_seconds(paths[name], samples, i, inner[name])
    return {name: samples[i] for i, name in enumerate(names)}


def time_paths(paths: dict[str, Callable[[], object]], *, rounds: int, budget_s: float) -> dict[str, float]:
    """Median seconds per call of each path, measured interleaved over ``rounds`` rounds."""
    return {name: statistics.median(values) for name, values in time_rounds(paths, rounds=rounds, budget_s=budget_s).items()}


def ratio_quartiles(samples: list[float], baseline: list[float]) -> tuple[float, float, float]:
    """Lower quartile, median and upper quartile of the per-round ratios ``samples[r] / baseline[r]``."""
    ratios = sorted(s / b for s, b in zip(samples, baseline))
    if len(ratios) == 1:
        return ratios[0], ratios[0], ratios[0]
    low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
    return low, statistics.median(ratios), high


def rapl_counters() -> list[Path]:
    """The package-level RAPL energy counters (microjoules) this machine exposes, possibly none."""
    if not POWERCAP.is_dir():
        return []
    found = []
    for zone in sorted(POWERCAP.glob("intel-rapl:*")):
        counter = zone / "energy_uj"
        if zone.name.count(":") == 1 and counter.is_file():
            try:
                int(counter.read_text())
            except (OSError, ValueError):
                continue
            found.append(counter)
    return found


def joules_per_call(fn: Callable[[], object], calls: int, counters: list[Path]) -> float | None:
    """Package energy per call of ``fn`` over ``calls`` calls, from RAPL; ``None`` without counters.

    Counter wrap-around is detected (a negative difference) and the measurement dropped.
    Whole-package energy includes everything else the machine does meanwhile: run on a quiet machine.
    """
    if not counters:
        return None
    before = [int(c.read_text()) for c in counters]
    for _ in range(calls):
        fn()
    after = [int(c.read_text()) for c in counters]
    deltas = [b - a for a, b in zip(before, after)]
    if any(d < 0 for d in deltas):
        return None
    return sum(deltas) * 1e-6 / calls


def markdown(rows: list[dict[str, object]], columns: list[str]) -> str:
    """A Markdown table of ``rows`` (floats to 3 significant digits, ``None`` as ``n/a``)."""

    def fmt(value: object) -> str:
        if value is None:
            return "n/a"
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
