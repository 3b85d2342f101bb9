"""Reproduce the Prediction Poisoning trade-off experiment: every defense against every attack.

Reads a grid (``benchmarks/configs/*.toml``: victims x attacks x defense settings x seeds),
trains and caches the victims (DP-SGD ones included), runs every cell not yet in the
results file, then writes the report from all rows of that file:

    OUT/results.csv      one row per cell: every parameter, every metric, the code version
    OUT/summary.md       seed means per defense setting; MAD vs reverse sigmoid and random
                         noise at equal defender accuracy and at equal mean L1 distortion
    OUT/<victim>-<attack>.png   attacker accuracy vs defender accuracy and vs mean L1
    OUT/superseded.csv   rows replaced by ``--rerun --replace`` (e.g. after retraining a victim)

Usage:

    python benchmarks/reproduce.py --quick                        # digits, a few minutes (CI runs it)
    python benchmarks/reproduce.py --config benchmarks/configs/paper.toml --workers 2
    python benchmarks/reproduce.py --config benchmarks/configs/paper.toml --victims mnist-lenet --attacks knockoff
    python benchmarks/reproduce.py --config benchmarks/configs/paper.toml --rerun --victims mnist-lenet \\
        --attacks knockoff --defenses mad --seeds 0                # run stored cells again, compare
    python benchmarks/reproduce.py --config benchmarks/configs/paper.toml --rerun --replace --defenses none
                                                                   # ... and keep the new rows
    python benchmarks/reproduce.py --config benchmarks/configs/paper.toml --report-only

Interrupt it at any time: finished cells are in the results file and are not run again.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from stealguard.harness import compare
from stealguard.harness.grid import REFERENCES, RIVALS, load_grid
from stealguard.harness.reproduce import code_version, run_grid, select_cells
from stealguard.harness.results import ResultsFile

HERE = Path(__file__).resolve().parent
QUICK_CONFIG = HERE / "configs" / "quick.toml"
SUPERSEDED = "superseded.csv"
"""Name of the file, beside the results file, that keeps the rows replaced by ``--rerun --replace``."""
PAPER_VICTIMS = {"mnist-lenet": 99.4, "fashionmnist-lenet": 92.0}
"""Victim test accuracy (%) reported by Orekondy et al. (ICLR 2020) for the LeNet victims."""
PAPER_UNDEFENDED = {
    ("mnist-lenet", "jbda"): 89.2, ("mnist-lenet", "jb_self"): 89.4, ("mnist-lenet", "jb_top3"): 87.3, ("mnist-lenet", "knockoff"): 99.0,
    ("fashionmnist-lenet", "jbda"): 38.7, ("fashionmnist-lenet", "jb_self"): 45.8, ("fashionmnist-lenet", "jb_top3"): 68.7,
    ("fashionmnist-lenet", "knockoff"): 69.2,
}
"""Attacker accuracy (%) against the undefended victims in the paper (its Knockoff queried EMNIST variants)."""
PAPER_MAD = {("mnist-lenet", "knockoff"): 69.8, ("mnist-lenet", "jb_top3"): 35.7}
"""Attacker accuracy (%) the paper reports under MAD at less than one point of defender accuracy lost."""
MAD_DEFENDER_LOSS = 0.01


def command_line() -> str:
    return "python benchmarks/reproduce.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def paper_table(rows: list[dict]) -> str:
    """Our numbers beside the paper's: undefended attacker accuracy, and the best MAD setting that
    costs the defender less than one point of accuracy (accuracies in %, mean ± std over seeds)."""
    lines = [
        "| victim | attack | paper: victim | ours: victim | paper: undefended attacker | ours: undefended attacker "
        "| paper: MAD (< 1 pt defender loss) | ours: best MAD or MAD-argmax (< 1 pt defender loss) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for victim, attack in PAPER_UNDEFENDED:
        members = compare.pair_rows(rows, victim, attack)
        none = next((r for r in members if r["defense"] == "none"), None)
        ours_victim = f"{100 * members[0]['victim_accuracy']:.1f}" if members else "not run"
        ours_none = compare.pct_spread(none["attacker_accuracy"], none["attacker_accuracy_std"]) if none else "not run"
        cheap = [
            r for r in members
            if r["defense"] in REFERENCES and r["defender_loss"] < MAD_DEFENDER_LOSS
        ]
        best = min(cheap, key=lambda r: r["attacker_accuracy"], default=None)
        ours_mad = (
            f"{compare.pct_spread(best['attacker_accuracy'], best['attacker_accuracy_std'])} (`{best['label']}`)" if best else "not run"
        )
        paper_mad = PAPER_MAD.get((victim, attack))
        lines.append(
            f"| {victim} | {attack} | {PAPER_VICTIMS[victim]} | {ours_victim} | {PAPER_UNDEFENDED[(victim, attack)]} | {ours_none} "
            f"| {'–' if paper_mad is None else paper_mad} | {ours_mad} |"
        )
    return "\n".join(lines)


def report(
    results: ResultsFile, out: Path, *, command: str, references: Sequence[str] = REFERENCES, rivals: Sequence[str] = RIVALS
) -> Path:
    """Write plots and ``summary.md`` from every row of ``results``; returns the summary's path.

    The summary has the table of every setting grouped by victim and attack (settings in order of
    first appearance), then a section per (victim, attack) pair: its detailed table
    (:func:`~stealguard.harness.compare.pair_table`, ``none`` first, then by defense and setting) and
    its plot. Each of ``references`` present in a pair is compared there at equal cost with each of
    ``rivals`` present (the grid's ``[compare]``)."""
    rows = compare.aggregate(results.rows())
    plots = compare.write_plots(rows, out)
    parts = [
        f"# Results of `{out.name}`",
        "",
        f"Generated by `{command}` from `{results.path.name}` ({len(results.rows())} cells; "
        f"code versions: {', '.join(sorted({r['code_version'] for r in results.rows()}))}).",
        "Accuracies in %, mean ± sample std over seeds; `dp_sgd` rows are DP-SGD-trained victims attacked "
        "undefended, their L1 is the distance of their answers from the undefended victim's.",
    ]
    superseded = ResultsFile(results.path.with_name(SUPERSEDED))
    if superseded.path.is_file():
        parts.append(
            f"{len(superseded.rows())} earlier row(s) of rerun cells (`--rerun --replace`) are kept in "
            f"`{superseded.path.name}`, not in these tables."
        )
    parts += [
        "",
        compare.summary_table(sorted(rows, key=lambda r: (r["victim"], r["attack_name"]))),
    ]
    if any(r["victim"] in PAPER_VICTIMS for r in rows):
        parts += ["", "## Beside the paper (Orekondy et al., ICLR 2020)", "", paper_table(rows)]
    pairs = sorted({(r["victim"], r["attack_name"]) for r in rows})
    for victim, attack in pairs:
        members = compare.pair_rows(rows, victim, attack)
        present = {r["defense"] for r in members}
        present_rivals = [r for r in rivals if r in present]
        stds = [r["attacker_accuracy_std"] for r in members if math.isfinite(r["attacker_accuracy_std"])]
        noise = max(stds, default=0.0)
        seeds = min((len(r["seeds"]) for r in members), default=0)
        noise_text = f"within seed noise ({100 * noise:.1f} points)" if seeds > 1 else "equal (one seed: no noise estimate)"
        present_references = [ref for ref in references if ref in present] if present_rivals else []
        heading = f"## {attack} vs {victim}"
        if present_references:
            heading += f": {' and '.join(present_references)} against {', '.join(present_rivals)} at equal cost"
        parts += ["", heading, "", compare.pair_table(members)]
        note = compare.trainings_note(members)
        if note:
            parts += ["", note]
        parts += ["", f"![trade-off]({victim}-{attack}.png)"]
        for reference in present_references:
            parts += ["", f"### {reference}"]
            for x_key, title in (("defender_accuracy", "lost defender accuracy"), ("l1_mean", "mean L1 distortion")):
                table = compare.compare_at_equal(members, reference=reference, rivals=present_rivals, x_key=x_key)
                parts += ["", f"At equal {title}: each rival's best measured setting at no greater cost (its Pareto front, linear between settings):", ""]
                parts.append(compare.comparison_table(table, x_key=x_key, reference=reference, rivals=present_rivals))
                for rival in present_rivals:
                    lower, higher, tied = compare.verdict(table, rival, margin=noise)
                    parts.append(
                        f"\n{reference} leaves the attacker lower accuracy than {rival} at {lower}, higher at {higher}, "
                        f"and {noise_text} at {tied} of its points at equal {title}."
                    )
    summary = out / "summary.md"
    summary.write_text("\n".join(parts) + "\n")
    print(f"wrote {summary} and {len(plots)} plot(s) to {out}")
    return summary


def print_failures(failures: Sequence[tuple]) -> None:
    """One ``FAILED`` line on stderr per failed cell."""
    for cell, err in failures:
        print(f"FAILED {cell.victim.name} {cell.attack.name} {cell.defense} seed {cell.seed}: {type(err).__name__}: {err}", file=sys.stderr)


def print_row(row: dict) -> None:
    """One ``done`` line on stdout per finished cell, flushed, so a background run's log shows progress.

    Written through ``tqdm.write`` so that it does not break the grid's cell bar while that is drawn."""
    tqdm.write(
        f"done {row['victim']} {row['attack_name']} {row['label']} seed {row['seed']}: "
        f"attacker acc {row['attacker_accuracy']:.4f}, defender acc {row['defender_accuracy']:.4f}, {row['elapsed_s']:.0f} s",
        file=sys.stdout,
    )
    sys.stdout.flush()


def rerun(args: argparse.Namespace, grid, select, stored: ResultsFile) -> int:
    """Run the selected stored cells again into a temporary file and print old vs new numbers.

    With ``args.replace`` each new row takes its stored row's place as soon as its cell
    finishes (:meth:`ResultsFile.replace`), and the old row moves to ``superseded.csv`` beside
    the results file."""
    before = {row["key"]: row for row in stored.rows()}
    superseded = ResultsFile(stored.path.with_name(SUPERSEDED))

    def keep(row: dict) -> None:
        print_row(row)
        if args.replace:
            stored.replace(row, superseded=superseded)

    with tempfile.TemporaryDirectory() as tmp:
        again = ResultsFile(Path(tmp) / "rerun.csv")
        rows, failures = run_grid(
            grid, results=again, work_dir=args.work, data_root=args.data_root, device=args.device,
            workers=args.workers, select=lambda cell: select(cell) and cell.key() in before, progress=not args.quiet,
            on_row=keep,
        )
    print_failures(failures)
    print("| victim | attack | defense | seed | stored attacker acc | rerun attacker acc | stored defender acc | rerun defender acc |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        old = before[row["key"]]
        print(
            f"| {row['victim']} | {row['attack_name']} | {row['label']} | {row['seed']} | {old['attacker_accuracy']:.4f} | "
            f"{row['attacker_accuracy']:.4f} | {old['defender_accuracy']:.4f} | {row['defender_accuracy']:.4f} |"
        )
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="grid TOML (default with --quick: configs/quick.toml)")
    parser.add_argument("--quick", action="store_true", help="the digits grid of configs/quick.toml (a few minutes)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results/<grid results name>)")
    parser.add_argument(
        "--work", type=Path, default=None,
        help="cache of trained victims (default: the grid's victim_cache, else runs/reproduce/<grid results name>)",
    )
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1, help="cells run in parallel processes, one torch thread each")
    parser.add_argument("--victims", nargs="*", default=[], help="only these victim names")
    parser.add_argument("--attacks", nargs="*", default=[], help="only these attack labels")
    parser.add_argument("--defenses", nargs="*", default=[], help="only these defense names or specs")
    parser.add_argument("--seeds", nargs="*", type=int, default=[], help="only these seeds")
    parser.add_argument("--report-only", action="store_true", help="run nothing; rewrite summary and plots")
    parser.add_argument("--rerun", action="store_true", help="run the selected stored cells again and compare")
    parser.add_argument(
        "--replace", action="store_true",
        help="with --rerun: the new rows replace the stored ones; the old rows move to superseded.csv",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.replace and not args.rerun:
        parser.error("--replace only goes with --rerun")
    if args.config is None:
        if not args.quick:
            parser.error("give --config FILE or --quick")
        args.config = QUICK_CONFIG
    try:
        grid = load_grid(args.config)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out = args.out or HERE / "results" / grid.results
    args.work = args.work or grid.victim_cache or Path("runs") / "reproduce" / grid.results
    results = ResultsFile(args.out / "results.csv")
    command = command_line()
    print(f"$ {command}\ncode version {code_version()}; results {results.path}; victims cached in {args.work}", flush=True)
    select = select_cells(victims=args.victims, attacks=args.attacks, defenses=args.defenses, seeds=args.seeds)
    if args.rerun:
        status = rerun(args, grid, select, results)
        if args.replace and results.path.is_file():
            report(results, args.out, command=command, references=grid.references, rivals=grid.rivals)
        return status
    failures = []
    if not args.report_only:
        _rows, failures = run_grid(
            grid, results=results, work_dir=args.work, data_root=args.data_root, device=args.device,
            workers=args.workers, select=select, progress=not args.quiet, on_row=print_row,
        )
        print_failures(failures)
    if not results.path.is_file():
        print(f"error: no results in {results.path}: nothing to report (run the grid without --report-only first)", file=sys.stderr)
        return 2
    report(results, args.out, command=command, references=grid.references, rivals=grid.rivals)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
