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

import json
from pathlib import Path
from typing import Any

from report.doc_tables import sync_marked_main

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "attack-accuracy"
PAGE = ROOT / "README.md"
ORDER = ("jbda", "jb_self", "jb_top3", "knockoff", "knockoff (adaptive)", "dfme", "maze")
"""Row order: the order of ``attack_accuracy.py``'s attacks."""


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


def bodies() -> dict[str, str]:
    """``{marker name: table}`` for every run folder."""
    return {f"attack-accuracy-{run.name}": table(run) for run in runs()}


def main(argv: list[str] | None = None) -> int:
    return sync_marked_main(argv, PAGE, bodies, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
