"""Does MAD (and its keyed variant) still protect against an attacker who inverts its answers?

Knockoff (random policy) with Fashion-MNIST queries against the committed MNIST LeNet victim
(``benchmarks/victims/mnist-lenet``), 10k queries, 10 replica epochs, seeds 0 and 1, each cell
with both of Knockoff's replica-training schedules (``training=reference``, the verdict grid's
SGD, and ``training=stealguard``, Adam with cosine decay); one ``stealguard attack`` process per
cell (the same CLI path users run, ``--attack-param invert=<spec>`` for the inverting attacker),
``OMP_NUM_THREADS=1``, two cells at a time. Resumable: a cell whose JSON exists is not rerun.
Then collects every cell's JSON into ``benchmarks/results/adaptive/steal.csv``, regenerates the
marked table of ``docs/adaptive.md`` from it and prints that table.

    python benchmarks/adaptive_steal.py --data-root ../shared/data --out runs/adaptive-steal
    python benchmarks/adaptive_steal.py --out runs/adaptive-steal --collect-only
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from stealguard.attacks.knockoff import TRAINING

from report.doc_tables import markers, write_section

ROOT = Path(__file__).resolve().parent
VICTIM = ROOT / "victims" / "mnist-lenet"
CSV = ROOT / "results" / "adaptive" / "steal.csv"
DOC = ROOT.parent / "docs" / "adaptive.md"
SECTION = "steal-table"
BEGIN, END = markers(SECTION)
COLUMNS = ["cell", "training", "defense", "attacker", "seeds", "defender_accuracy", "attacker_accuracy",
           "attacker_accuracy_min", "attacker_accuracy_max"]
SEEDS = (0, 1)
TRAININGS = tuple(TRAINING)
"""Knockoff's replica-training presets (``reference``, then ``stealguard``), 10 epochs each."""

CELLS: dict[str, tuple[str, list[str]]] = {
    "undefended": ("none", []),
    "undefended-argmax-labels": ("none", ["--train-on", "argmax"]),
    "mad-naive": ("mad:epsilon=0.5", []),
    "mad-argmax-labels": ("mad:epsilon=0.5", ["--train-on", "argmax"]),
    "mad-inverted-known": ("mad:epsilon=0.5", ["--attack-param", "invert=mad:epsilon=0.5"]),
    "mad-inverted-estimated": ("mad:epsilon=0.5", ["--attack-param", "invert=mad"]),
    "mad_keyed-naive": ("mad_keyed:epsilon=0.5", []),
    "mad_keyed-argmax-labels": ("mad_keyed:epsilon=0.5", ["--train-on", "argmax"]),
    "mad_keyed-inverted-known": ("mad_keyed:epsilon=0.5", ["--attack-param", "invert=mad_keyed:epsilon=0.5"]),
    "mad_keyed-inverted-as-mad": ("mad_keyed:epsilon=0.5", ["--attack-param", "invert=mad:epsilon=0.5"]),
    "mad_keyed_mix1-naive": ("mad_keyed:epsilon=0.5,mix=1.0", []),
    "mad_keyed_mix1-inverted-known": ("mad_keyed:epsilon=0.5,mix=1.0", ["--attack-param", "invert=mad_keyed:epsilon=0.5;mix=1.0"]),
}
"""Cell name -> (defense spec, extra attack arguments)."""


def cell_file(out: Path, cell: str, training: str, seed: int, suffix: str = ".json") -> Path:
    return out / f"{cell}-{training}-seed{seed}{suffix}"


def command(cell: str, training: str, seed: int, out: Path, data_root: str) -> list[str]:
    """The ``stealguard attack`` command line of one cell."""
    defense, extra = CELLS[cell]
    return [
        sys.executable, "-m", "stealguard.cli", "attack", "--victim", str(VICTIM), "--data-root", data_root,
        "--attack", "knockoff", "--queryset", "fashionmnist", "--budget", "10000", "--epochs", "10",
        "--attack-param", f"training={training}", "--seed", str(seed), "--defense", defense, *extra, "--quiet",
        "--out", str(cell_file(out, cell, training, seed)),
    ]


def run_cell(argv: list[str], log: Path) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with log.open("w") as handle:
        handle.write("$ " + shlex.join(argv) + "\n")
        handle.flush()
        return subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False).returncode


def collect(out: Path) -> pd.DataFrame:
    """One row per finished cell, from its JSON."""
    rows = []
    for cell in CELLS:
        for training in TRAININGS:
            for seed in SEEDS:
                path = cell_file(out, cell, training, seed)
                if path.exists():
                    rows.append(_row(cell, training, seed, json.loads(path.read_text())))
    return pd.DataFrame(rows)


def _row(cell: str, training: str, seed: int, result: dict) -> dict:
    params = result["attack_params"]
    if params["training"] != training:
        raise ValueError(f"{cell} ({training}, seed {seed}): the result was trained with {params['training']!r}")
    return {
        "cell": cell, "training": training, "defense": result["label"],
        "attacker": cell.split("-", 1)[1] if "-" in cell else "naive",
        "invert": params.get("invert") or "", "train_on": params["train_on"], "seed": seed,
        "defense_seed": result["defense_seed"], "budget": result["budget"], "epochs": params["epochs"],
        "defender_accuracy": result["defender_accuracy"], "attacker_accuracy": result["attacker_accuracy"],
        "fidelity": result["fidelity"], "l1_mean": result["l1_mean"], "command": shlex.join(
            ["stealguard", *command(cell, training, seed, Path("runs/adaptive-steal"), "../shared/data")[3:]]
        ).replace(str(VICTIM), str(VICTIM.relative_to(ROOT.parent))),
    }


def markdown(table: pd.DataFrame, columns: list[str]) -> str:
    """A Markdown table of ``columns`` (floats to 4 decimals)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        cells = [f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean attacker and defender accuracy per cell and training schedule over the seeds, in
    ``TRAININGS`` then ``CELLS`` order."""
    grouped = table.groupby(["training", "cell"], sort=False).agg(
        defense=("defense", "first"), attacker=("attacker", "first"), seeds=("seed", "count"),
        defender_accuracy=("defender_accuracy", "mean"), attacker_accuracy=("attacker_accuracy", "mean"),
        attacker_accuracy_min=("attacker_accuracy", "min"), attacker_accuracy_max=("attacker_accuracy", "max"),
    )
    order = [(training, cell) for training in TRAININGS for cell in CELLS if (training, cell) in grouped.index]
    return grouped.reindex(order).reset_index()


def doc_table(table: pd.DataFrame) -> str:
    """The Markdown summary quoted in ``docs/adaptive.md`` (means over seeds, min and max)."""
    return markdown(summary(table), COLUMNS)


def sync_doc(table: pd.DataFrame, doc: Path = DOC) -> None:
    """Replace the text between the steal-table markers of ``doc`` with :func:`doc_table`."""
    write_section(doc, SECTION, doc_table(table))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--out", type=Path, default=Path("runs/adaptive-steal"), help="directory of the cells' JSON and logs")
    parser.add_argument("--jobs", type=int, default=2, help="cells run side by side (default 2)")
    parser.add_argument("--collect-only", action="store_true", help="only collect finished cells into the CSV")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.collect_only:
        todo = [(cell, training, seed) for training in TRAININGS for seed in SEEDS for cell in CELLS
                if not cell_file(args.out, cell, training, seed).exists()]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            codes = list(pool.map(
                lambda item: run_cell(command(*item, args.out, args.data_root), cell_file(args.out, *item, suffix=".log")), todo
            ))
        failed = [cell_file(args.out, *item, suffix="").name for item, code in zip(todo, codes) if code != 0]
        if failed:
            print("failed cells (see their .log): " + ", ".join(failed), file=sys.stderr)
    table = collect(args.out)
    CSV.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(CSV, index=False)
    if not table.empty:
        if DOC.exists():
            sync_doc(table)
        print(doc_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
