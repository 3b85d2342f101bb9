"""The attack-accuracy tables of benchmarks/README.md, generated from the committed result files.

``attack_accuracy.py --out benchmarks/results/attack-accuracy/<run>`` writes one ``stealguard attack``
JSON result per attack. This script renders each run folder as a Markdown table (attack, queries
used, final replica epochs, replica accuracy, fidelity, defender accuracy, elapsed seconds as the
result file records them) between the markers ``<!-- attack-accuracy-<run>:begin -->`` and
``<!-- attack-accuracy-<run>:end -->`` of ``benchmarks/README.md``:

    python benchmarks/attack_accuracy_table.py            # rewrite the marked tables
    python benchmarks/attack_accuracy_table.py --check    # exit 1 if one is not current
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from report.doc_tables import marked_block, replace_marked

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "attack-accuracy"
PAGE = ROOT / "README.md"
ORDER = ("jbda", "jb_self", "jb_top3", "knockoff", "knockoff (adaptive)", "dfme", "maze")
"""Row order: the order of ``attack_accuracy.py``'s attacks."""


def markers(run: str) -> tuple[str, str]:
    """The begin and end marker lines of run folder ``run``'s table."""
    return f"<!-- attack-accuracy-{run}:begin -->", f"<!-- attack-accuracy-{run}:end -->"


def label(result: dict[str, Any]) -> str:
    """The attack's row name: its registry name, ``(adaptive)`` for Knockoff's adaptive policy."""
    adaptive = result["attack"] == "knockoff" and result["attack_params"].get("policy") == "adaptive"
    return f"{result['attack']} (adaptive)" if adaptive else result["attack"]


def rows(run: Path) -> list[dict[str, Any]]:
    """The JSON results of one run folder, in :data:`ORDER` (then by file name)."""
    found = [json.loads(path.read_text()) for path in sorted(run.glob("*.json"))]
    return sorted(found, key=lambda r: (ORDER.index(label(r)) if label(r) in ORDER else len(ORDER), label(r)))


def table(run: Path) -> str:
    """Markdown table of one run folder's results (accuracies as fractions, 4 decimals)."""
    lines = [
        "| attack | defense | queries used | epochs | replica accuracy | fidelity | defender accuracy | elapsed s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in rows(run):
        epochs = result["attack_params"].get("epochs", "")
        lines.append(
            f"| {label(result)} | `{result['label']}` | {result['queries_used']} | {epochs} | {result['attacker_accuracy']:.4f} "
            f"| {result['fidelity']:.4f} | {result['defender_accuracy']:.4f} | {result['elapsed_s']:.0f} |"
        )
    return "\n".join(lines)


def runs() -> list[Path]:
    """The run folders under :data:`RESULTS` that hold results."""
    return sorted(path for path in RESULTS.iterdir() if path.is_dir() and any(path.glob("*.json"))) if RESULTS.is_dir() else []


def stale() -> list[str]:
    """Run folders whose marked table in :data:`PAGE` is missing or not current."""
    text = PAGE.read_text()
    out = []
    for run in runs():
        begin, end = markers(run.name)
        if begin not in text or marked_block(text, begin, end) != table(run):
            out.append(run.name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say which tables are not current (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        out = stale()
        for name in out:
            print(f"not current: {PAGE} (attack-accuracy-{name})", file=sys.stderr)
        return 1 if out else 0
    for run in runs():
        try:
            replace_marked(PAGE, *markers(run.name), table(run))
        except ValueError:
            print(f"{PAGE} has no markers for {run.name}: add {markers(run.name)[0]} and {markers(run.name)[1]}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
